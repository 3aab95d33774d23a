//! The CPU kernel against the reference (tributary-gguf's dequantization, itself checked
//! bit-for-bit against gguf-py), over every supported type and odd shapes.

mod common;

use common::{TYPES, assert_matches_reference, random_matrix, random_x, rng};
use tributary_quant::{GgmlType, QMatrix, QuantError, matmul, matmul_threads};

#[test]
fn matches_the_reference_on_every_type_and_odd_shapes() {
    let mut rng = rng(19);
    for ty in TYPES {
        let block = ty.block_size().max(32);
        // Rows not a multiple of any tile or task size; K of one and of several blocks.
        for (rows, cols) in [(1, block), (7, 2 * block), (33, 3 * block), (130, block)] {
            let w = random_matrix(&mut rng, ty, rows, cols);
            for m in [1, 2, 3, 4, 7] {
                let x = random_x(&mut rng, m * cols);
                let mut got = vec![f32::NAN; m * rows];
                matmul(&x, &w, &mut got).unwrap();
                assert_matches_reference(&got, &x, &w, &format!("{ty} {rows}x{cols}, m={m}"));
            }
        }
    }
}

#[test]
fn bit_identical_across_runs_and_thread_counts() {
    let mut rng = rng(7);
    for ty in [GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q6_K] {
        let block = ty.block_size().max(32);
        let w = random_matrix(&mut rng, ty, 301, 4 * block);
        for m in [1, 5] {
            let x = random_x(&mut rng, m * w.cols());
            let mut first = vec![0f32; m * w.rows()];
            matmul_threads(&x, &w, &mut first, 1).unwrap();
            for threads in [1, 2, 3] {
                let mut again = vec![0f32; m * w.rows()];
                matmul_threads(&x, &w, &mut again, threads).unwrap();
                let same = first
                    .iter()
                    .zip(&again)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{ty}, m={m}, {threads} threads");
            }
        }
    }
}

#[test]
fn bad_shapes_are_typed_errors() {
    // K not a multiple of the block size.
    assert!(matches!(
        QMatrix::from_vec("blk.0.attn_q.weight", GgmlType::Q4_1, 2, 48, vec![0; 60]),
        Err(QuantError::NotBlockAligned {
            cols: 48,
            block: 32,
            ..
        })
    ));
    let err = QMatrix::from_vec("blk.0.attn_q.weight", GgmlType::Q4_1, 2, 64, vec![0; 79]);
    match err {
        Err(e @ QuantError::Length { expected: 80, .. }) => {
            assert!(e.to_string().contains("blk.0.attn_q.weight"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let w = QMatrix::from_vec("w", GgmlType::Q8_0, 3, 32, vec![0; 3 * 34]).unwrap();
    let mut y = vec![0f32; 3];
    assert!(matches!(
        matmul(&[0.0; 33], &w, &mut y),
        Err(QuantError::Shape { .. })
    ));
    assert!(matches!(
        matmul(&[0.0; 64], &w, &mut y),
        Err(QuantError::Shape { .. })
    ));
}
