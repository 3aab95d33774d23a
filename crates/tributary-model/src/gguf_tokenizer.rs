//! The tokenizer and chat template a GGUF file carries in its metadata, rebuilt as a `tokenizers`
//! `Tokenizer` and a [`ChatTemplate`], so everything downstream of [`Tokenizer`] is unchanged.
//!
//! A GGUF has no `tokenizer.json`: llama.cpp stores the vocabulary, merges, token types and
//! special ids under `tokenizer.ggml.*`. The reference is what Hugging Face transformers builds from
//! the same keys (`integrations/gguf/gguf_tokenizer_mapping.py`, transformers 5.23): for a
//! byte-level vocabulary (`tokenizer.ggml.model = gpt2`) that is GPT-2's tokenizer — a BPE model
//! with no subword prefix or suffix and no unknown token, the ByteLevel pre-tokenizer with its
//! GPT-2 split regex and no prefix space, the ByteLevel decoder — plus every token the file marks
//! CONTROL as a special token and every USER_DEFINED one as a plain added token. A few vocabularies
//! name a split regex in `tokenizer.ggml.pre`; those are refused rather than tokenized differently
//! from the model's training. Sentencepiece (`llama`) and unigram (`t5`) vocabularies are refused
//! by name too: no default model uses them yet.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};
use tributary_gguf::{Array, Gguf};

use crate::chat::ChatTemplate;
use crate::error::ModelError;
use crate::tokenizer::Tokenizer;

/// llama.cpp's `LLAMA_TOKEN_TYPE_CONTROL` and `_USER_DEFINED`.
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

/// Pre-tokenizer names for which transformers replaces GPT-2's split regex with the model's own.
/// A file naming one of these would be split differently from how its merges were learned, so it
/// is refused until that regex is carried over.
const OWN_SPLIT: &[&str] = &[
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
    "dbrx",
    "smaug-bpe",
    "tekken",
    "qwen2",
    "deepseek-r1-qwen",
    "kormo",
    "f2llmv2",
    "megrez",
    "qwen35",
    "gpt-4o",
    "llama4",
    "kanana2",
    "talkie",
    "minimax-m2",
];

/// What a GGUF names as its tokenizer's special tokens, as strings (transformers' `bos_token`,
/// `eos_token`): the chat template and the stop condition use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<(u32, String)>,
    pub eos: Option<(u32, String)>,
    pub unk: Option<(u32, String)>,
    pub pad: Option<(u32, String)>,
    /// `tokenizer.ggml.add_bos_token`: whether a plain prompt starts with BOS. The tokenizer never
    /// adds it itself (prompts are encoded as written); the caller prepends `bos` when this is set.
    pub add_bos: bool,
}

/// The file name errors cite: the path when the GGUF was opened from one.
fn source_name(gguf: &Gguf) -> PathBuf {
    gguf.path()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("<gguf bytes>"))
}

fn field(gguf: &Gguf, key: &str, reason: impl Into<String>) -> ModelError {
    ModelError::field(source_name(gguf), key, reason)
}

fn strings<'a>(gguf: &'a Gguf, key: &str) -> Result<&'a [String], ModelError> {
    let array = gguf
        .require_array(key)
        .map_err(|e| field(gguf, key, e.to_string()))?;
    array
        .as_strings()
        .ok_or_else(|| field(gguf, key, "expected an array of strings"))
}

/// `tokenizer.ggml.token_type`, one entry per token, or `None` when the file has none.
fn token_types(gguf: &Gguf, n_tokens: usize) -> Result<Option<Vec<i32>>, ModelError> {
    const KEY: &str = "tokenizer.ggml.token_type";
    let Some(value) = gguf.get(KEY) else {
        return Ok(None);
    };
    let types = match value.as_array() {
        Some(Array::I32(v)) => v.clone(),
        Some(Array::U32(v)) => v.iter().map(|&t| t as i32).collect(),
        _ => return Err(field(gguf, KEY, "expected an array of INT32")),
    };
    if types.len() != n_tokens {
        return Err(field(
            gguf,
            KEY,
            format!(
                "{} entries for {n_tokens} tokens in tokenizer.ggml.tokens",
                types.len()
            ),
        ));
    }
    Ok(Some(types))
}

impl SpecialTokens {
    pub fn from_gguf(gguf: &Gguf) -> Result<Self, ModelError> {
        let tokens = strings(gguf, "tokenizer.ggml.tokens")?;
        let id = |key: &str| -> Result<Option<(u32, String)>, ModelError> {
            let key = format!("tokenizer.ggml.{key}");
            let Some(value) = gguf.get(&key) else {
                return Ok(None);
            };
            let id = value
                .as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| field(gguf, &key, "expected a token id"))?;
            let token = tokens.get(id as usize).ok_or_else(|| {
                field(
                    gguf,
                    &key,
                    format!(
                        "token id {id} is past the {}-token vocabulary",
                        tokens.len()
                    ),
                )
            })?;
            Ok(Some((id, token.clone())))
        };
        let add_bos = match gguf.get("tokenizer.ggml.add_bos_token") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| field(gguf, "tokenizer.ggml.add_bos_token", "expected a BOOL"))?,
        };
        Ok(Self {
            bos: id("bos_token_id")?,
            eos: id("eos_token_id")?,
            unk: id("unknown_token_id")?,
            pad: id("padding_token_id")?,
            add_bos,
        })
    }
}

