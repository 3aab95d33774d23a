use std::path::PathBuf;

use thiserror::Error;

/// Everything that can be wrong with a user's model folder or adapter. Each variant names the file
/// and the field or tensor at fault, so a user can fix the input without reading our code.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: invalid JSON: {source}")]
    Json {
        file: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{file}: field `{field}`: {reason}")]
    Field {
        file: PathBuf,
        field: String,
        reason: String,
    },
    #[error("{file}: not a valid safetensors file: {reason}")]
    Safetensors { file: PathBuf, reason: String },
    #[error("{file}: tensor `{tensor}`: {reason}")]
    Tensor {
        file: PathBuf,
        tensor: String,
        reason: String,
    },
    #[error("tensor `{tensor}` is missing (looked in {searched})")]
    MissingTensor { tensor: String, searched: String },
    #[error("{file}: tokenizer: {reason}")]
    Tokenizer { file: PathBuf, reason: String },
    #[error("{file}: chat template: {reason}")]
    ChatTemplate { file: PathBuf, reason: String },
    #[error("reading a result back from the device failed: {0}")]
    Readback(String),
    #[error("{0}")]
    Generation(String),
    #[error("adapter `{name}`: {source}")]
    Adapter {
        name: String,
        #[source]
        source: tributary_sgmv::SgmvError,
    },
    #[error("KV cache full: {needed} more blocks needed, {free} free")]
    KvFull { needed: usize, free: usize },
    #[error("LoRA batch: {0}")]
    Lora(#[from] tributary_sgmv::SgmvError),
    #[error("quantized weights: {0}")]
    Quant(#[from] tributary_quant::QuantError),
    #[error(transparent)]
    Gguf(#[from] tributary_gguf::Error),
    #[error(
        "adapter `{adapter}` cannot be merged into layer {layer}'s {target}: its weights are \
         quantized (merging would expand or requantize them); serve the adapter unmerged"
    )]
    MergeQuantized {
        adapter: String,
        layer: usize,
        target: String,
    },
}

impl ModelError {
    pub(crate) fn field(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Field {
            file: file.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn tensor(
        file: impl Into<PathBuf>,
        tensor: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Tensor {
            file: file.into(),
            tensor: tensor.into(),
            reason: reason.into(),
        }
    }
}

/// The file-format errors of tributary-peft, as the same variants (and messages) as ours.
impl From<tributary_peft::PeftError> for ModelError {
    fn from(e: tributary_peft::PeftError) -> Self {
        use tributary_peft::PeftError as P;
        match e {
            P::Json { file, source } => Self::Json {
                file: file.into(),
                source,
            },
            P::Field {
                file,
                field,
                reason,
            } => Self::Field {
                file: file.into(),
                field,
                reason,
            },
            P::Safetensors { file, reason } => Self::Safetensors {
                file: file.into(),
                reason,
            },
            P::Tensor {
                file,
                tensor,
                reason,
            } => Self::Tensor {
                file: file.into(),
                tensor,
                reason,
            },
        }
    }
}

/// Reads a whole file, naming it on failure.
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|source| ModelError::Io {
        file: path.to_path_buf(),
        source,
    })
}
