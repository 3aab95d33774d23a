//! The default model on the CPU: tokenizer and chat template rebuilt from the GGUF metadata,
//! and the forward pass with the weights kept quantized (see `common/smollm2.rs`).

use burn::backend::NdArray;
use tributary_model::{ChatTemplate, SpecialTokens, Tokenizer};

use crate::common::smollm2::{model_file as model, reference};

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

#[test]
fn cpu_forward_matches_transformers_with_weights_quantized() {
    crate::common::smollm2::check_backend::<NdArray>(&Default::default(), 1);
}
