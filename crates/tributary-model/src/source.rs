//! Where a command's model comes from: a Hugging Face folder (safetensors, tokenizer.json) or a
//! GGUF file (weights, tokenizer and chat template in one), behind one type, so that `run`,
//! `serve` and the benches take either with one `--model` flag.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tributary_gguf::Gguf;
use tributary_quant::QuantBackend;
use tributary_sgmv::SgmvBackend;

use crate::chat::ChatTemplate;
use crate::error::ModelError;
use crate::model::Model;
use crate::tokenizer::Tokenizer;

#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A Hugging Face model folder.
    Dir(PathBuf),
    /// A GGUF file, opened (memory-mapped natively) once and shared by everything loaded from it.
    Gguf(Arc<Gguf>),
}

impl ModelSource {
    /// A folder is a Hugging Face model; a file must be a GGUF (checked by opening it, so a
    /// wrong file is named with what is wrong with it).
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let meta = std::fs::metadata(path).map_err(|source| ModelError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        if meta.is_dir() {
            Ok(Self::Dir(path.to_path_buf()))
        } else {
            Ok(Self::Gguf(Arc::new(Gguf::open(path)?)))
        }
    }

    /// The file or folder the model was opened from.
    pub fn path(&self) -> PathBuf {
        match self {
            Self::Dir(dir) => dir.clone(),
            Self::Gguf(gguf) => gguf
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("<gguf bytes>")),
        }
    }

    /// The name an API reports: the folder's name, or the file's without `.gguf`.
    pub fn name(&self) -> String {
        let path = self.path();
        let name = match self {
            Self::Dir(_) => path.file_name(),
            Self::Gguf(_) => path.file_stem(),
        };
        name.map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "base".into())
    }

    pub fn tokenizer(&self) -> Result<Tokenizer, ModelError> {
        match self {
            Self::Dir(dir) => Tokenizer::from_file(&dir.join("tokenizer.json")),
            Self::Gguf(gguf) => Tokenizer::from_gguf(gguf),
        }
    }

    /// The model's own chat template, if it has one.
    pub fn chat_template(&self) -> Result<Option<ChatTemplate>, ModelError> {
        match self {
            Self::Dir(dir) => ChatTemplate::from_model_dir(dir),
            Self::Gguf(gguf) => ChatTemplate::from_gguf(gguf),
        }
    }

    /// The weights on `device`: a folder's as f32, a GGUF's kept in their block formats.
    pub fn load<B: SgmvBackend + QuantBackend>(
        &self,
        device: &B::Device,
    ) -> Result<Model<B>, ModelError> {
        match self {
            Self::Dir(dir) => Model::load(dir, device),
            Self::Gguf(gguf) => Model::from_gguf(Arc::clone(gguf), device),
        }
    }
}
