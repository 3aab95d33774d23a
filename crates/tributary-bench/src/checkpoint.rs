//! Random Llama checkpoints for benchmarks: sized like small real models, written in the Hugging
//! Face layout that both tributary-model and candle read.

use std::path::Path;

use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A checkpoint's dimensions.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub vocab: usize,
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
}

/// About 26M parameters: GQA, untied embeddings.
pub const SMALL: Dims = Dims {
    vocab: 8192,
    hidden: 512,
    intermediate: 1536,
    layers: 6,
    heads: 8,
    kv_heads: 4,
};

/// A Llama checkpoint with GQA and untied embeddings, random weights from a fixed seed, written
/// in the Hugging Face layout both engines read (rope_theta at the top level, which candle needs).
pub fn write(dir: &Path, d: &Dims) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let config = serde_json::json!({
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": d.vocab,
        "hidden_size": d.hidden,
        "intermediate_size": d.intermediate,
        "num_hidden_layers": d.layers,
        "num_attention_heads": d.heads,
        "num_key_value_heads": d.kv_heads,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": false,
        "hidden_act": "silu",
        "bos_token_id": 0,
        "eos_token_id": 0,
    });
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    let head_dim = d.hidden / d.heads;
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![d.vocab, d.hidden]),
        ("lm_head.weight".into(), vec![d.vocab, d.hidden]),
        ("model.norm.weight".into(), vec![d.hidden]),
    ];
    for l in 0..d.layers {
        let p = format!("model.layers.{l}");
        shapes.extend([
            (format!("{p}.input_layernorm.weight"), vec![d.hidden]),
            (
                format!("{p}.post_attention_layernorm.weight"),
                vec![d.hidden],
            ),
            (
                format!("{p}.self_attn.q_proj.weight"),
                vec![d.heads * head_dim, d.hidden],
            ),
            (
                format!("{p}.self_attn.k_proj.weight"),
                vec![d.kv_heads * head_dim, d.hidden],
            ),
            (
                format!("{p}.self_attn.v_proj.weight"),
                vec![d.kv_heads * head_dim, d.hidden],
            ),
            (
                format!("{p}.self_attn.o_proj.weight"),
                vec![d.hidden, d.heads * head_dim],
            ),
            (
                format!("{p}.mlp.gate_proj.weight"),
                vec![d.intermediate, d.hidden],
            ),
            (
                format!("{p}.mlp.up_proj.weight"),
                vec![d.intermediate, d.hidden],
            ),
            (
                format!("{p}.mlp.down_proj.weight"),
                vec![d.hidden, d.intermediate],
            ),
        ]);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(512);
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let norm = name.ends_with("norm.weight");
            let bytes = (0..n)
                .flat_map(|_| {
                    let v: f32 = if norm {
                        1.0
                    } else {
                        rng.random_range(-0.05..0.05)
                    };
                    v.to_le_bytes()
                })
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views = data
        .iter()
        .map(|(name, shape, bytes)| {
            Ok((
                name.as_str(),
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    shape.clone(),
                    bytes,
                )?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors"))?;
    Ok(())
}
