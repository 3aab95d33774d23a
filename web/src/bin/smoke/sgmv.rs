//! SGMV in the tab: the kernels on burn's Wgpu device over WebGPU, checked against the CPU
//! reference on the same seeded cases the native suite uses.

use burn::backend::Wgpu;
use burn::tensor::{Tensor, TensorData};
use js_sys::{Object, Reflect};
use tributary_sgmv::cases::{Case, CaseSpec, Popularity};
use tributary_sgmv::{AdapterId, AdapterPool, PoolOptions, SgmvBackend};
use wasm_bindgen::prelude::*;

fn set(o: &Object, key: &str, value: JsValue) -> Result<(), JsError> {
    Reflect::set(o, &key.into(), &value)
        .map(|_| ())
        .map_err(|_| JsError::new("could not build the result object"))
}

/// Runs one seeded SGMV case twice (ranks 1, 8, 16, 64 and 128 mixed; every 5th row without an
/// adapter) and resolves to `{ error, bitIdentical, segments, adapters, maxDelta }`.
#[wasm_bindgen(js_name = sgmvCheck)]
pub async fn sgmv_check(
    rows: usize,
    fan_in: usize,
    fan_out: usize,
    popularity: String,
    seed: u32,
) -> Result<Object, JsError> {
    let popularity = Popularity::parse(&popularity)
        .ok_or_else(|| JsError::new(&format!("unknown popularity `{popularity}`")))?;
    let case = Case::new(&CaseSpec {
        rows,
        fan_in,
        fan_out,
        ranks: vec![1, 8, 16, 64, 128],
        popularity,
        base_only_every: Some(5),
        seed: u64::from(seed),
    });
    let device = crate::model::device().await;
    // The largest case (67 adapters of ranks up to 128 over 2049-wide vectors) takes ~50 MiB.
    let pool = Wgpu::new_pool(
        &device,
        PoolOptions {
            capacity_bytes: 64 << 20,
            ..PoolOptions::default()
        },
    )?;
    let ids = case
        .adapters
        .iter()
        .map(|a| pool.insert(a))
        .collect::<Result<Vec<AdapterId>, _>>()?;
    let segments = case.segments(&ids);
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let x =
            Tensor::<Wgpu, 2>::from_data(TensorData::new(case.x.clone(), [rows, fan_in]), &device);
        let y = Tensor::<Wgpu, 2>::from_data(
            TensorData::new(case.y0.clone(), [rows, fan_out]),
            &device,
        );
        let y = Wgpu::sgmv(&pool, x, y, &segments, Case::KEY)?;
        let data = y
            .into_data_async()
            .await
            .map_err(|e| JsError::new(&format!("{e:?}")))?;
        outputs.push(
            data.to_vec::<f32>()
                .map_err(|e| JsError::new(&format!("{e:?}")))?,
        );
    }
    let error = case.error(&outputs[0])?;
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    let max_delta = outputs[0]
        .iter()
        .zip(&case.y0)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let result = Object::new();
    set(&result, "error", error.into())?;
    set(
        &result,
        "bitIdentical",
        (bits(&outputs[0]) == bits(&outputs[1])).into(),
    )?;
    set(&result, "segments", (segments.len() as u32).into())?;
    set(&result, "adapters", (ids.len() as u32).into())?;
    set(&result, "maxDelta", max_delta.into())?;
    Ok(result)
}
