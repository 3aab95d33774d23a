//! Our model against Hugging Face transformers + PEFT, on the fixtures that
//! `reference/make_fixtures.py` generated with them (logits and greedy tokens in f32).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tributary_model::{AdapterWeights, Model, SamplingParams, Tokenizer, generate};

type B = burn::backend::NdArray<f32>;

#[derive(Deserialize)]
struct Case {
    prompt_ids: Vec<u32>,
    last_logits: Vec<f32>,
    greedy: Vec<u32>,
}

#[derive(Deserialize)]
struct Reference {
    prompts: Vec<String>,
    base: Vec<Case>,
    adapters: BTreeMap<String, Vec<Case>>,
}

const FIXTURES: [&str; 3] = ["llama-gqa", "llama-tied-rope3", "qwen2-bias"];

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference(name: &str) -> Reference {
    let text = std::fs::read_to_string(dir(name).join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn check(
    label: &str,
    model: &Model<B>,
    adapter: Option<&tributary_model::Adapter<B>>,
    case: &Case,
) {
    let run = pollster::block_on(generate(
        model,
        adapter,
        &case.prompt_ids,
        &SamplingParams::greedy(case.greedy.len()),
        |_| true,
    ))
    .unwrap();
    let diff = max_abs_diff(&run.prompt_logits, &case.last_logits);
    eprintln!("{label}: {diff:e}");
    assert!(
        diff <= 1e-4,
        "{label}: last-position logits differ by {diff:e}"
    );
    assert_eq!(run.tokens, case.greedy, "{label}: greedy tokens");
}

fn adapter_weights(model: &Model<B>, fixture: &str, adapter: &str) -> AdapterWeights {
    AdapterWeights::open_dir(&dir(fixture).join("adapters").join(adapter), &model.config).unwrap()
}

fn load_adapter(model: &Model<B>, fixture: &str, adapter: &str) -> tributary_model::Adapter<B> {
    model
        .adapter(&adapter_weights(model, fixture, adapter))
        .unwrap()
}

#[test]
fn tokenizer_matches_transformers() {
    for name in FIXTURES {
        let reference = reference(name);
        let tokenizer = Tokenizer::from_file(&dir(name).join("tokenizer.json")).unwrap();
        for (prompt, case) in reference.prompts.iter().zip(&reference.base) {
            assert_eq!(
                tokenizer.encode(prompt).unwrap(),
                case.prompt_ids,
                "{name}: {prompt}"
            );
            assert_eq!(&tokenizer.decode(&case.prompt_ids).unwrap(), prompt);
        }
    }
}

#[test]
fn base_models_match_transformers() {
    let device = Default::default();
    for name in FIXTURES {
        let model = Model::<B>::load(&dir(name), &device).unwrap();
        for (i, case) in reference(name).base.iter().enumerate() {
            check(&format!("{name} prompt {i}"), &model, None, case);
        }
    }
}

#[test]
fn unmerged_adapters_match_peft() {
    let device = Default::default();
    for name in FIXTURES {
        let model = Model::<B>::load(&dir(name), &device).unwrap();
        for (adapter_name, cases) in reference(name).adapters {
            let adapter = load_adapter(&model, name, &adapter_name);
            for (i, case) in cases.iter().enumerate() {
                check(
                    &format!("{name}+{adapter_name} prompt {i}"),
                    &model,
                    Some(&adapter),
                    case,
                );
            }
        }
    }
}

#[test]
fn merged_adapters_agree_with_unmerged() {
    let device = Default::default();
    for name in FIXTURES {
        let model = Model::<B>::load(&dir(name), &device).unwrap();
        for (adapter_name, cases) in reference(name).adapters {
            let weights = adapter_weights(&model, name, &adapter_name);
            let adapter = model.adapter(&weights).unwrap();
            let merged = model.merged(&weights).unwrap();
            for (i, case) in cases.iter().enumerate() {
                let label = format!("{name}+{adapter_name} merged, prompt {i}");
                check(&label, &merged, None, case);
                let logits = |m: &Model<B>, a| {
                    let params = SamplingParams::greedy(0);
                    let g = generate(m, a, &case.prompt_ids, &params, |_| true);
                    pollster::block_on(g).unwrap().prompt_logits
                };
                let diff = max_abs_diff(&logits(&merged, None), &logits(&model, Some(&adapter)));
                assert!(
                    diff <= 1e-4,
                    "{label}: merged vs unmerged differ by {diff:e}"
                );
            }
        }
    }
}
