//! Users' files that are wrong in every way we could think of, and random damage: each gives a
//! typed error naming the file and the field or tensor at fault, and nothing panics.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use safetensors::{Dtype, tensor::TensorView};
use tributary_model::{
    AdapterWeights, LoraConfig, ModelConfig, ModelError, Tokenizer, WeightFiles,
};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).unwrap()
}

fn gqa_config() -> ModelConfig {
    ModelConfig::from_file(&fixture("llama-gqa/config.json")).unwrap()
}

#[test]
fn unsupported_model_type_names_the_field() {
    let mut json: serde_json::Value =
        serde_json::from_slice(&read("llama-gqa/config.json")).unwrap();
    json["model_type"] = "gpt2".into();
    let err =
        ModelConfig::from_bytes(Path::new("config.json"), json.to_string().as_bytes()).unwrap_err();
    assert!(
        matches!(&err, ModelError::Field { field, .. } if field == "model_type"),
        "{err}"
    );
    assert!(err.to_string().contains("gpt2"), "{err}");
}

#[test]
fn unsupported_rope_type_names_the_nested_field() {
    let mut json: serde_json::Value =
        serde_json::from_slice(&read("llama-tied-rope3/config.json")).unwrap();
    json["rope_parameters"]["rope_type"] = "yarn".into();
    let err =
        ModelConfig::from_bytes(Path::new("config.json"), json.to_string().as_bytes()).unwrap_err();
    assert!(
        matches!(&err, ModelError::Field { field, .. } if field == "rope_parameters.rope_type"),
        "{err}"
    );
}

#[test]
fn legacy_rope_spelling_parses_like_the_new_one() {
    // transformers ≤ 4 wrote rope_theta at the top level and the scaling under rope_scaling.
    let mut json: serde_json::Value =
        serde_json::from_slice(&read("llama-tied-rope3/config.json")).unwrap();
    let params = json["rope_parameters"].take();
    json.as_object_mut().unwrap().remove("rope_parameters");
    json["rope_theta"] = params["rope_theta"].clone();
    json["rope_scaling"] = params.clone();
    json["rope_scaling"]
        .as_object_mut()
        .unwrap()
        .remove("rope_theta");
    let legacy =
        ModelConfig::from_bytes(Path::new("config.json"), json.to_string().as_bytes()).unwrap();
    let current = ModelConfig::from_file(&fixture("llama-tied-rope3/config.json")).unwrap();
    assert_eq!(legacy, current);
}

#[test]
fn bad_json_names_the_file() {
    let err =
        ModelConfig::from_bytes(Path::new("dir/config.json"), b"{\"model_type\": ").unwrap_err();
    assert!(
        matches!(&err, ModelError::Json { file, .. } if file == Path::new("dir/config.json")),
        "{err}"
    );
}

#[test]
fn missing_tensor_is_named() {
    let mut bytes = read("llama-gqa/model.safetensors");
    // Rename one tensor in the header (same length, so the file stays well-formed).
    let at = find(&bytes, b"model.norm.weight").unwrap();
    bytes[at..at + 5].copy_from_slice(b"MODEL");
    let weights =
        WeightFiles::from_bytes(vec![(PathBuf::from("model.safetensors"), bytes)]).unwrap();
    let err = tributary_model::Model::<burn::backend::NdArray<f32>>::from_weights(
        gqa_config(),
        &weights,
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingTensor { tensor, .. } if tensor == "model.norm.weight"),
        "{err}"
    );
}

#[test]
fn wrong_dtype_and_wrong_shape_are_named() {
    let ints = vec![0u8; 8 * 4];
    let view = TensorView::new(Dtype::I64, vec![4], &ints).unwrap();
    let bytes = safetensors::serialize([("t", view)], None).unwrap();
    let weights = WeightFiles::from_bytes(vec![(PathBuf::from("w.safetensors"), bytes)]).unwrap();
    let err = weights.f32("t", &[4]).unwrap_err();
    assert!(
        matches!(&err, ModelError::Tensor { tensor, .. } if tensor == "t"),
        "{err}"
    );
    assert!(err.to_string().contains("I64"), "{err}");
    let err = weights.f32("t", &[2, 2]).unwrap_err();
    assert!(err.to_string().contains("shape"), "{err}");
}

