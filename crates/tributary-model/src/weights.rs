//! Tensors from safetensors files — one file or shards listed in `model.safetensors.index.json` —
//! read from a folder natively or from fetched bytes in the browser, converted to f32.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors, tensor::Metadata};
use serde_json::Value;

use crate::config::parse_json_object;
use crate::error::{ModelError, read_file};

struct File {
    name: PathBuf,
    bytes: Vec<u8>,
    /// Where the tensor data starts (after the 8-byte length and the JSON header).
    data_start: usize,
    metadata: Metadata,
}

/// A set of safetensors files whose headers have been validated; tensors are converted on demand.
pub struct WeightFiles {
    files: Vec<File>,
    /// Tensor name → index in `files`.
    index: HashMap<String, usize>,
}

impl std::fmt::Debug for WeightFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightFiles")
            .field(
                "files",
                &self.files.iter().map(|x| &x.name).collect::<Vec<_>>(),
            )
            .field("tensors", &self.index.len())
            .finish()
    }
}

impl WeightFiles {
    /// Opens `prefix.safetensors`, or the shards named by `prefix.safetensors.index.json`.
    pub fn open_dir(dir: &Path, prefix: &str) -> Result<Self, ModelError> {
        let single = dir.join(format!("{prefix}.safetensors"));
        let index = dir.join(format!("{prefix}.safetensors.index.json"));
        if single.exists() || !index.exists() {
            return Self::from_bytes(vec![(single.clone(), read_file(&single)?)]);
        }
        let shards = shard_names(&index, &read_file(&index)?)?;
        let files = shards
            .into_iter()
            .map(|name| {
                let path = dir.join(&name);
                read_file(&path).map(|bytes| (path, bytes))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_bytes(files)
    }

    /// Validates each file's header; `name` is only used in errors.
    pub fn from_bytes(files: Vec<(PathBuf, Vec<u8>)>) -> Result<Self, ModelError> {
        let mut parsed = Vec::with_capacity(files.len());
        let mut index = HashMap::new();
        for (i, (name, bytes)) in files.into_iter().enumerate() {
            let (header_len, metadata) =
                SafeTensors::read_metadata(&bytes).map_err(|e| ModelError::Safetensors {
                    file: name.clone(),
                    reason: e.to_string(),
                })?;
            for tensor in metadata.tensors().keys() {
                if index.insert(tensor.clone(), i).is_some() {
                    return Err(ModelError::tensor(
                        &name,
                        tensor,
                        "appears in more than one file",
                    ));
                }
            }
            parsed.push(File {
                name,
                bytes,
                data_start: 8 + header_len,
                metadata,
            });
        }
        Ok(Self {
            files: parsed,
            index,
        })
    }

    pub fn contains(&self, tensor: &str) -> bool {
        self.index.contains_key(tensor)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// Where `tensor` lives, for error messages.
    pub fn file_of(&self, tensor: &str) -> Option<&Path> {
        self.index
            .get(tensor)
            .map(|&i| self.files[i].name.as_path())
    }

    /// The tensor's shape as stored, or a `MissingTensor` error.
    pub fn shape(&self, tensor: &str) -> Result<&[usize], ModelError> {
        let file = self.file(tensor)?;
        Ok(&file.metadata.info(tensor).expect("indexed").shape)
    }

    /// The tensor converted to f32, after checking it has exactly `shape`.
    pub fn f32(&self, tensor: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let file = self.file(tensor)?;
        let info = file.metadata.info(tensor).expect("indexed");
        if info.shape != shape {
            return Err(ModelError::tensor(
                &file.name,
                tensor,
                format!("shape {:?}, expected {shape:?}", info.shape),
            ));
        }
        let (start, end) = info.data_offsets;
        let bytes = file
            .bytes
            .get(file.data_start + start..file.data_start + end)
            .ok_or_else(|| ModelError::tensor(&file.name, tensor, "data lies outside the file"))?;
        let values: Vec<f32> = match info.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(ModelError::tensor(
                    &file.name,
                    tensor,
                    format!("dtype {other:?} is not supported (F32, F16 and BF16 are)"),
                ));
            }
        };
        let expected: usize = shape.iter().product();
        if values.len() != expected {
            return Err(ModelError::tensor(
                &file.name,
                tensor,
                format!("holds {} values, its shape needs {expected}", values.len()),
            ));
        }
        Ok(values)
    }

    fn file(&self, tensor: &str) -> Result<&File, ModelError> {
        match self.index.get(tensor) {
            Some(&i) => Ok(&self.files[i]),
            None => Err(ModelError::MissingTensor {
                tensor: tensor.to_owned(),
                searched: self
                    .files
                    .iter()
                    .map(|f| f.name.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

/// The distinct shard file names of an index, in first-seen order.
pub fn shard_names(file: &Path, bytes: &[u8]) -> Result<Vec<String>, ModelError> {
    let map = parse_json_object(file, bytes)?;
    let Some(Value::Object(weight_map)) = map.get("weight_map") else {
        return Err(ModelError::field(
            file,
            "weight_map",
            "missing or not an object",
        ));
    };
    let mut names: Vec<String> = Vec::new();
    for (tensor, shard) in weight_map {
        let shard = shard.as_str().ok_or_else(|| {
            ModelError::field(file, format!("weight_map.{tensor}"), "expected a file name")
        })?;
        if shard.contains('/') || shard.contains('\\') || shard.starts_with('.') {
            return Err(ModelError::field(
                file,
                format!("weight_map.{tensor}"),
                format!("`{shard}` is not a plain file name"),
            ));
        }
        if !names.iter().any(|n| n == shard) {
            names.push(shard.to_owned());
        }
    }
    Ok(names)
}
