//! The SGMV kernels on burn's own wgpu device: adapters in a paged pool of cubecl buffers, the
//! WGSL shrink/expand kernels launched through cubecl's client, so they queue in order with
//! burn's tensor work and read burn's tensors in place.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use burn::backend::Wgpu;
use burn::backend::wgpu::{
    CubeDim, CubeTensor, KernelSource, SourceKernel, SourceTemplate, WgpuDevice, WgpuRuntime,
    into_contiguous,
};
use burn::cubecl::client::ComputeClient;
use burn::cubecl::prelude::KernelId;
use burn::cubecl::server::{Handle, KernelArguments};
use burn::cubecl::{CubeCount, Runtime};
use burn::tensor::{Tensor, TensorPrimitive};

use crate::SgmvError;
use crate::backend::{AdapterPool, PoolOptions, SgmvBackend, Slots, lock};
use crate::lora::{AdapterId, AdapterMatrices, Segment, check_batch};
use crate::pages::{MAX_CHUNKS, PAGE_BYTES, PAGE_FLOATS, PageAllocator, PoolGeometry, pages_for};
use crate::plan::{PagedMatrix, PlannedSegment, page_contents, plan};
use tributary_wgsl::fold_grid;

const POOL_WGSL: &str = include_str!("pool.wgsl");
const WORKGROUP: u32 = 256;
/// Pages per upload launch: bounds the staging buffer (16 MiB) well below any binding limit.
const UPLOAD_PAGES: usize = 16 * 1024;

macro_rules! wgsl_kernel {
    ($name:ident, $file:literal) => {
        #[derive(Debug)]
        struct $name;

        impl KernelSource for $name {
            fn source(&self) -> SourceTemplate {
                SourceTemplate::new(POOL_WGSL).add_template(include_str!($file))
            }

            fn id(&self) -> KernelId {
                KernelId::new::<Self>().cube_dim(CubeDim::new_1d(WORKGROUP))
            }
        }
    };
}

wgsl_kernel!(ShrinkKernel, "shrink.wgsl");
wgsl_kernel!(ExpandKernel, "expand.wgsl");
wgsl_kernel!(ScatterKernel, "scatter.wgsl");

/// Every kernel's complete source as cubecl compiles it, by name: for compilers other than
/// naga's test below (the browser suite compiles them with Chrome's Tint, which is stricter),
/// because cubecl only logs a kernel that fails to compile and its launches then do nothing.
pub fn wgsl_kernels() -> Vec<(&'static str, String)> {
    vec![
        ("shrink", ShrinkKernel.source().complete()),
        ("expand", ExpandKernel.source().complete()),
        ("scatter", ScatterKernel.source().complete()),
    ]
}

fn launch<K: KernelSource>(
    client: &ComputeClient<WgpuRuntime>,
    kernel: K,
    (x, y): (u32, u32),
    buffers: Vec<Handle>,
) {
    client.launch(
        Box::new(SourceKernel::new(kernel, CubeDim::new_1d(WORKGROUP))),
        CubeCount::Static(x, y, 1),
        KernelArguments::new().with_buffers(buffers.into_iter().map(Handle::binding).collect()),
    );
}

/// Adapters in pages of a few large buffers on a wgpu device (see [`crate::pages`]).
#[derive(Clone)]
pub struct WgpuPool {
    inner: Arc<Mutex<Paged>>,
}

struct Paged {
    client: ComputeClient<WgpuRuntime>,
    alloc: PageAllocator,
    /// Always [`MAX_CHUNKS`] buffers: chunks not yet in use are one-page stand-ins, because a
    /// kernel's four pool bindings must all be bound, and to distinct buffers.
    chunks: Vec<Handle>,
    max_per_dim: u32,
    slots: Slots<PagedAdapter>,
}

#[derive(Debug)]
struct PagedAdapter {
    pairs: HashMap<u32, PagedMatrix>,
    pages: Vec<u32>,
}

impl std::fmt::Debug for WgpuPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = lock(&self.inner);
        f.debug_struct("WgpuPool")
            .field("geometry", &p.alloc.geometry())
            .field("chunks_in_use", &p.alloc.chunks_in_use())
            .field("adapters", &p.slots.by_id.len())
            .finish()
    }
}

impl WgpuPool {
    pub fn new(device: &WgpuDevice, options: PoolOptions) -> Result<Self, SgmvError> {
        let client = WgpuRuntime::client(device);
        let props = client.properties();
        let device_binding = props.memory.max_page_size;
        let max_binding = options
            .max_binding_bytes
            .map_or(device_binding, |cap| cap.min(device_binding));
        let geometry = PoolGeometry::new(options.capacity_bytes, max_binding)?;
        let device_per_dim = props.hardware.max_cube_count.0;
        let max_per_dim = options
            .max_workgroups_per_dim
            .map_or(device_per_dim, |cap| cap.clamp(1, device_per_dim));
        let chunks = (0..MAX_CHUNKS)
            .map(|_| client.empty(PAGE_BYTES as usize))
            .collect();
        Ok(Self {
            inner: Arc::new(Mutex::new(Paged {
                client,
                alloc: PageAllocator::new(geometry),
                chunks,
                max_per_dim,
                slots: Slots::default(),
            })),
        })
    }

    /// How the pool is cut into bindings, and how many of them hold pages now.
    pub fn geometry(&self) -> (PoolGeometry, u32) {
        let p = lock(&self.inner);
        (p.alloc.geometry(), p.alloc.chunks_in_use())
    }