#[test]
fn adapter_for_another_base_is_rejected_with_the_tensor() {
    // llama-gqa has 2 kv heads; qwen2-bias has 1, so k_proj/v_proj have other output sizes.
    let qwen = ModelConfig::from_file(&fixture("qwen2-bias/config.json")).unwrap();
    let err = AdapterWeights::open_dir(&fixture("llama-gqa/adapters/attn-r8"), &qwen).unwrap_err();
    assert!(
        matches!(&err, ModelError::Tensor { tensor, .. } if tensor.contains("k_proj.lora_B") || tensor.contains("v_proj.lora_B")),
        "{err}"
    );
    // A base with fewer layers than the adapter: the extra layer's tensors are named.
    let mut one_layer = gqa_config();
    one_layer.num_layers = 1;
    let err =
        AdapterWeights::open_dir(&fixture("llama-gqa/adapters/attn-r8"), &one_layer).unwrap_err();
    assert!(
        matches!(&err, ModelError::Tensor { tensor, .. } if tensor.contains("layers.1.")),
        "{err}"
    );
}

#[test]
fn unsupported_adapter_options_name_the_field() {
    let base: serde_json::Value =
        serde_json::from_slice(&read("llama-gqa/adapters/attn-r8/adapter_config.json")).unwrap();
    for (field, value) in [
        ("use_dora", serde_json::json!(true)),
        ("target_modules", serde_json::json!(["lm_head"])),
        ("r", serde_json::json!(0)),
        ("rank_pattern", serde_json::json!({"q_proj": 4})),
    ] {
        let mut json = base.clone();
        json[field] = value;
        let err: ModelError =
            LoraConfig::from_bytes("adapter_config.json", json.to_string().as_bytes())
                .unwrap_err()
                .into();
        assert!(
            matches!(&err, ModelError::Field { field: f, .. } if f == field),
            "{field}: {err}"
        );
    }
}

#[test]
fn broken_tokenizer_names_the_file() {
    let err = Tokenizer::from_bytes(Path::new("tokenizer.json"), b"{\"model\": 3}").unwrap_err();
    assert!(
        matches!(&err, ModelError::Tokenizer { file, .. } if file == Path::new("tokenizer.json")),
        "{err}"
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Loads every tensor the way the model would; errors are fine, panics are not.
fn load_all(bytes: Vec<u8>) {
    if let Ok(weights) = WeightFiles::from_bytes(vec![(PathBuf::from("m.safetensors"), bytes)]) {
        let names: Vec<String> = weights.names().map(str::to_owned).collect();
        for name in names {
            if let Ok(shape) = weights.shape(&name).map(<[usize]>::to_vec) {
                let _ = weights.f32(&name, &shape);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn truncated_safetensors_never_panic(cut in 0usize..200_000) {
        let bytes = read("llama-tied-rope3/model.safetensors");
        let cut = cut.min(bytes.len().saturating_sub(1));
        let truncated = bytes[..cut].to_vec();
        let result = WeightFiles::from_bytes(vec![(PathBuf::from("m.safetensors"), truncated.clone())]);
        prop_assert!(result.is_err(), "a file cut at {} of {} bytes was accepted", cut, bytes.len());
        load_all(truncated);
    }

    #[test]
    fn corrupted_safetensors_never_panic(edits in prop::collection::vec((0usize..4096, any::<u8>()), 1..8)) {
        // Damage concentrated in the header, where the parser's decisions are made.
        let mut bytes = read("llama-tied-rope3/model.safetensors");
        for (at, value) in edits {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        load_all(bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(text in ".{0,200}") {
        let _ = ModelConfig::from_bytes(Path::new("config.json"), text.as_bytes());
        let _ = LoraConfig::from_bytes("adapter_config.json", text.as_bytes());
    }

    #[test]
    fn mutated_config_values_never_panic(field in prop::sample::select(vec![
        "vocab_size", "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim",
        "intermediate_size", "num_hidden_layers", "rope_parameters", "eos_token_id", "rms_norm_eps",
    ]), value in prop_oneof![
        Just(serde_json::json!(0)), Just(serde_json::json!(-3)), Just(serde_json::json!(7)),
        Just(serde_json::json!("x")), Just(serde_json::json!(null)), Just(serde_json::json!([1, "a"])),
        Just(serde_json::json!({"rope_type": "llama3"})), Just(serde_json::json!(1e300)),
    ]) {
        let mut json: serde_json::Value = serde_json::from_slice(&read("llama-gqa/config.json")).unwrap();
        json[field] = value;
        if let Ok(config) = ModelConfig::from_bytes(Path::new("config.json"), json.to_string().as_bytes()) {
            prop_assert!(config.num_heads % config.num_kv_heads == 0);
            prop_assert!(config.head_dim % 2 == 0);
        }
    }
}
