//! GGUF files, as llama.cpp writes them: metadata, tensor infos and tensor bytes, a CPU
//! reference dequantization, and the Llama-family model config.
//!
//! The embedded default model is a GGUF (SmolLM2-135M-Instruct, Q4_1 with a Q8_0 embedding), and
//! weights stay quantized on every target: this crate hands out each tensor's bytes as they lie in
//! the file, without copying, and the dequantizer exists to check the kernels that consume them.
//!
//! Natively a file is memory-mapped ([`Gguf::open`]), so a 100 MB model costs no read and no
//! copy; in the browser there is no file system, so [`Gguf::parse`] takes the fetched bytes.
//! Either way the whole structure is validated up front — every tensor lies inside the file and
//! has a supported type — so later accessors cannot fail on a well-formed `TensorInfo` from the
//! same file. The parser treats the file as hostile: any bytes give `Ok` or an [`Error`] that
//! names what is wrong, never a panic or an allocation the file's size cannot justify.
//!
//! Versions 2 and 3 share one little-endian layout (3 only allowed big-endian files, which are
//! refused); version 1 used 32-bit counts and is refused.

mod config;
mod dequant;
mod error;
mod parse;
mod types;
mod value;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

pub use config::{Architecture, LlamaConfig, unpermute_qk_row};
pub use dequant::{dequantize, dequantize_into, dequantize_row, row_bytes};
pub use error::{Error, Result};
pub use types::{GgmlType, ggml_type_name};
pub use value::{Array, Value, ValueType};

/// One tensor's entry in the file's table.
///
/// Fields are private because the parser established that they agree with each other and with
/// the file (the byte size follows from type and dimensions, and the bytes are in range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    offset: u64,
    n_elements: u64,
    n_bytes: u64,
}

impl TensorInfo {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dimensions as GGUF lists them: `dims[0]` (ggml's ne0) is the innermost, contiguous
    /// one — the columns of a matrix, i.e. the reverse of the PyTorch / numpy shape. A linear
    /// layer's weight of PyTorch shape `[out, in]` is `[in, out]` here.
    pub fn dims(&self) -> &[u64] {
        &self.dims
    }

    pub fn ggml_type(&self) -> GgmlType {
        self.ty
    }

    /// Byte offset of the tensor's data from the start of the data section (not of the file).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn n_elements(&self) -> u64 {
        self.n_elements
    }

    pub fn n_bytes(&self) -> u64 {
        self.n_bytes
    }

    /// Elements per row: `dims[0]`, or 1 for a tensor without dimensions.
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Rows: the product of every dimension but the first.
    pub fn n_rows(&self) -> u64 {
        // Cannot overflow: the product of all dimensions was checked when parsing.
        self.dims
            .iter()
            .skip(1)
            .fold(1u64, |acc, &d| acc.saturating_mul(d))
    }
}

type Bytes = Box<dyn AsRef<[u8]> + Send + Sync>;

/// A parsed GGUF file and the bytes it was parsed from.
pub struct Gguf {
    bytes: Bytes,
    path: Option<PathBuf>,
    version: u32,
    metadata: BTreeMap<String, Value>,
    tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

impl fmt::Debug for Gguf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gguf")
            .field("path", &self.path)
            .field("len", &self.bytes().len())
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("data_offset", &self.data_offset)
            .finish()
    }
}

/// The file's bytes, so an `Arc<Gguf>` can stand for them wherever shared bytes are wanted.
impl AsRef<[u8]> for Gguf {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl Gguf {
    /// Parses a GGUF held in memory, keeping `bytes` (a `Vec<u8>`, `Arc<[u8]>`, a memory map…)
    /// so that tensor data can be borrowed from it without a copy.
    pub fn parse<B>(bytes: B) -> Result<Gguf>
    where
        B: AsRef<[u8]> + Send + Sync + 'static,
    {
        let parsed = parse::parse(bytes.as_ref())?;
        Ok(Gguf {
            bytes: Box::new(bytes),
            path: None,
            version: parsed.version,
            metadata: parsed.metadata,
            tensors: parsed.tensors,
            index: parsed.index,
            alignment: parsed.alignment,
            data_offset: parsed.data_offset,
        })
    }

