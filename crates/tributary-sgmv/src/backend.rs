//! How each burn backend runs a mixed-adapter batch: the WGSL kernels over a paged pool on
//! wgpu, the plain-Rust reference on the CPU, and a gather-matmul over tensors elsewhere (CUDA).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};

use burn::tensor::{Tensor, TensorData, backend::Backend};

use crate::SgmvError;
use crate::lora::{AdapterId, AdapterMatrices, LoraMatrices, Segment, check_batch};
use crate::reference::{self, RefSegment};

/// Sizes for a device's adapter pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolOptions {
    /// The most adapter bytes the pool may hold (pages are taken as adapters arrive).
    pub capacity_bytes: u64,
    /// Caps each binding below the device's own `maxStorageBufferBindingSize` (tests use it to
    /// force a split across bindings).
    pub max_binding_bytes: Option<u64>,
    /// Caps the workgroups per grid dimension below the device's (65,535 on WebGPU), so tests
    /// reach the 2-D grid with small batches.
    pub max_workgroups_per_dim: Option<u32>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            capacity_bytes: 256 << 20,
            max_binding_bytes: None,
            max_workgroups_per_dim: None,
        }
    }
}

/// Adapters resident on one device, ready for [`SgmvBackend::sgmv`].
pub trait AdapterPool: Clone + Debug + Send + Sync + 'static {
    /// Uploads an adapter; its id stays valid until [`AdapterPool::remove`].
    fn insert(&self, adapter: &AdapterMatrices) -> Result<AdapterId, SgmvError>;
    /// Frees an adapter's memory; false if it was not resident.
    fn remove(&self, id: AdapterId) -> bool;
    /// Bytes of device memory the resident adapters occupy (pages, not just weights).
    fn resident_bytes(&self) -> u64;
}

/// A burn backend that can apply a different LoRA adapter to each segment of a batch.
pub trait SgmvBackend: Backend {
    type Pool: AdapterPool;

    fn new_pool(device: &Self::Device, options: PoolOptions) -> Result<Self::Pool, SgmvError>;

    /// `y + Σ_segments scale · (x[rows]·Aᵀ)·Bᵀ` with each segment's adapter pair for projection
    /// `key`; rows whose segment has no adapter, or whose adapter leaves `key` alone, keep `y`.
    /// `x` is `[rows, fan_in]`, `y` `[rows, fan_out]`.
    fn sgmv(
        pool: &Self::Pool,
        x: Tensor<Self, 2>,
        y: Tensor<Self, 2>,
        segments: &[Segment],
        key: u32,
    ) -> Result<Tensor<Self, 2>, SgmvError>;
}

/// Adapters kept as host matrices, for backends that compute on the CPU.
#[derive(Debug, Clone, Default)]
pub struct HostPool {
    inner: Arc<Mutex<Slots<AdapterMatrices>>>,
}

/// Resident adapters by id, shared by the pool kinds.
#[derive(Debug)]
pub(crate) struct Slots<T> {
    pub(crate) by_id: HashMap<u32, T>,
    next: u32,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self {
            by_id: HashMap::new(),
            next: 0,
        }
    }
}

impl<T> Slots<T> {
    pub(crate) fn insert(&mut self, value: T) -> AdapterId {
        let id = self.next;
        self.next += 1;
        self.by_id.insert(id, value);
        AdapterId(id)
    }

    pub(crate) fn get(&self, id: AdapterId) -> Result<&T, SgmvError> {
        self.by_id.get(&id.0).ok_or(SgmvError::UnknownAdapter(id.0))
    }

    pub(crate) fn remove(&mut self, id: AdapterId) -> Option<T> {
        self.by_id.remove(&id.0)
    }

    /// Σ `bytes` over the resident adapters.
    pub(crate) fn total(&self, bytes: impl Fn(&T) -> u64) -> u64 {
        self.by_id.values().map(bytes).sum()
    }
}

