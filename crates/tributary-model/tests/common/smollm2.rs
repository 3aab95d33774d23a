//! The embedded default model (SmolLM2-135M-Instruct, Q4_1 GGUF) against what Hugging Face
//! transformers makes of the same file (tests/fixtures/smollm2/reference.json, written by
//! reference/smollm2_reference.py): shared by the CPU suite and the wgpu suite, which run the
//! same teacher-forced check on their backend.
//!
//! The model file is installed by `cargo xtask setup` (as Chromium is for the browser suite); a
//! missing model fails here with the line that says so.

// Each test binary reads its own part of the reference.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use burn::tensor::{Int, Tensor, TensorData};
use serde::Deserialize;
use tributary_gguf::Gguf;
use tributary_model::{Adapter, AdapterWeights, ChatMessage, Model, QuantBackend, SgmvBackend};

#[derive(Deserialize)]
pub struct Encoded {
    pub text: String,
    pub ids: Vec<u32>,
}

#[derive(Deserialize)]
pub struct Rendered {
    pub messages: Vec<ChatMessage>,
    pub add_generation_prompt: bool,
    pub text: String,
}

#[derive(Deserialize, Clone)]
pub struct Logits {
    pub ids: Vec<usize>,
    pub values: Vec<f32>,
}

#[derive(Deserialize, Clone)]
pub struct Prompt {
    pub kind: String,
    pub text: String,
    pub ids: Vec<u32>,
    #[serde(default)]
    pub messages: Vec<ChatMessage>,
    pub logits: Logits,
    pub greedy: Vec<u32>,
    pub margins: Vec<f32>,
    /// With the adapter: how far it moved the last logits from the base model's.
    #[serde(default)]
    pub moved: f32,
}

#[derive(Deserialize)]
pub struct AdapterReference {
    pub name: String,
    pub prompts: Vec<Prompt>,
}

#[derive(Deserialize)]
pub struct Reference {
    pub vocab_size: usize,
    pub bos_token: String,
    pub eos_token: String,
    pub tokenizer: Vec<Encoded>,
    pub chat: Vec<Rendered>,
    pub prompts: Vec<Prompt>,
    pub adapter: AdapterReference,
}

pub fn reference() -> Reference {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2/reference.json");
    serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap()
}

pub fn model_file() -> Gguf {
    let path = tributary_models::DEFAULT
        .locate()
        .unwrap_or_else(|e| panic!("{e}"));
    Gguf::open(&path).unwrap()
}

/// The bound: a wrong dequantization is off by 0.1 or more.
pub const LOGIT_TOLERANCE: f32 = 2e-3;

/// Loads the default model on `device`, checks that its weights take at most 1.3× the file's
/// tensor bytes by the model's own accounting (expanding them to f32 would be ~5.5×), and runs
/// [`teacher_forced`] on the base model and with the reference's PEFT adapter (applied through
/// SGMV on top of the quantized projections). Returns the largest logit error.
/// `every` thins the prompts (every prompt at 1; at 3, one plain and one chat prompt and one with
/// the adapter) where a forward pass is slow, as on a software GPU.
pub fn check_backend<B: SgmvBackend + QuantBackend>(device: &B::Device, every: usize) -> f32 {
    let gguf = Arc::new(model_file());
    let tensor_bytes: u64 = gguf.tensors().iter().map(|t| t.n_bytes()).sum();
    let model = Model::<B>::from_gguf(gguf, device).unwrap();
    let ratio = model.weight_bytes() as f64 / tensor_bytes as f64;
    println!("weights take {ratio:.3}x the file's tensor bytes");
    assert!(
        ratio <= 1.3,
        "weights take {ratio:.3}x the file's tensor bytes"
    );
    let reference = reference();
    let thin =
        |prompts: &[Prompt]| -> Vec<Prompt> { prompts.iter().step_by(every).cloned().collect() };
    let base = teacher_forced(&model, None, &thin(&reference.prompts));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/smollm2")
        .join(&reference.adapter.name);
    let weights = AdapterWeights::open_dir(&dir, &model.config).unwrap();
    let adapter = model.adapter(&weights).unwrap();
    // An adapter that was ignored would leave the logits where the base model's are: the
    // reference's adapter moves them far more than the tolerance.
    for p in &reference.adapter.prompts {
        assert!(
            p.moved >= 50.0 * LOGIT_TOLERANCE,
            "{}: moved {}",
            p.text,
            p.moved
        );
    }
    let adapted = teacher_forced(&model, Some(&adapter), &thin(&reference.adapter.prompts));
    println!(
        "max logit error: base {base:.2e}, with {} {adapted:.2e}",
        weights.name
    );
    base.max(adapted)
}

/// Every reference prompt: last-position logits within [`LOGIT_TOLERANCE`] of transformers', and
/// the argmax at each greedy step equal to transformers' token wherever its top-2 margin exceeds
/// our measured error.
pub fn teacher_forced<B: SgmvBackend>(
    model: &Model<B>,
    adapter: Option<&Adapter<B>>,
    prompts: &[Prompt],
) -> f32 {
    let vocab = model.config.vocab_size;
    let mut skipped = 0;
    let mut worst = 0f32;
    for prompt in prompts {
        // Teacher forcing: one pass over the prompt and the reference's greedy tokens gives the
        // logits of every greedy step at once.
        let seq: Vec<i32> = prompt
            .ids
            .iter()
            .chain(&prompt.greedy)
            .map(|&t| t as i32)
            .collect();
        let len = seq.len();
        let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(seq, [1, len]), model.device());
        let logits: Vec<f32> = model
            .forward(tokens, &mut model.new_cache(), adapter.into())
            .unwrap()
            .into_data()
            .to_vec()
            .unwrap();
        let at = |pos: usize| &logits[pos * vocab..(pos + 1) * vocab];

        let last = at(prompt.ids.len() - 1);
        let mut prompt_err = 0f32;
        for (&id, &want) in prompt.logits.ids.iter().zip(&prompt.logits.values) {
            let err = (last[id] - want).abs();
            prompt_err = prompt_err.max(err);
            assert!(
                err <= LOGIT_TOLERANCE,
                "{:?}: logit of token {id} is {}, transformers {want}",
                prompt.text,
                last[id]
            );
        }
        for (step, (&want, &margin)) in prompt.greedy.iter().zip(&prompt.margins).enumerate() {
            let row = at(prompt.ids.len() - 1 + step);
            let argmax = row
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 { (i, v) } else { best }
                })
                .0 as u32;
            // Each of the two best logits may be off by our measured error: where the reference's
            // margin is within twice that, rounding may rightly pick the other token.
            if margin <= 2.0 * prompt_err.max(1e-4) {
                skipped += 1;
                continue;
            }
            assert_eq!(argmax, want, "{:?}: greedy step {step}", prompt.text);
        }
        worst = worst.max(prompt_err);
    }
    println!("max logit error {worst:.2e}; greedy steps skipped for a near tie: {skipped}");
    assert!(
        skipped <= 4,
        "{skipped} near ties skipped: too many to trust the check"
    );
    worst
}
