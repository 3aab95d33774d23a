//! SGMV scenarios on burn's Wgpu device: a batch of many adapters against one adapter, against
//! one launch per adapter, and against the base layer's own matmul.

use burn::backend::Wgpu;
use burn::backend::wgpu::WgpuDevice;
use burn::tensor::{Distribution, Tensor, TensorData, backend::Backend};
use tributary_sgmv::cases::{Case, CaseSpec, Popularity};
use tributary_sgmv::{AdapterId, AdapterPool, PoolOptions, Segment, SgmvBackend, WgpuPool};

pub const HIDDEN: usize = 2048;
pub const RANK: usize = 16;

/// One timed piece of work; [`Scenario::run`] waits for the device before returning.
#[derive(Debug)]
pub struct Scenario {
    pub name: String,
    device: WgpuDevice,
    work: Work,
}

#[derive(Debug)]
enum Work {
    /// One SGMV call over the whole batch.
    Batched {
        pool: WgpuPool,
        x: Box<Tensor<Wgpu, 2>>,
        segments: Vec<Segment>,
        _ids: Vec<AdapterId>,
    },
    /// One SGMV call per segment (what a server without SGMV does: one adapter at a time).
    Looped {
        pool: WgpuPool,
        xs: Vec<Tensor<Wgpu, 2>>,
        segments: Vec<Vec<Segment>>,
        _ids: Vec<AdapterId>,
    },
    /// The base projection the LoRA delta is added to: x·W.
    Matmul(Box<[Tensor<Wgpu, 2>; 2]>),
}

fn case(rows: usize, popularity: Popularity) -> Case {
    Case::new(&CaseSpec {
        rows,
        fan_in: HIDDEN,
        fan_out: HIDDEN,
        ranks: vec![RANK],
        popularity,
        base_only_every: None,
        seed: 42,
    })
}

fn upload(pool: &WgpuPool, case: &Case) -> Vec<AdapterId> {
    case.adapters
        .iter()
        .map(|a| pool.insert(a).expect("the bench pool holds the case"))
        .collect()
}

fn tensor(values: &[f32], shape: [usize; 2], device: &WgpuDevice) -> Tensor<Wgpu, 2> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

impl Scenario {
    /// SGMV over `rows` rows of hidden 2048, rank 16, adapters drawn by `popularity`.
    pub fn batched(rows: usize, popularity: Popularity, device: &WgpuDevice) -> Self {
        let pool = Wgpu::new_pool(device, PoolOptions::default()).expect("pool");
        let case = case(rows, popularity);
        let ids = upload(&pool, &case);
        Self {
            name: format!("sgmv b{rows} {popularity:?}").to_lowercase(),
            device: device.clone(),
            work: Work::Batched {
                x: Box::new(tensor(&case.x, [rows, HIDDEN], device)),
                segments: case.segments(&ids),
                pool,
                _ids: ids,
            },
        }
    }

    /// The distinct-adapter batch as one SGMV launch per adapter.
    pub fn looped(rows: usize, device: &WgpuDevice) -> Self {
        let pool = Wgpu::new_pool(device, PoolOptions::default()).expect("pool");
        let case = case(rows, Popularity::Distinct);
        let ids = upload(&pool, &case);
        let mut xs = Vec::new();
        let mut segments = Vec::new();
        for s in case.segments(&ids) {
            let x = &case.x[s.rows.start * HIDDEN..s.rows.end * HIDDEN];
            xs.push(tensor(x, [s.rows.len(), HIDDEN], device));
            segments.push(vec![Segment {
                rows: 0..s.rows.len(),
                adapter: s.adapter,
            }]);
        }
        Self {
            name: format!("looped b{rows} distinct"),
            device: device.clone(),
            work: Work::Looped {
                pool,
                xs,
                segments,
                _ids: ids,
            },
        }
    }

    /// The base layer: `rows × 2048` by `2048 × 2048`.
    pub fn matmul(rows: usize, device: &WgpuDevice) -> Self {
        let dist = Distribution::Uniform(-1.0, 1.0);
        Self {
            name: format!("matmul b{rows}"),
            device: device.clone(),
            work: Work::Matmul(Box::new([
                Tensor::random([rows, HIDDEN], dist, device),
                Tensor::random([HIDDEN, HIDDEN], dist, device),
            ])),
        }
    }

    pub fn run(&self) {
        match &self.work {
            Work::Batched {
                pool, x, segments, ..
            } => {
                let [rows, _] = x.dims();
                // `empty`: the kernels add into y, and its contents do not change their cost.
                let y = Tensor::empty([rows, HIDDEN], &self.device);
                let y = Wgpu::sgmv(pool, x.as_ref().clone(), y, segments, Case::KEY).expect("sgmv");
                drop(y);
            }
            Work::Looped {
                pool, xs, segments, ..
            } => {
                for (x, segs) in xs.iter().zip(segments) {
                    let [rows, _] = x.dims();
                    let y = Tensor::empty([rows, HIDDEN], &self.device);
                    let y = Wgpu::sgmv(pool, x.clone(), y, segs, Case::KEY).expect("sgmv");
                    drop(y);
                }
            }
            Work::Matmul(xw) => {
                let [x, w] = xw.as_ref();
                drop(x.clone().matmul(w.clone()))
            }
        }
        <Wgpu as Backend>::sync(&self.device).expect("device sync");
    }
}

/// Every scenario the report and the criterion bench time.
pub fn all(device: &WgpuDevice) -> Vec<Scenario> {
    vec![
        Scenario::batched(32, Popularity::Distinct, device),
        Scenario::batched(32, Popularity::Identical, device),
        Scenario::looped(32, device),
        Scenario::batched(1, Popularity::Identical, device),
        Scenario::matmul(1, device),
        Scenario::matmul(32, device),
    ]
}
