//! The GGUF layout, read defensively: every length and count in the file is untrusted, so each
//! read is bounds-checked, each size is computed with checked arithmetic, and no buffer is
//! reserved larger than the bytes that remain could fill.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};
use crate::types::ggml_type_name;
use crate::value::{Array, Value, ValueType};
use crate::{GgmlType, TensorInfo};

const MAGIC: &[u8; 4] = b"GGUF";
/// ggml's `GGML_MAX_DIMS`: llama.cpp refuses tensors with more.
pub(crate) const MAX_DIMS: u32 = 4;
/// The GGUF default when `general.alignment` is absent.
pub(crate) const DEFAULT_ALIGNMENT: u64 = 32;
/// llama.cpp reads no nested arrays at all; gguf-py writes them. A few levels cover every real
/// use while a forged file cannot recurse until the stack overflows.
pub(crate) const MAX_NESTING: usize = 8;
/// name length (u64) + n_dims (u32) + type (u32) + offset (u64): the smallest tensor info.
const MIN_TENSOR_INFO: usize = 8 + 4 + 4 + 8;

pub(crate) struct Parsed {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
    pub index: HashMap<String, usize>,
    pub alignment: u64,
    pub data_offset: u64,
}

/// A read that ran out of bytes; turned into [`Error::Truncated`] by the caller, who knows what
/// was being read. Building that description only on failure keeps the vocabulary loop cheap.
struct Short {
    offset: usize,
    needed: u64,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        let short = Short {
            offset: self.pos,
            needed: n as u64,
        };
        let end = self.pos.checked_add(n).ok_or(short)?;
        let slice = self.bytes.get(self.pos..end).ok_or(Short {
            offset: self.pos,
            needed: n as u64,
        })?;
        self.pos = end;
        Ok(slice)
    }

    /// A length read from the file, which may not even fit in `usize` on wasm32.
    fn take_u64(&mut self, n: u64) -> Result<&'a [u8], Short> {
        match usize::try_from(n) {
            Ok(n) => self.take(n),
            Err(_) => Err(Short {
                offset: self.pos,
                needed: n,
            }),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Short> {
        let pos = self.pos;
        let slice = self.take(N)?;
        slice.try_into().map_err(|_| Short {
            offset: pos,
            needed: N as u64,
        })
    }

    fn u8(&mut self) -> Result<u8, Short> {
        Ok(u8::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, Short> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, Short> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

/// Context for turning a [`Short`] into a message.
struct Ctx {
    len: u64,
}

impl Ctx {
    fn truncated(&self, short: Short, what: impl FnOnce() -> String) -> Error {
        Error::Truncated {
            what: what(),
            offset: short.offset as u64,
            needed: short.needed,
            len: self.len,
        }
    }
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed> {
    let ctx = Ctx {
        len: bytes.len() as u64,
    };
    let mut c = Cursor { bytes, pos: 0 };

    let prefix = bytes.get(..4).unwrap_or(bytes);
    if !MAGIC.starts_with(prefix) {
        return Err(Error::BadMagic {
            found: prefix.to_vec(),
        });
    }
    c.take(4).map_err(|s| ctx.truncated(s, || "magic".into()))?;

    let version = c.u32().map_err(|s| ctx.truncated(s, || "version".into()))?;
    match version {
        2 | 3 => {}
        // A big-endian file has the same magic bytes but every number swapped.
        v if matches!(v.swap_bytes(), 1..=3) => {
            return Err(Error::BigEndian {
                version: v.swap_bytes(),
            });
        }
        v => return Err(Error::UnsupportedVersion { version: v }),
    }
    let tensor_count = c
        .u64()
        .map_err(|s| ctx.truncated(s, || "tensor count".into()))?;
    let kv_count = c
        .u64()
        .map_err(|s| ctx.truncated(s, || "metadata count".into()))?;

    let mut metadata = BTreeMap::new();
    for i in 0..kv_count {
        let key = read_string(&mut c, &ctx, || format!("key of metadata entry #{i}"))?;
        let type_offset = c.pos as u64;
        let type_id = c
            .u32()
            .map_err(|s| ctx.truncated(s, || format!("value type of metadata key `{key}`")))?;
        let ty = ValueType::from_id(type_id).ok_or_else(|| Error::UnknownValueType {
            key: key.clone(),
            type_id,
            offset: type_offset,
        })?;
        let value = read_value(&mut c, &ctx, ty, &key, 0)?;
        if metadata.contains_key(&key) {
            return Err(Error::DuplicateKey { key });
        }
        metadata.insert(key, value);
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(Value::U32(a)) if a.is_power_of_two() => u64::from(*a),
        Some(other) => {
            return Err(Error::BadAlignment {
                value: other.describe(),
            });
        }
    };

    let cap = usize::try_from(tensor_count)
        .unwrap_or(usize::MAX)
        .min(c.remaining() / MIN_TENSOR_INFO);
    let mut tensors = Vec::with_capacity(cap);
    let mut index = HashMap::with_capacity(cap);
    for i in 0..tensor_count {
        let info = read_tensor_info(&mut c, &ctx, i, alignment)?;
        if index.contains_key(&info.name) {
            return Err(Error::DuplicateTensor { name: info.name });
        }
        index.insert(info.name.clone(), tensors.len());
        tensors.push(info);
    }

    // The data section starts at the next multiple of the alignment after the tensor infos.
    let data_offset = (c.pos as u64)
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| Error::TooLarge {
            what: "start of the tensor data".into(),
            value: c.pos as u64,
        })?;
    for t in &tensors {
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.n_bytes));
        match end {
            Some(end) if end <= ctx.len => {}
            _ => {
                let start = data_offset.saturating_add(t.offset);
                return Err(Error::TensorPastEnd {
                    tensor: t.name.clone(),
                    start,
                    end: start.saturating_add(t.n_bytes),
                    len: ctx.len,
                });
            }
        }
    }

    Ok(Parsed {
        version,
        metadata,
        tensors,
        index,
        alignment,
        data_offset,
    })
}

fn read_string(c: &mut Cursor<'_>, ctx: &Ctx, what: impl Fn() -> String) -> Result<String> {
    let len = c
        .u64()
        .map_err(|s| ctx.truncated(s, || format!("length of {}", what())))?;
    let offset = c.pos as u64;
    let bytes = c.take_u64(len).map_err(|s| ctx.truncated(s, &what))?;
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(Error::InvalidUtf8 {
            what: what(),
            offset,
        }),
    }
}

