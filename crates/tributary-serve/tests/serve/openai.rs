//! Streamed chunks against the tokenizer's own decoding of the whole answer, with the model
//! fixture's byte-fallback tokenizer (Hugging Face `tokenizers`), where one character can take
//! several tokens.

use proptest::prelude::*;
use tributary_model::{StopReason, Tokenizer};
use tributary_serve::openai::{ChunkStream, Reply, Shape};

use crate::common::fixture;

fn tokenizer() -> Tokenizer {
    Tokenizer::from_file(&fixture("llama-gqa/tokenizer.json")).unwrap()
}

fn streamed(tokenizer: &Tokenizer, tokens: &[u32], shape: Shape) -> (String, usize) {
    let mut chunks = ChunkStream::new(Reply::new("m", shape, 0, 0), tokenizer.clone());
    let mut frames: Vec<_> = tokens.iter().map(|&t| chunks.token(t)).collect();
    frames.push(chunks.finished(&StopReason::MaxTokens));
    let text = frames
        .iter()
        .map(|f| {
            let choice = &f["choices"][0];
            match shape {
                Shape::Text => choice["text"].as_str().unwrap().to_owned(),
                Shape::Chat => choice["delta"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            }
        })
        .collect();
    (text, frames.len())
}

#[test]
fn a_character_split_across_byte_tokens_is_sent_whole() {
    let tokenizer = tokenizer();
    // "κ" is two bytes: as byte tokens its first one alone decodes as U+FFFD.
    let ids = tokenizer.encode("aκb").unwrap();
    let (text, frames) = streamed(&tokenizer, &ids, Shape::Text);
    assert_eq!(text, "aκb");
    assert_eq!(frames, ids.len() + 1);
    assert!(!text.contains('\u{FFFD}'));
}

proptest! {
    /// Whatever the model emits, the chunks add up to the decoded whole, in both shapes.
    #[test]
    fn chunks_add_up_to_the_whole(tokens in proptest::collection::vec(0u32..384, 0..40)) {
        let tokenizer = tokenizer();
        let whole = tokenizer.decode(&tokens).unwrap();
        prop_assert_eq!(&streamed(&tokenizer, &tokens, Shape::Text).0, &whole);
        prop_assert_eq!(&streamed(&tokenizer, &tokens, Shape::Chat).0, &whole);
    }
}