    /// Memory-maps and parses the file at `path`; errors name the path.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: impl AsRef<Path>) -> Result<Gguf> {
        let path = path.as_ref();
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // SAFETY: the file is opened read-only and the mapping is only ever read, as immutable
        // bytes; nothing in this process writes to it. Another process truncating or rewriting
        // the file while it is mapped would break that immutability (and can raise SIGBUS): that
        // is outside what a reader can guard against and is out of scope, as for every
        // mmap-based model loader.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let mut gguf = Gguf::parse(map).map_err(|e| Error::InFile {
            path: path.to_owned(),
            source: Box::new(e),
        })?;
        gguf.path = Some(path.to_owned());
        Ok(gguf)
    }

    /// Wraps an error found after parsing with the file's path, when there is one.
    pub(crate) fn in_file(&self, e: Error) -> Error {
        match &self.path {
            Some(path) => Error::InFile {
                path: path.clone(),
                source: Box::new(e),
            },
            None => e,
        }
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        (*self.bytes).as_ref()
    }

    /// The path given to [`Gguf::open`], if the file was opened by path.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// 2 or 3.
    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn metadata(&self) -> &BTreeMap<String, Value> {
        &self.metadata
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// `general.architecture`, which prefixes the model's own keys (`llama.block_count`).
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(Value::as_str)
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key)
            .ok_or_else(|| Error::MissingKey { key: key.into() })
    }

    fn wrong_type(key: &str, expected: &'static str, found: &Value) -> Error {
        Error::WrongValueType {
            key: key.into(),
            expected,
            found: found.describe(),
        }
    }

    /// A required string value.
    pub fn require_str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str()
            .ok_or_else(|| Self::wrong_type(key, "a STRING", v))
    }

    /// A required non-negative integer of any width.
    pub fn require_usize(&self, key: &str) -> Result<usize> {
        let v = self.require(key)?;
        v.as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| Self::wrong_type(key, "a non-negative integer", v))
    }

    /// A required float, FLOAT32 or FLOAT64.
    pub fn require_f32(&self, key: &str) -> Result<f32> {
        let v = self.require(key)?;
        v.as_f64()
            .map(|x| x as f32)
            .ok_or_else(|| Self::wrong_type(key, "a float", v))
    }

    /// A required array.
    pub fn require_array(&self, key: &str) -> Result<&Array> {
        let v = self.require(key)?;
        v.as_array()
            .ok_or_else(|| Self::wrong_type(key, "an ARRAY", v))
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).and_then(|&i| self.tensors.get(i))
    }

    /// From `general.alignment`, 32 by default: every tensor's offset is a multiple of it.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Where the data section starts in the file.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The tensor's bytes in the file, as stored (still quantized).
    ///
    /// Cannot fail for a `TensorInfo` of this file; one from another file is checked anyway.
    pub fn tensor_bytes(&self, t: &TensorInfo) -> Result<&[u8]> {
        let range = self.tensor_range(t)?;
        Ok(&self.bytes()[range])
    }

    /// Where the tensor's bytes lie in [`Gguf::bytes`]: lets a caller that shares the file (an
    /// `Arc<Gguf>`) keep a view of one tensor without copying it.
    pub fn tensor_range(&self, t: &TensorInfo) -> Result<std::ops::Range<usize>> {
        let len = self.bytes().len() as u64;
        let past_end = || {
            let start = self.data_offset.saturating_add(t.offset);
            self.in_file(Error::TensorPastEnd {
                tensor: t.name.clone(),
                start,
                end: start.saturating_add(t.n_bytes),
                len,
            })
        };
        let start = self
            .data_offset
            .checked_add(t.offset)
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(past_end)?;
        let end = usize::try_from(t.n_bytes)
            .ok()
            .and_then(|n| start.checked_add(n))
            .filter(|&end| end as u64 <= len)
            .ok_or_else(past_end)?;
        Ok(start..end)
    }

    /// The whole tensor as f32, in GGUF element order (row-major over `dims` reversed).
    pub fn dequantize(&self, t: &TensorInfo) -> Result<Vec<f32>> {
        let bytes = self.tensor_bytes(t)?;
        let n = usize::try_from(t.n_elements).map_err(|_| {
            self.in_file(Error::TooLarge {
                what: format!("element count of tensor `{}`", t.name),
                value: t.n_elements,
            })
        })?;
        dequantize(t.ty, bytes, n).map_err(|e| self.in_file(e))
    }

    /// Row `row` of the tensor (a run of `dims[0]` elements) as f32.
    pub fn dequantize_row(&self, t: &TensorInfo, row: u64) -> Result<Vec<f32>> {
        let bytes = self.tensor_bytes(t)?;
        dequantize_row(t.ty, bytes, t.row_len(), row).map_err(|e| {
            self.in_file(match e {
                Error::RowOutOfRange { row, rows, .. } => Error::RowOutOfRange {
                    what: format!("tensor `{}`", t.name),
                    row,
                    rows,
                },
                other => other,
            })
        })
    }
}