fn read_value(
    c: &mut Cursor<'_>,
    ctx: &Ctx,
    ty: ValueType,
    key: &str,
    depth: usize,
) -> Result<Value> {
    let what = || format!("value of metadata key `{key}`");
    let t = |s| ctx.truncated(s, what);
    Ok(match ty {
        ValueType::U8 => Value::U8(c.u8().map_err(t)?),
        ValueType::I8 => Value::I8(i8::from_le_bytes(c.array().map_err(t)?)),
        ValueType::U16 => Value::U16(u16::from_le_bytes(c.array().map_err(t)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(c.array().map_err(t)?)),
        ValueType::U32 => Value::U32(c.u32().map_err(t)?),
        ValueType::I32 => Value::I32(i32::from_le_bytes(c.array().map_err(t)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(c.array().map_err(t)?)),
        ValueType::U64 => Value::U64(c.u64().map_err(t)?),
        ValueType::I64 => Value::I64(i64::from_le_bytes(c.array().map_err(t)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(c.array().map_err(t)?)),
        ValueType::Bool => {
            let offset = c.pos as u64;
            Value::Bool(to_bool(c.u8().map_err(t)?, key, offset)?)
        }
        ValueType::String => Value::String(read_string(c, ctx, what)?),
        ValueType::Array => Value::Array(read_array(c, ctx, key, depth + 1)?),
    })
}

fn to_bool(byte: u8, key: &str, offset: u64) -> Result<bool> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(Error::InvalidBool {
            key: key.to_owned(),
            value,
            offset,
        }),
    }
}

/// Splits `n` fixed-size little-endian elements off the cursor.
fn fixed<'a, const N: usize, T>(
    c: &mut Cursor<'a>,
    ctx: &Ctx,
    n: usize,
    what: impl Fn() -> String,
    from: impl Fn([u8; N]) -> T,
) -> Result<Vec<T>> {
    let total = n.checked_mul(N).ok_or_else(|| Error::TooLarge {
        what: what(),
        value: n as u64,
    })?;
    let bytes = c.take(total).map_err(|s| ctx.truncated(s, &what))?;
    let (chunks, _) = bytes.as_chunks::<N>();
    Ok(chunks.iter().map(|b| from(*b)).collect())
}

