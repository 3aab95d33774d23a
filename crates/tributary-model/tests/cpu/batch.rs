//! A batch whose sequences each use their own adapter equals each sequence run alone (CPU).

use crate::common;

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

#[test]
fn peft_export_reads_back_as_the_same_adapter() {
    use tributary_model::AdapterWeights;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama-gqa");
    let model = common::load::<burn::backend::NdArray>(&dir, &Default::default());
    // A PEFT-written adapter (rsLoRA, MLP targets) and a random one, through export and back.
    let peft = AdapterWeights::open_dir(&dir.join("adapters/mlp-r4"), &model.config).unwrap();
    let random = common::random_adapter(&model, "r", 3, &tributary_model::Target::ALL, 5);
    for original in [peft, random] {
        let (config, safetensors) = original.to_peft_bytes();
        let back = AdapterWeights::from_bytes(&original.name, &config, safetensors, &model.config)
            .unwrap();
        assert_eq!(back.config, original.config);
        assert_eq!(back.pairs.len(), original.pairs.len());
        for (a, b) in back.pairs.iter().zip(&original.pairs) {
            assert_eq!((a.layer, a.target), (b.layer, b.target));
            assert!(a.a == b.a && a.b == b.b, "layer {} {:?}", a.layer, a.target);
        }
    }
}
