//! The WGSL kernels on burn's Wgpu backend (lavapipe in CI) against the CPU reference: the GEMV
//! (decode, up to `GEMV_MAX_ROWS` input rows) and prefill (chunks dequantized for burn's matmul)
//! over every type and shapes that are not a multiple of any tile, a matrix of several chunks,
//! the embedding gather, and bit-identical reruns.

mod common;

use burn::backend::Wgpu;
use burn::backend::wgpu::WgpuDevice;
use burn::tensor::{Int, Tensor, TensorData};
use common::{TYPES, assert_matches_reference, random_matrix, random_x, rng};
use tributary_quant::{GEMV_MAX_ROWS, GgmlType, QMatrix, QuantBackend, SCRATCH_BYTES};

fn forward(w: &QMatrix, x: &[f32], device: &WgpuDevice) -> Vec<f32> {
    let m = x.len() / w.cols();
    let layer = Wgpu::quant_linear(w.clone(), device).unwrap();
    let x = Tensor::<Wgpu, 2>::from_data(TensorData::new(x.to_vec(), [m, w.cols()]), device);
    let y = layer.forward(x).unwrap();
    assert_eq!(y.dims(), [m, w.rows()]);
    y.into_data().to_vec().unwrap()
}

#[test]
#[ignore = "needs a wgpu device: the lavapipe suite of `cargo xtask test` runs it"]
fn gemv_and_prefill_match_the_reference_on_every_type_and_odd_shapes() {
    let device = WgpuDevice::default();
    let mut rng = rng(23);
    // Both paths: the GEMV up to its row limit, prefill past it.
    let ms = [1, 3, GEMV_MAX_ROWS, GEMV_MAX_ROWS + 1, 33];
    // Prefill decodes at most SCRATCH_BYTES of f32 at once: a matrix of three chunks and a bit.
    let chunked = (GgmlType::Q8_0, 3 * SCRATCH_BYTES / (32 * 4) + 5, 32);
    let cases = TYPES.into_iter().flat_map(|ty| {
        let block = ty.block_size().max(32);
        // Output rows not a multiple of the GEMV's 8; K of one and of several blocks.
        [(1, block), (37, 2 * block), (130, 3 * block)].map(|(rows, cols)| (ty, rows, cols))
    });
    for (ty, rows, cols) in cases.chain([chunked]) {
        let w = random_matrix(&mut rng, ty, rows, cols);
        // The chunked matrix only needs the prefill path.
        let ms = if rows > 1000 { &ms[3..4] } else { &ms[..] };
        for &m in ms {
            let x = random_x(&mut rng, m * cols);
            let got = forward(&w, &x, &device);
            assert_matches_reference(&got, &x, &w, &format!("{ty} {rows}x{cols}, m={m}"));
        }
    }
}

#[test]
#[ignore = "needs a wgpu device: the lavapipe suite of `cargo xtask test` runs it"]
fn gather_returns_the_dequantized_rows() {
    let device = WgpuDevice::default();
    let mut rng = rng(29);
    for ty in TYPES {
        let block = ty.block_size().max(32);
        let w = random_matrix(&mut rng, ty, 41, 2 * block);
        let layer = Wgpu::quant_linear(w.clone(), &device).unwrap();
        let ids = [40i64, 0, 17, 17, 3];
        let got: Vec<f32> = layer
            .gather(Tensor::<Wgpu, 1, Int>::from_data(
                TensorData::new(ids.to_vec(), [ids.len()]),
                &device,
            ))
            .unwrap()
            .into_data()
            .to_vec()
            .unwrap();
        let mut want = vec![0f32; w.cols()];
        for (i, &id) in ids.iter().enumerate() {
            w.dequantize_row(id, &mut want).unwrap();
            let row = &got[i * w.cols()..(i + 1) * w.cols()];
            // The same decoding; only a fused multiply-add may round differently.
            for (k, (g, r)) in row.iter().zip(&want).enumerate() {
                assert!(
                    (g - r).abs() <= 1e-6 * r.abs().max(1e-3),
                    "{ty} row {id} element {k}: kernel {g}, reference {r}"
                );
            }
        }
    }
}

#[test]
#[ignore = "needs a wgpu device: the lavapipe suite of `cargo xtask test` runs it"]
fn reruns_are_bit_identical() {
    let device = WgpuDevice::default();
    let mut rng = rng(31);
    for ty in [
        tributary_quant::GgmlType::Q4_1,
        tributary_quant::GgmlType::Q6_K,
    ] {
        let w = random_matrix(&mut rng, ty, 301, 512);
        for m in [1, 20] {
            let x = random_x(&mut rng, m * w.cols());
            let first = forward(&w, &x, &device);
            let again = forward(&w, &x, &device);
            assert!(
                first
                    .iter()
                    .zip(&again)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{ty}, m={m}"
            );
        }
    }
}