fn read_array(c: &mut Cursor<'_>, ctx: &Ctx, key: &str, depth: usize) -> Result<Array> {
    if depth > MAX_NESTING {
        return Err(Error::NestingTooDeep {
            key: key.to_owned(),
            max: MAX_NESTING,
        });
    }
    let type_offset = c.pos as u64;
    let type_id = c
        .u32()
        .map_err(|s| ctx.truncated(s, || format!("array element type of metadata key `{key}`")))?;
    let elem = ValueType::from_id(type_id).ok_or_else(|| Error::UnknownValueType {
        key: key.to_owned(),
        type_id,
        offset: type_offset,
    })?;
    let count = c
        .u64()
        .map_err(|s| ctx.truncated(s, || format!("array length of metadata key `{key}`")))?;
    // Every element takes at least this many bytes, so a count the rest of the file cannot hold
    // is refused here, before anything is allocated for it.
    let min = elem.min_encoded_size() as u64;
    let needed = count.saturating_mul(min);
    if needed > c.remaining() as u64 {
        return Err(Error::Truncated {
            what: format!("{count} {elem} elements of metadata key `{key}`"),
            offset: c.pos as u64,
            needed,
            len: ctx.len,
        });
    }
    // Fits: count * min <= remaining <= usize::MAX.
    let n = usize::try_from(count).unwrap_or(usize::MAX);
    let what = || format!("array elements of metadata key `{key}`");
    Ok(match elem {
        ValueType::U8 => Array::U8(fixed(c, ctx, n, what, u8::from_le_bytes)?),
        ValueType::I8 => Array::I8(fixed(c, ctx, n, what, i8::from_le_bytes)?),
        ValueType::U16 => Array::U16(fixed(c, ctx, n, what, u16::from_le_bytes)?),
        ValueType::I16 => Array::I16(fixed(c, ctx, n, what, i16::from_le_bytes)?),
        ValueType::U32 => Array::U32(fixed(c, ctx, n, what, u32::from_le_bytes)?),
        ValueType::I32 => Array::I32(fixed(c, ctx, n, what, i32::from_le_bytes)?),
        ValueType::F32 => Array::F32(fixed(c, ctx, n, what, f32::from_le_bytes)?),
        ValueType::U64 => Array::U64(fixed(c, ctx, n, what, u64::from_le_bytes)?),
        ValueType::I64 => Array::I64(fixed(c, ctx, n, what, i64::from_le_bytes)?),
        ValueType::F64 => Array::F64(fixed(c, ctx, n, what, f64::from_le_bytes)?),
        ValueType::Bool => {
            let offset = c.pos as u64;
            let bytes = fixed(c, ctx, n, what, u8::from_le_bytes)?;
            let mut out = Vec::with_capacity(bytes.len());
            for (i, b) in bytes.into_iter().enumerate() {
                out.push(to_bool(b, key, offset.saturating_add(i as u64))?);
            }
            Array::Bool(out)
        }
        ValueType::String => {
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                out.push(read_string(c, ctx, || {
                    format!("string #{i} of metadata key `{key}`")
                })?);
            }
            Array::String(out)
        }
        ValueType::Array => {
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                out.push(read_array(c, ctx, key, depth + 1)?);
            }
            Array::Array(out)
        }
    })
}

fn read_tensor_info(c: &mut Cursor<'_>, ctx: &Ctx, i: u64, alignment: u64) -> Result<TensorInfo> {
    let name = read_string(c, ctx, || format!("name of tensor info #{i}"))?;
    let n_dims = c
        .u32()
        .map_err(|s| ctx.truncated(s, || format!("dimension count of tensor `{name}`")))?;
    if n_dims > MAX_DIMS {
        return Err(Error::TooManyDims {
            tensor: name,
            n_dims,
            max: MAX_DIMS,
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        dims.push(
            c.u64()
                .map_err(|s| ctx.truncated(s, || format!("dimensions of tensor `{name}`")))?,
        );
    }
    let type_id = c
        .u32()
        .map_err(|s| ctx.truncated(s, || format!("type of tensor `{name}`")))?;
    let offset = c
        .u64()
        .map_err(|s| ctx.truncated(s, || format!("data offset of tensor `{name}`")))?;

    let ty = match GgmlType::from_id(type_id) {
        Some(ty) => ty,
        None => {
            return Err(match ggml_type_name(type_id) {
                Some(type_name) => Error::UnsupportedType {
                    tensor: name,
                    name: type_name,
                    type_id,
                },
                None => Error::UnknownType {
                    tensor: name,
                    type_id,
                },
            });
        }
    };
    let Some(n_elements) = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)) else {
        return Err(Error::DimsOverflow { tensor: name, dims });
    };
    let ne0 = dims.first().copied().unwrap_or(1);
    if !ne0.is_multiple_of(ty.block_size() as u64) {
        return Err(Error::NotBlockAligned {
            what: format!("tensor `{name}`"),
            ty,
            ne0,
        });
    }
    let Some(n_bytes) = ty.bytes_for(n_elements) else {
        return Err(Error::DimsOverflow { tensor: name, dims });
    };
    if !offset.is_multiple_of(alignment) {
        return Err(Error::MisalignedTensor {
            tensor: name,
            offset,
            alignment,
        });
    }
    Ok(TensorInfo {
        name,
        dims,
        ty,
        offset,
        n_elements,
        n_bytes,
    })
}
