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

/// transformers' record of the embedded default model (SmolLM2-135M-Instruct, Q4_1 GGUF).
fn smollm2_reference() -> serde_json::Value {
    reference("smollm2")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tributary-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// No `--model`: the embedded default. A chat message rendered with the GGUF's own template
/// gives transformers' prompt ids, and greedy decoding (weights kept quantized) its tokens.
#[test]
fn run_chat_on_the_default_model_matches_transformers() {
    let reference = smollm2_reference();
    let prompt = reference["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["kind"] == "chat" && p["messages"].as_array().unwrap().len() == 1)
        .expect("a one-message chat prompt");
    let message = prompt["messages"][0]["content"].as_str().unwrap();
    let greedy = prompt["greedy"].as_array().unwrap();
    let out = tributary(&[
        "run",
        "--chat",
        message,
        "--greedy",
        "--max-tokens",
        &greedy.len().to_string(),
        "--ignore-eos",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["prompt_ids"], prompt["ids"]);
    // Every step's top-2 margin in the reference is above 0.08, far above the CPU's logit error
    // (~4e-5): no step may rightly differ.
    assert!(
        prompt["margins"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m.as_f64().unwrap() > 0.01)
    );
    assert_eq!(&got["generated_ids"], &prompt["greedy"]);
    assert!(
        got["text"].as_str().unwrap().contains("Paris"),
        "{}",
        got["text"]
    );
}

#[test]
fn missing_default_model_says_how_to_install_it() {
    let empty = temp_dir("no-models");
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["run", "--prompt", "hi"])
        .env("TRIBUTARY_MODELS", &empty)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cargo xtask setup"), "{stderr}");
    assert!(stderr.contains(empty.to_str().unwrap()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    std::fs::remove_dir_all(&empty).unwrap();
}

/// A download cut short and a GGUF of an architecture we do not run: one line naming the file
/// and what is wrong, no panic.
#[test]
fn truncated_and_foreign_gguf_files_are_named() {
    let model = std::fs::read(model_path()).unwrap();
    let dir = temp_dir("bad-gguf");
    let truncated = dir.join("truncated.gguf");
    std::fs::write(&truncated, &model[..model.len() / 2]).unwrap();
    // general.architecture's value, a string of five bytes, becomes "bloom".
    let key = b"general.architecture";
    let at = model
        .windows(key.len())
        .position(|w| w == key)
        .expect("the architecture key")
        + key.len()
        + 4
        + 8;
    assert_eq!(&model[at..at + 5], b"llama");
    let mut foreign = model;
    foreign[at..at + 5].copy_from_slice(b"bloom");
    let bloom = dir.join("bloom.gguf");
    std::fs::write(&bloom, &foreign).unwrap();
    for (file, says) in [(&truncated, "past the end"), (&bloom, "bloom")] {
        let out = tributary(&["run", "--model", file.to_str().unwrap(), "--prompt", "hi"]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(file.to_str().unwrap()), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn model_path() -> PathBuf {
    tributary_models::DEFAULT
        .locate()
        .unwrap_or_else(|e| panic!("{e}"))
}