    pub fn sgmv(
        &self,
        x: Tensor<Wgpu, 2>,
        y: Tensor<Wgpu, 2>,
        segments: &[Segment],
        key: u32,
    ) -> Result<Tensor<Wgpu, 2>, SgmvError> {
        let (_, fan_in, fan_out) = check_batch(x.dims(), y.dims(), segments)?;
        let p = lock(&self.inner);
        let mut planned = Vec::new();
        for s in segments {
            let Some(id) = s.adapter else { continue };
            if let Some(matrix) = p.slots.get(id)?.pairs.get(&key)
                && !s.rows.is_empty()
            {
                planned.push(PlannedSegment {
                    first_row: s.rows.start,
                    rows: s.rows.len(),
                    matrix,
                });
            }
        }
        if planned.is_empty() {
            return Ok(y);
        }
        let plan = plan(
            (fan_in, fan_out),
            &planned,
            p.alloc.geometry().pages_per_chunk,
            p.max_per_dim,
        )?;
        let x = into_contiguous(x.into_primitive().tensor());
        let y = into_contiguous(y.into_primitive().tensor());
        // The caller may still hold `y` elsewhere; the kernel adds into its own copy then.
        let y: CubeTensor<WgpuRuntime> = if y.can_mut() { y } else { y.copy() };
        let client = &p.client;
        let meta = client.create_from_slice(bytemuck::cast_slice(&plan.meta));
        let v = client.empty(plan.v_len.max(1) * size_of::<f32>());
        let with_pool =
            |rest: [Handle; 3]| -> Vec<Handle> { p.chunks.iter().cloned().chain(rest).collect() };
        launch(
            client,
            ShrinkKernel,
            plan.shrink_grid,
            with_pool([meta.clone(), x.handle.clone(), v.clone()]),
        );
        launch(
            client,
            ExpandKernel,
            plan.expand_grid,
            with_pool([meta, v, y.handle.clone()]),
        );
        Ok(Tensor::from_primitive(TensorPrimitive::Float(y)))
    }
}

impl AdapterPool for WgpuPool {
    fn insert(&self, adapter: &AdapterMatrices) -> Result<AdapterId, SgmvError> {
        let mut guard = lock(&self.inner);
        let p = &mut *guard;
        let needed: usize = adapter
            .values()
            .map(|l| l.rank * (pages_for(l.fan_in) + pages_for(l.fan_out)))
            .sum();
        let (pages, new_chunks) = p.alloc.alloc(needed)?;
        let geometry = p.alloc.geometry();
        let first_new = p.alloc.chunks_in_use() - new_chunks;
        for chunk in first_new..p.alloc.chunks_in_use() {
            p.chunks[chunk as usize] = p.client.empty(geometry.chunk_bytes() as usize);
        }
        let mut pairs = HashMap::new();
        let mut staged: Vec<f32> = Vec::new();
        let mut next = 0;
        for (&key, l) in adapter {
            let n_a = l.rank * pages_for(l.fan_in);
            let n_b = l.rank * pages_for(l.fan_out);
            staged.extend(page_contents(l));
            pairs.insert(
                key,
                PagedMatrix {
                    rank: l.rank,
                    fan_in: l.fan_in,
                    fan_out: l.fan_out,
                    scale: l.scale,
                    a_pages: pages[next..next + n_a].to_vec(),
                    bt_pages: pages[next + n_a..next + n_a + n_b].to_vec(),
                },
            );
            next += n_a + n_b;
        }
        // One workgroup per page: a launch takes at most as many pages as the grid holds. Grids
        // are checked before anything is launched, so a refusal leaves the pool as it was.
        let per_launch = UPLOAD_PAGES.min((p.max_per_dim as usize).pow(2));
        let launches: Option<Vec<_>> = pages
            .chunks(per_launch)
            .zip(staged.chunks(per_launch * PAGE_FLOATS))
            .map(|(ids, contents)| Some((ids, contents, fold_grid(ids.len(), p.max_per_dim)?)))
            .collect();
        let Some(launches) = launches else {
            p.alloc.free(&pages);
            return Err(SgmvError::Pool(format!(
                "{} pages do not fit the device's grid",
                pages.len()
            )));
        };
        for (ids, contents, (gx, gy)) in launches {
            let mut plan = vec![ids.len() as u32, geometry.pages_per_chunk, gx, 0];
            plan.extend_from_slice(ids);
            let plan = p.client.create_from_slice(bytemuck::cast_slice(&plan));
            let staging = p.client.create_from_slice(bytemuck::cast_slice(contents));
            let buffers = p.chunks.iter().cloned().chain([plan, staging]).collect();
            launch(&p.client, ScatterKernel, (gx, gy), buffers);
        }
        Ok(p.slots.insert(PagedAdapter { pairs, pages }))
    }

    fn remove(&self, id: AdapterId) -> bool {
        let mut p = lock(&self.inner);
        match p.slots.remove(id) {
            Some(adapter) => {
                // Pages are reused by later uploads, which are queued after any kernel that
                // still reads them.
                p.alloc.free(&adapter.pages);
                true
            }
            None => false,
        }
    }

    fn resident_bytes(&self) -> u64 {
        lock(&self.inner)
            .slots
            .total(|a| a.pages.len() as u64 * PAGE_BYTES)
    }
}

impl SgmvBackend for Wgpu {
    type Pool = WgpuPool;

    fn new_pool(device: &WgpuDevice, options: PoolOptions) -> Result<WgpuPool, SgmvError> {
        WgpuPool::new(device, options)
    }

    fn sgmv(
        pool: &WgpuPool,
        x: Tensor<Self, 2>,
        y: Tensor<Self, 2>,
        segments: &[Segment],
        key: u32,
    ) -> Result<Tensor<Self, 2>, SgmvError> {
        pool.sgmv(x, y, segments, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_is_valid_wgsl() {
        for (name, source) in wgsl_kernels() {
            tributary_wgsl::assert_valid_kernel(name, &source);
        }
    }
}