/// Locks a pool; a panic while it was held cannot leave it half-updated (updates are made
/// whole before they are stored), so a poisoned lock is used as is.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AdapterPool for HostPool {
    fn insert(&self, adapter: &AdapterMatrices) -> Result<AdapterId, SgmvError> {
        Ok(lock(&self.inner).insert(adapter.clone()))
    }

    fn remove(&self, id: AdapterId) -> bool {
        lock(&self.inner).remove(id).is_some()
    }

    fn resident_bytes(&self) -> u64 {
        lock(&self.inner).total(|a| a.values().map(LoraMatrices::bytes).sum())
    }
}

impl HostPool {
    /// The CPU path over host copies of `x` (`[rows, fan_in]`) and `y` (`[rows, fan_out]`):
    /// resolves each segment's pair for `key` and runs [`reference::sgmv`] on `y` in place.
    pub fn sgmv_host(
        &self,
        x: &[f32],
        y: &mut [f32],
        dims: (usize, usize),
        segments: &[Segment],
        key: u32,
    ) -> Result<(), SgmvError> {
        let slots = lock(&self.inner);
        let mut resolved = Vec::with_capacity(segments.len());
        for s in segments {
            let lora = match s.adapter {
                Some(id) => slots.get(id)?.get(&key),
                None => None,
            };
            resolved.push(RefSegment {
                rows: s.rows.clone(),
                lora,
            });
        }
        reference::sgmv(x, y, dims, &resolved)
    }
}

#[cfg(feature = "ndarray")]
impl SgmvBackend for burn::backend::NdArray {
    type Pool = HostPool;

    fn new_pool(_: &Self::Device, _: PoolOptions) -> Result<HostPool, SgmvError> {
        Ok(HostPool::default())
    }

    fn sgmv(
        pool: &HostPool,
        x: Tensor<Self, 2>,
        y: Tensor<Self, 2>,
        segments: &[Segment],
        key: u32,
    ) -> Result<Tensor<Self, 2>, SgmvError> {
        let [rows, fan_in] = x.dims();
        let [_, fan_out] = y.dims();
        let device = y.device();
        // NdArray's tensors live in host memory: reading them is a copy, not a device sync.
        let x = host_vec(x)?;
        let mut y = host_vec(y)?;
        pool.sgmv_host(&x, &mut y, (fan_in, fan_out), segments, key)?;
        Ok(Tensor::from_data(
            TensorData::new(y, [rows, fan_out]),
            &device,
        ))
    }
}

#[cfg(feature = "ndarray")]
fn host_vec(t: Tensor<burn::backend::NdArray, 2>) -> Result<Vec<f32>, SgmvError> {
    t.into_data()
        .to_vec::<f32>()
        .map_err(|e| SgmvError::Readback(format!("{e:?}")))
}

/// Adapters as device tensors (Aᵀ and scaled Bᵀ), applied segment by segment with two matmuls
/// each: the fallback for backends without the WGSL kernels (CUDA).
#[derive(Debug, Clone)]
pub struct TensorPool<B: Backend> {
    device: B::Device,
    inner: Arc<Mutex<Slots<TensorPairs<B>>>>,
}

/// One adapter's pairs by projection key.
type TensorPairs<B> = HashMap<u32, TensorPair<B>>;

#[derive(Debug, Clone)]
struct TensorPair<B: Backend> {
    a_t: Tensor<B, 2>,
    b_t_scaled: Tensor<B, 2>,
    bytes: u64,
}

impl<B: Backend> TensorPool<B> {
    pub fn new(device: &B::Device) -> Self {
        Self {
            device: device.clone(),
            inner: Default::default(),
        }
    }

