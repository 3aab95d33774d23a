//! `tributary run` end to end, against the transformers reference of tributary-model's fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tributary-model/tests/fixtures")
}

fn reference(model: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixtures().join(model).join("reference.json")).unwrap())
        .unwrap()
}

fn tributary(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn run_json_matches_transformers_with_and_without_adapter() {
    let model = fixtures().join("llama-gqa");
    let reference = reference("llama-gqa");
    let prompt = reference["prompts"][0].as_str().unwrap();
    let adapter = model.join("adapters/mlp-r4");
    for (expected, adapter) in [
        (&reference["base"][0], None),
        (
            &reference["adapters"]["mlp-r4"][0],
            Some(adapter.to_str().unwrap()),
        ),
    ] {
        let mut args = vec![
            "run",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            prompt,
            "--greedy",
            "--max-tokens",
            "32",
            "--ignore-eos",
            "--json",
            "--logits",
        ];
        if let Some(dir) = adapter {
            args.extend(["--adapter", dir]);
        }
        let out = tributary(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(got["prompt_ids"], expected["prompt_ids"]);
        assert_eq!(got["generated_ids"], expected["greedy"]);
        let diff = got["logits"]
            .as_array()
            .unwrap()
            .iter()
            .zip(expected["last_logits"].as_array().unwrap())
            .map(|(a, b)| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs())
            .fold(0.0, f64::max);
        assert!(diff <= 1e-4, "logits differ by {diff:e}");
        assert!(got["text"].as_str().is_some_and(|t| !t.is_empty()));
    }
}

#[test]
fn missing_model_file_is_named_and_fails_cleanly() {
    let empty = std::env::temp_dir().join(format!("tributary-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = tributary(&[
        "run",
        "--model",
        empty.to_str().unwrap(),
        "--prompt",
        "hi",
        "--json",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tokenizer.json"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    std::fs::remove_dir_all(&empty).unwrap();
}
