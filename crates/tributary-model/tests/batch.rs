//! A batch whose sequences each use their own adapter equals each sequence run alone (CPU).

mod common;

use std::path::Path;

#[test]
fn mixed_adapter_batch_matches_sequences_run_alone_on_cpu() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama-gqa");
    let model = common::load::<burn::backend::NdArray>(&dir, &Default::default());
    let worst = common::batch_matches_sequences_run_alone(&model);
    eprintln!("max |Δlogit| batch vs alone: {worst:e}");
}

#[test]
fn continuous_batching_steps_match_sequences_run_alone_on_cpu() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama-gqa");
    let model = common::load::<burn::backend::NdArray>(&dir, &Default::default());
    let worst = common::continuous_batching_matches_sequences_run_alone(&model);
    eprintln!("max |Δlogit| continuous batching vs alone: {worst:e}");
}

#[test]
fn a_batch_with_the_wrong_number_of_adapters_is_an_error() {
    use burn::tensor::{Int, Tensor};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama-gqa");
    let model = common::load::<burn::backend::NdArray>(&dir, &Default::default());
    let tokens = Tensor::<burn::backend::NdArray, 2, Int>::zeros([2, 3], &Default::default());
    let err = model
        .forward(
            tokens,
            &mut model.new_cache(),
            tributary_model::Adapters::PerSequence(&[None]),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("1 adapters given for a batch of 2"),
        "{err}"
    );
}
