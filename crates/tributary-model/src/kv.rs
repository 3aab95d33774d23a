//! A paged KV cache: keys and values of many sequences in fixed-size blocks of one pool per
//! layer, each sequence holding a block table, the pool bounded by a byte budget (vLLM's
//! PagedAttention layout). Sequences come and go without fragmenting memory, and a finished or
//! cancelled sequence hands its blocks straight back.

use std::collections::BTreeSet;

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use crate::config::ModelConfig;
use crate::error::ModelError;

/// One sequence's place in a [`PagedKv`]: its blocks in order and how many positions it holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SeqKv {
    blocks: Vec<u32>,
    len: usize,
}

impl SeqKv {
    pub fn new() -> Self {
        Self::default()
    }

    /// Positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn blocks(&self) -> &[u32] {
        &self.blocks
    }

    pub(crate) fn advance(&mut self, tokens: usize) {
        self.len += tokens;
    }
}

/// Per layer, K and V pools shaped `[blocks, kv_heads, block_tokens, head_dim]`.
#[derive(Debug)]
pub struct PagedKv<B: Backend> {
    block_tokens: usize,
    blocks: usize,
    block_bytes: u64,
    /// `Option` so a write can take a pool out, update it in place (it is uniquely owned) and put
    /// it back, instead of copying the whole pool.
    layers: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
    /// Lowest ids first, so placement is reproducible.
    free: BTreeSet<u32>,
    device: B::Device,
}

impl<B: Backend> PagedKv<B> {
    /// As many blocks of `block_tokens` positions as `budget_bytes` holds (keys and values of
    /// every layer, f32).
    pub fn new(
        config: &ModelConfig,
        block_tokens: usize,
        budget_bytes: u64,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        if block_tokens == 0 {
            return Err(ModelError::Generation(
                "KV blocks must hold at least one token".into(),
            ));
        }
        let per_layer =
            (config.num_kv_heads * block_tokens * config.head_dim * size_of::<f32>()) as u64;
        let block_bytes = 2 * config.num_layers as u64 * per_layer;
        let blocks = (budget_bytes / block_bytes) as usize;
        if blocks == 0 {
            return Err(ModelError::Generation(format!(
                "a KV budget of {budget_bytes} bytes holds no block of {block_bytes} bytes"
            )));
        }
        let shape = [blocks, config.num_kv_heads, block_tokens, config.head_dim];
        let layers = (0..config.num_layers)
            .map(|_| Some((Tensor::zeros(shape, device), Tensor::zeros(shape, device))))
            .collect();
        Ok(Self {
            block_tokens,
            blocks,
            block_bytes,
            layers,
            free: (0..blocks as u32).collect(),
            device: device.clone(),
        })
    }

    pub fn block_tokens(&self) -> usize {
        self.block_tokens
    }

    pub fn blocks_total(&self) -> usize {
        self.blocks
    }

    pub fn blocks_free(&self) -> usize {
        self.free.len()
    }

    pub fn bytes_in_use(&self) -> u64 {
        (self.blocks - self.free.len()) as u64 * self.block_bytes
    }

    /// Makes room for `tokens` more positions of `seq`, all or nothing.
    pub fn reserve(&mut self, seq: &mut SeqKv, tokens: usize) -> Result<(), ModelError> {
        let needed = (seq.len + tokens)
            .div_ceil(self.block_tokens)
            .saturating_sub(seq.blocks.len());
        if needed > self.free.len() {
            return Err(ModelError::KvFull {
                needed,
                free: self.free.len(),
            });
        }
        seq.blocks
            .extend((0..needed).map(|_| self.free.pop_first().expect("counted above")));
        Ok(())
    }

    /// Frees all of `seq`'s blocks (finished, cancelled, or its client went away).
    pub fn release(&mut self, seq: &mut SeqKv) {
        self.free.extend(seq.blocks.drain(..));
        seq.len = 0;
    }

