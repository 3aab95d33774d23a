//! The embedded default model (SmolLM2-135M-Instruct, Q4_1 GGUF) against what Hugging Face
//! transformers makes of the same file (tests/fixtures/smollm2/reference.json, written by
//! reference/smollm2_reference.py): its tokenizer and chat template rebuilt from the GGUF metadata,
//! and its forward pass with the weights kept quantized, on the CPU.
//!
//! The model file is installed by `cargo xtask setup` (as Chromium is for the browser suite); a
//! missing model fails here with the line that says so.

use std::path::Path;
use std::sync::Arc;

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use serde::Deserialize;
use tributary_gguf::Gguf;
use tributary_model::{Adapters, ChatMessage, ChatTemplate, Model, SpecialTokens, Tokenizer};

#[derive(Deserialize)]
struct Encoded {
    text: String,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Rendered {
    messages: Vec<ChatMessage>,
    add_generation_prompt: bool,
    text: String,
}

#[derive(Deserialize)]
struct Logits {
    ids: Vec<usize>,
    values: Vec<f32>,
}

#[derive(Deserialize)]
struct Prompt {
    kind: String,
    text: String,
    ids: Vec<u32>,
    #[serde(default)]
    messages: Vec<ChatMessage>,
    logits: Logits,
    greedy: Vec<u32>,
    margins: Vec<f32>,
}

#[derive(Deserialize)]
struct Reference {
    vocab_size: usize,
    bos_token: String,
    eos_token: String,
    tokenizer: Vec<Encoded>,
    chat: Vec<Rendered>,
    prompts: Vec<Prompt>,
}

fn reference() -> Reference {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smollm2/reference.json");
    serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap()
}

fn model() -> Gguf {
    let path = tributary_models::DEFAULT
        .locate()
        .unwrap_or_else(|e| panic!("{e}"));
    Gguf::open(&path).unwrap()
}

#[test]
fn tokenizer_gives_transformers_ids() {
    let (gguf, reference) = (model(), reference());
    let tokenizer = Tokenizer::from_gguf(&gguf).unwrap();
    assert_eq!(tokenizer.vocab_size(), reference.vocab_size);
    assert!(reference.tokenizer.len() >= 10);
    for case in &reference.tokenizer {
        let ids = tokenizer.encode(&case.text).unwrap();
        assert_eq!(ids, case.ids, "ids of {:?}", case.text);
    }
    // Every prompt the logits checks use, chat prompts with their special tokens included.
    for prompt in &reference.prompts {
        assert_eq!(
            tokenizer.encode(&prompt.text).unwrap(),
            prompt.ids,
            "{}",
            prompt.text
        );
    }
    let specials = SpecialTokens::from_gguf(&gguf).unwrap();
    assert_eq!(
        specials.eos.as_ref().map(|t| &t.1),
        Some(&reference.eos_token)
    );
    assert_eq!(
        specials.bos.as_ref().map(|t| &t.1),
        Some(&reference.bos_token)
    );
    assert!(!specials.add_bos);
}

#[test]
fn chat_template_renders_as_transformers_does() {
    let (gguf, reference) = (model(), reference());
    let template = ChatTemplate::from_gguf(&gguf)
        .unwrap()
        .expect("the model has a chat template");
    assert!(reference.chat.len() >= 4);
    for case in &reference.chat {
        let text = template
            .render(&case.messages, case.add_generation_prompt)
            .unwrap();
        assert_eq!(text, case.text);
    }
    for prompt in reference.prompts.iter().filter(|p| p.kind == "chat") {
        assert_eq!(
            template.render(&prompt.messages, true).unwrap(),
            prompt.text
        );
    }
}

/// The bound: a wrong dequantization is off by 0.1 or more.
const LOGIT_TOLERANCE: f32 = 2e-3;

#[test]
fn cpu_forward_matches_transformers_with_weights_quantized() {
    let gguf = Arc::new(model());
    let tensor_bytes: u64 = gguf.tensors().iter().map(|t| t.n_bytes()).sum();
    let reference = reference();
    let model = Model::<NdArray>::from_gguf(gguf, &Default::default()).unwrap();
    // Our own accounting of the weights in memory: the mapped tensors, the reordered q and k
    // copies and the f32 norms. Expanding to f32 would be ~5.5x.
    let ratio = model.weight_bytes() as f64 / tensor_bytes as f64;
    assert!(
        ratio <= 1.3,
        "weights take {ratio:.3}x the file's tensor bytes"
    );

    let vocab = model.config.vocab_size;
    let mut skipped = 0;
    let mut worst = 0f32;
    for prompt in &reference.prompts {
        // Teacher forcing: one pass over the prompt and the reference's greedy tokens gives the
        // logits of every greedy step at once.
        let seq: Vec<i32> = prompt
            .ids
            .iter()
            .chain(&prompt.greedy)
            .map(|&t| t as i32)
            .collect();
        let len = seq.len();
        let tokens = Tensor::<NdArray, 2, Int>::from_data(
            TensorData::new(seq, [1, len]),
            &Default::default(),
        );
        let logits: Vec<f32> = model
            .forward(tokens, &mut model.new_cache(), Adapters::None)
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
}
