//! `tokenizer.json` through Hugging Face's `tokenizers` crate (built without its C++ parts so the
//! same code runs in wasm32).

use std::path::{Path, PathBuf};

use crate::error::{ModelError, read_file};

#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    file: PathBuf,
}

impl Tokenizer {
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        Self::from_bytes(path, &read_file(path)?)
    }

    /// `file` only names the source in errors.
    pub fn from_bytes(file: &Path, bytes: &[u8]) -> Result<Self, ModelError> {
        let inner =
            tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| ModelError::Tokenizer {
                file: file.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            inner,
            file: file.to_path_buf(),
        })
    }

    /// A tokenizer built elsewhere in the crate (from GGUF metadata); `file` names its source.
    pub(crate) fn from_inner(inner: tokenizers::Tokenizer, file: PathBuf) -> Self {
        Self { inner, file }
    }

    /// The id of a token spelled exactly `token` (a special token such as `<|im_end|>`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token ids of `text`, without special tokens added (the prompt is taken as written).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let encoding = self.inner.encode(text, false).map_err(|e| self.err(e))?;
        Ok(encoding.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, ModelError> {
        self.inner.decode(ids, true).map_err(|e| self.err(e))
    }

    /// The tokenizer as `tokenizer.json` would hold it: what an index built with it records (by
    /// hash) when the tokenizer came from a GGUF's metadata rather than a file.
    pub fn to_json(&self) -> Result<String, ModelError> {
        self.inner.to_string(false).map_err(|e| self.err(e))
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    fn err(&self, e: tokenizers::Error) -> ModelError {
        ModelError::Tokenizer {
            file: self.file.clone(),
            reason: e.to_string(),
        }
    }
}