    pub fn sgmv(
        &self,
        x: Tensor<B, 2>,
        mut y: Tensor<B, 2>,
        segments: &[Segment],
        key: u32,
    ) -> Result<Tensor<B, 2>, SgmvError> {
        let (_, fan_in, fan_out) = check_batch(x.dims(), y.dims(), segments)?;
        let slots = lock(&self.inner);
        for s in segments {
            let Some(id) = s.adapter else { continue };
            let Some(pair) = slots.get(id)?.get(&key) else {
                continue;
            };
            let [a_in, _] = pair.a_t.dims();
            let [_, b_out] = pair.b_t_scaled.dims();
            if (a_in, b_out) != (fan_in, fan_out) {
                return Err(SgmvError::Mismatch(format!(
                    "adapter {} is {a_in}→{b_out} for projection {key}, the batch is {fan_in}→{fan_out}",
                    id.0
                )));
            }
            let r = s.rows.clone();
            let delta = x
                .clone()
                .slice([r.clone(), 0..fan_in])
                .matmul(pair.a_t.clone())
                .matmul(pair.b_t_scaled.clone());
            let updated = y.clone().slice([r.clone(), 0..fan_out]) + delta;
            y = y.slice_assign([r, 0..fan_out], updated);
        }
        Ok(y)
    }
}

impl<B: Backend> AdapterPool for TensorPool<B> {
    fn insert(&self, adapter: &AdapterMatrices) -> Result<AdapterId, SgmvError> {
        let mut pairs = HashMap::new();
        for (&key, l) in adapter {
            let a_t = transposed::<B>(&l.a, [l.rank, l.fan_in], &self.device);
            let b_t_scaled = transposed::<B>(&l.b, [l.fan_out, l.rank], &self.device) * l.scale;
            pairs.insert(
                key,
                TensorPair {
                    a_t,
                    b_t_scaled,
                    bytes: l.bytes(),
                },
            );
        }
        Ok(lock(&self.inner).insert(pairs))
    }

    fn remove(&self, id: AdapterId) -> bool {
        lock(&self.inner).remove(id).is_some()
    }

    fn resident_bytes(&self) -> u64 {
        lock(&self.inner).total(|a| a.values().map(|p| p.bytes).sum())
    }
}

/// Uploads the transpose of row-major `[rows, cols]` as a contiguous `[cols, rows]` tensor (a
/// transposed view would be re-packed by some backends on every matmul).
fn transposed<B: Backend>(v: &[f32], [rows, cols]: [usize; 2], device: &B::Device) -> Tensor<B, 2> {
    let mut t = vec![0.0f32; v.len()];
    for (r, row) in v.chunks_exact(cols).enumerate() {
        for (c, &x) in row.iter().enumerate() {
            t[c * rows + r] = x;
        }
    }
    Tensor::from_data(TensorData::new(t, [cols, rows]), device)
}

/// `SgmvBackend` through a [`TensorPool`]: gather and two matmuls per segment, for backends
/// without the WGSL kernels.
#[cfg(any(feature = "cuda", feature = "autodiff"))]
macro_rules! tensor_pool_backend {
    ([$($generics:tt)*] $backend:ty) => {
        impl<$($generics)*> SgmvBackend for $backend {
            type Pool = TensorPool<Self>;

            fn new_pool(device: &Self::Device, _: PoolOptions) -> Result<Self::Pool, SgmvError> {
                Ok(TensorPool::new(device))
            }

            fn sgmv(
                pool: &Self::Pool,
                x: Tensor<Self, 2>,
                y: Tensor<Self, 2>,
                segments: &[Segment],
                key: u32,
            ) -> Result<Tensor<Self, 2>, SgmvError> {
                pool.sgmv(x, y, segments, key)
            }
        }
    };
}

#[cfg(feature = "cuda")]
tensor_pool_backend!([] burn::backend::Cuda);

// Autodiff over any backend: fine-tuning and per-example gradients differentiate this path.
#[cfg(feature = "autodiff")]
tensor_pool_backend!(
    [B: Backend, C: burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy]
    burn::backend::Autodiff<B, C>
);
