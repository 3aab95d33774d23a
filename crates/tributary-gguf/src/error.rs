use std::path::PathBuf;

use crate::GgmlType;

/// Everything that can be wrong with a GGUF file or with what is asked of it.
///
/// Each message names the thing at fault (key, tensor, byte offset) because the person reading
/// it usually has a multi-gigabyte file and no other way to find the bad spot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or mapping the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Any other error, found in a file opened by path.
    #[error("{}: {source}", path.display())]
    InFile { path: PathBuf, source: Box<Error> },
    #[error("bad magic {found:02x?}: not a GGUF file (expected the bytes \"GGUF\")")]
    BadMagic { found: Vec<u8> },
    #[error("GGUF version {version} is not supported (only versions 2 and 3 are){}",
        if *version == 1 { "; version 1 used 32-bit counts and lengths: convert the file again" } else { "" })]
    UnsupportedVersion { version: u32 },
    #[error(
        "big-endian GGUF (version {version}) is not supported: only little-endian files are read"
    )]
    BigEndian { version: u32 },
    #[error(
        "truncated file: {what} at byte {offset} needs {needed} bytes, but the file is {len} bytes long"
    )]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
        len: u64,
    },
    #[error("{what} at byte {offset} is not valid UTF-8")]
    InvalidUtf8 { what: String, offset: u64 },
    #[error("metadata key `{key}`: unknown value type {type_id} at byte {offset}")]
    UnknownValueType {
        key: String,
        type_id: u32,
        offset: u64,
    },
    #[error("metadata key `{key}`: bool byte {value} at byte {offset} is neither 0 nor 1")]
    InvalidBool { key: String, value: u8, offset: u64 },
    #[error("metadata key `{key}`: arrays nested deeper than {max} levels")]
    NestingTooDeep { key: String, max: usize },
    #[error("metadata key `{key}` appears twice")]
    DuplicateKey { key: String },
    #[error("tensor `{name}` appears twice")]
    DuplicateTensor { name: String },
    #[error("`general.alignment` is {value}: it must be a u32 power of two")]
    BadAlignment { value: String },
    #[error("tensor `{tensor}` has {n_dims} dimensions; at most {max} are allowed")]
    TooManyDims {
        tensor: String,
        n_dims: u32,
        max: u32,
    },
    #[error("tensor `{tensor}`: dimensions {dims:?} overflow")]
    DimsOverflow { tensor: String, dims: Vec<u64> },
    #[error("tensor `{tensor}`: unknown ggml type id {type_id}")]
    UnknownType { tensor: String, type_id: u32 },
    #[error(
        "tensor `{tensor}`: ggml type {name} (id {type_id}) is not supported; supported are {}",
        GgmlType::supported_names()
    )]
    UnsupportedType {
        tensor: String,
        name: &'static str,
        type_id: u32,
    },
    #[error("{what}: row length {ne0} is not a multiple of {ty}'s block size {}", ty.block_size())]
    NotBlockAligned {
        what: String,
        ty: GgmlType,
        ne0: u64,
    },
    #[error("tensor `{tensor}`: offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    #[error(
        "tensor `{tensor}` (bytes {start}..{end} of the file) runs past the end of the file ({len} bytes)"
    )]
    TensorPastEnd {
        tensor: String,
        start: u64,
        end: u64,
        len: u64,
    },
    #[error("{ty} data for {n_elements} elements must be {expected} bytes, got {actual}")]
    LengthMismatch {
        ty: GgmlType,
        n_elements: u64,
        expected: u64,
        actual: u64,
    },
    #[error("{what} ({value}) does not fit in this platform's address space")]
    TooLarge { what: String, value: u64 },
    #[error("{what}: row {row} is out of range ({rows} rows)")]
    RowOutOfRange { what: String, row: u64, rows: u64 },
    #[error("missing metadata key `{key}`")]
    MissingKey { key: String },
    #[error("metadata key `{key}` is {found}, expected {expected}")]
    WrongValueType {
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("metadata key `{key}` is {value}: {reason}")]
    InvalidConfig {
        key: String,
        value: String,
        reason: &'static str,
    },
    #[error(
        "`general.architecture` is \"{arch}\": {arch} is not supported (supported: llama, qwen2)"
    )]
    UnsupportedArchitecture { arch: String },
}

impl Error {
    /// The error without the file path around it, for callers that match on the kind.
    pub fn root(&self) -> &Error {
        match self {
            Error::InFile { source, .. } => source.root(),
            other => other,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