/// GPT-2's printable stand-ins for the 256 byte values, the alphabet a byte-level vocabulary is
/// spelled in: printable Latin-1 bytes stand for themselves, the rest map to U+0100 onwards.
fn byte_alphabet() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for (byte, slot) in table.iter_mut().enumerate() {
        let b = byte as u32;
        let printable = (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
        *slot = if printable {
            char::from_u32(b).expect("Latin-1 is valid")
        } else {
            let c = char::from_u32(next).expect("below the surrogates");
            next += 1;
            c
        };
    }
    table
}

impl Tokenizer {
    /// The tokenizer in `gguf`'s metadata, as transformers builds it from the same file.
    pub fn from_gguf(gguf: &Gguf) -> Result<Self, ModelError> {
        let file = source_name(gguf);
        let model = gguf
            .require_str("tokenizer.ggml.model")
            .map_err(|e| field(gguf, "tokenizer.ggml.model", e.to_string()))?;
        if model != "gpt2" {
            return Err(field(
                gguf,
                "tokenizer.ggml.model",
                format!("`{model}` vocabularies are not supported (only byte-level BPE, `gpt2`)"),
            ));
        }
        if let Some(pre) = gguf.get("tokenizer.ggml.pre").and_then(|v| v.as_str())
            && OWN_SPLIT.contains(&pre)
        {
            return Err(field(
                gguf,
                "tokenizer.ggml.pre",
                format!("pre-tokenizer `{pre}` splits text with its own regex, not supported yet"),
            ));
        }
        let tokens = strings(gguf, "tokenizer.ggml.tokens")?;
        let types = token_types(gguf, tokens.len())?;
        let specials = SpecialTokens::from_gguf(gguf)?;

        // A token spelled outside the byte alphabet (llama.cpp writes some added tokens as plain
        // text) is respelled byte by byte, as transformers does, so the BPE can reach it.
        let alphabet = byte_alphabet();
        let in_alphabet: HashSet<char> = alphabet.iter().copied().collect();
        let spelled = |t: &str| t.chars().all(|c| in_alphabet.contains(&c));
        let mut vocab = Vocab::default();
        for (id, token) in tokens.iter().enumerate() {
            let key = if spelled(token) {
                token.clone()
            } else {
                token.bytes().map(|b| alphabet[b as usize]).collect()
            };
            // transformers builds a dict: a later duplicate wins.
            vocab.insert(key, id as u32);
        }
        let merges = match gguf.get("tokenizer.ggml.merges") {
            None => {
                return Err(field(
                    gguf,
                    "tokenizer.ggml.merges",
                    "missing: a byte-level vocabulary needs its merges",
                ));
            }
            Some(_) => strings(gguf, "tokenizer.ggml.merges")?
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    m.split_once(' ')
                        .filter(|(_, b)| !b.contains(' '))
                        .map(|(a, b)| (a.to_owned(), b.to_owned()))
                        .ok_or_else(|| {
                            field(
                                gguf,
                                "tokenizer.ggml.merges",
                                format!("merge {i} `{m}` is not two tokens separated by a space"),
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .continuing_subword_prefix(String::new())
            .end_of_word_suffix(String::new())
            .fuse_unk(false)
            .build()
            .map_err(|e| ModelError::Tokenizer {
                file: file.clone(),
                reason: format!("tokenizer.ggml.merges: {e}"),
            })?;
        let mut inner = HfTokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        inner.with_decoder(Some(ByteLevel::default()));

        // CONTROL tokens stay whole and are dropped when decoding; transformers skips any spelled
        // outside the byte alphabet (a llama.cpp mislabel that would grow the vocabulary).
        let mut special: Vec<AddedToken> = Vec::new();
        let mut added: Vec<AddedToken> = Vec::new();
        if let Some(types) = &types {
            for (token, &ty) in tokens.iter().zip(types) {
                if ty == CONTROL && spelled(token) {
                    special.push(AddedToken::from(token.clone(), true).normalized(false));
                } else if ty == USER_DEFINED {
                    added.push(AddedToken::from(token.clone(), false).normalized(false));
                }
            }
        }
        // The named special tokens are special whatever their type says, as in transformers.
        for (_, token) in [&specials.bos, &specials.eos, &specials.unk, &specials.pad]
            .into_iter()
            .flatten()
        {
            if !special.iter().any(|t| &t.content == token) {
                special.push(AddedToken::from(token.clone(), true).normalized(false));
            }
        }
        inner.add_special_tokens(&special);
        inner.add_tokens(&added);
        Ok(Tokenizer::from_inner(inner, file))
    }
}

impl ChatTemplate {
    /// `tokenizer.chat_template` with the file's BOS and EOS token strings; `None` when the file
    /// has no template.
    pub fn from_gguf(gguf: &Gguf) -> Result<Option<Self>, ModelError> {
        const KEY: &str = "tokenizer.chat_template";
        let Some(value) = gguf.get(KEY) else {
            return Ok(None);
        };
        let source = value
            .as_str()
            .ok_or_else(|| field(gguf, KEY, "expected a STRING"))?;
        let specials = SpecialTokens::from_gguf(gguf)?;
        fn name(t: &Option<(u32, String)>) -> &str {
            t.as_ref().map_or("", |(_, s)| s.as_str())
        }
        Self::new(
            &source_name(gguf),
            source,
            name(&specials.bos),
            name(&specials.eos),
        )
        .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_is_gpt2s() {
        let a = byte_alphabet();
        // Values from GPT-2's encoder: space is Ġ, newline Ċ, byte 0 is Ā, 0xad is Ń.
        assert_eq!(a[b' ' as usize], 'Ġ');
        assert_eq!(a[b'\n' as usize], 'Ċ');
        assert_eq!(a[0], 'Ā');
        assert_eq!(a[0xad], 'Ń');
        assert_eq!(a[b'A' as usize], 'A');
        let distinct: HashSet<char> = a.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }
}