    /// Writes a step's keys and values (`[1, kv_heads, n, head_dim]`) at positions
    /// `seq.len() .. seq.len() + n` of layer `layer`; the blocks must be reserved.
    pub(crate) fn write(&mut self, layer: usize, seq: &SeqKv, k: Tensor<B, 4>, v: Tensor<B, 4>) {
        let [_, heads, n, d] = k.dims();
        let (mut k_pool, mut v_pool) = self.layers[layer].take().expect("pools are put back");
        let mut done = 0;
        while done < n {
            let pos = seq.len + done;
            let (block, offset) = (
                seq.blocks[pos / self.block_tokens] as usize,
                pos % self.block_tokens,
            );
            let m = (self.block_tokens - offset).min(n - done);
            let at = [block..block + 1, 0..heads, offset..offset + m, 0..d];
            let part = [0..1, 0..heads, done..done + m, 0..d];
            k_pool = k_pool.slice_assign(at.clone(), k.clone().slice(part.clone()));
            v_pool = v_pool.slice_assign(at, v.clone().slice(part));
            done += m;
        }
        self.layers[layer] = Some((k_pool, v_pool));
    }

    /// The first `upto` positions of `seq` in layer `layer`, as `[1, kv_heads, upto, head_dim]`.
    pub(crate) fn read(
        &self,
        layer: usize,
        seq: &SeqKv,
        upto: usize,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let used = upto.div_ceil(self.block_tokens);
        let ids: Vec<i32> = seq.blocks[..used].iter().map(|&b| b as i32).collect();
        let ids = Tensor::<B, 1, Int>::from_data(TensorData::new(ids, [used]), &self.device);
        let (k_pool, v_pool) = self.layers[layer].as_ref().expect("pools are put back");
        let gather = |pool: &Tensor<B, 4>| {
            let [_, heads, bt, d] = pool.dims();
            pool.clone()
                .select(0, ids.clone())
                .swap_dims(0, 1)
                .reshape([1, heads, used * bt, d])
                .slice([0..1, 0..heads, 0..upto, 0..d])
        };
        (gather(k_pool), gather(v_pool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    fn config() -> ModelConfig {
        let json = br#"{"model_type":"llama","hidden_size":8,"intermediate_size":16,
            "num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"vocab_size":10,
            "rms_norm_eps":1e-5,"max_position_embeddings":64,"rope_theta":10000.0}"#;
        ModelConfig::from_bytes(std::path::Path::new("config.json"), json).unwrap()
    }

    #[test]
    fn positions_written_across_blocks_read_back_in_order() {
        let c = config(); // 1 kv head of 4 dims
        let device = Default::default();
        // 3-token blocks, room for 4 blocks (2 tensors × 1 layer × 3 × 4 f32 = 96 bytes each).
        let mut kv = PagedKv::<NdArray>::new(&c, 3, 4 * 96, &device).unwrap();
        assert_eq!(kv.blocks_total(), 4);
        let (mut a, mut b) = (SeqKv::new(), SeqKv::new());
        let values = |from: usize, n: usize| {
            let v: Vec<f32> = (from * 4..(from + n) * 4).map(|x| x as f32).collect();
            Tensor::<NdArray, 4>::from_data(TensorData::new(v, [1, 1, n, 4]), &device)
        };
        let push = |kv: &mut PagedKv<NdArray>, seq: &mut SeqKv, from: usize, n: usize| {
            kv.reserve(seq, n).unwrap();
            kv.write(0, seq, values(from, n), values(from, n) * -1.0);
            seq.advance(n);
        };
        // Interleaved: a gets block 0, b block 1, then a block 2 — a's blocks are not neighbours.
        push(&mut kv, &mut a, 0, 2);
        push(&mut kv, &mut b, 100, 3);
        push(&mut kv, &mut a, 2, 3);
        assert_eq!(a.blocks(), &[0, 2]);
        let (k, v) = kv.read(0, &a, 5);
        assert_eq!(
            k.to_data().to_vec::<f32>().unwrap(),
            values(0, 5).to_data().to_vec::<f32>().unwrap()
        );
        assert_eq!(
            v.to_data().to_vec::<f32>().unwrap(),
            (values(0, 5) * -1.0).to_data().to_vec::<f32>().unwrap()
        );
        // Full: 7 more positions for b need 3 more blocks; one is free.
        let err = kv.reserve(&mut b, 7).unwrap_err();
        assert!(
            matches!(err, ModelError::KvFull { needed: 3, free: 1 }),
            "{err}"
        );
        assert_eq!(b.blocks(), &[1], "a refused reservation takes nothing");
        kv.release(&mut a);
        kv.release(&mut b);
        assert_eq!((kv.blocks_free(), kv.bytes_in_use()), (4, 0));
    }
}
