//! The CPU paths against the reference: the host pool (what NdArray runs) and the tensor
//! gather-matmul fallback (what CUDA runs), on NdArray so they run everywhere.

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use tributary_sgmv::cases::{Case, CaseSpec, Popularity};
use tributary_sgmv::{AdapterId, AdapterPool, PoolOptions, SgmvBackend, TensorPool};

fn spec(rows: usize, popularity: Popularity) -> CaseSpec {
    CaseSpec {
        rows,
        fan_in: 67,
        fan_out: 130,
        ranks: vec![1, 8, 16],
        popularity,
        base_only_every: Some(4),
        seed: rows as u64,
    }
}

fn run<B: SgmvBackend, P: AdapterPool>(
    pool: &P,
    case: &Case,
    sgmv: impl Fn(&P, Tensor<B, 2>, Tensor<B, 2>, &[tributary_sgmv::Segment]) -> Tensor<B, 2>,
) -> Vec<f32> {
    let device = Default::default();
    let ids: Vec<AdapterId> = case
        .adapters
        .iter()
        .map(|a| pool.insert(a).unwrap())
        .collect();
    let x = Tensor::from_data(
        TensorData::new(case.x.clone(), [case.rows, case.fan_in]),
        &device,
    );
    let y = Tensor::from_data(
        TensorData::new(case.y0.clone(), [case.rows, case.fan_out]),
        &device,
    );
    let out = sgmv(pool, x, y, &case.segments(&ids))
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    for id in ids {
        assert!(pool.remove(id));
    }
    assert_eq!(pool.resident_bytes(), 0);
    out
}

#[test]
fn host_pool_and_tensor_fallback_match_the_reference() {
    let device = Default::default();
    let host = NdArray::new_pool(&device, PoolOptions::default()).unwrap();
    let tensors = TensorPool::<NdArray>::new(&device);
    for rows in [1, 3, 32] {
        for popularity in Popularity::ALL {
            let case = Case::new(&spec(rows, popularity));
            let got = run::<NdArray, _>(&host, &case, |p, x, y, s| {
                NdArray::sgmv(p, x, y, s, Case::KEY).unwrap()
            });
            let err = case.error(&got).unwrap();
            assert!(
                err <= 1e-6,
                "host pool, {rows} rows, {popularity:?}: {err:e}"
            );
            let got = run::<NdArray, _>(&tensors, &case, |p, x, y, s| {
                p.sgmv(x, y, s, Case::KEY).unwrap()
            });
            let err = case.error(&got).unwrap();
            assert!(
                err <= 1e-4,
                "tensor fallback, {rows} rows, {popularity:?}: {err:e}"
            );
        }
    }
}

#[test]
fn an_unknown_adapter_is_a_typed_error() {
    let device = Default::default();
    let pool = NdArray::new_pool(&device, PoolOptions::default()).unwrap();
    let x = Tensor::<NdArray, 2>::zeros([2, 3], &device);
    let y = Tensor::<NdArray, 2>::zeros([2, 4], &device);
    let segs = tributary_sgmv::segments(&[Some(AdapterId(9)), None]);
    let err = NdArray::sgmv(&pool, x, y, &segs, 0).unwrap_err();
    assert!(
        matches!(err, tributary_sgmv::SgmvError::UnknownAdapter(9)),
        "{err}"
    );
}
