//! Helpers shared by the integration tests: the fixtures written by gguf-py
//! (reference/make_fixtures.py), ways to find and change fields in them, and a tiny writer for
//! files no real tool would write.

#![allow(dead_code)]

use std::path::PathBuf;

use tributary_gguf::{Gguf, LlamaConfig};

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

pub const FIXTURES: [&str; 4] = [
    "tensors.gguf",
    "aligned256.gguf",
    "llama.gguf",
    "qwen2.gguf",
];

pub fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture_path("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json is JSON")
}

/// Position of the first occurrence of `needle`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Byte positions of a tensor info's fields, found by its length-prefixed name (which the GGUF
/// layout puts right before them).
#[derive(Debug)]
pub struct InfoFields {
    pub n_dims: usize,
    pub dims: usize,
    pub ty: usize,
    pub offset: usize,
}

pub fn tensor_info_fields(bytes: &[u8], name: &str) -> InfoFields {
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    let at = find(bytes, &needle).unwrap_or_else(|| panic!("tensor info `{name}` not found"));
    let n_dims = at + needle.len();
    let count = u32::from_le_bytes(bytes[n_dims..n_dims + 4].try_into().unwrap()) as usize;
    let dims = n_dims + 4;
    let ty = dims + 8 * count;
    InfoFields {
        n_dims,
        dims,
        ty,
        offset: ty + 4,
    }
}

pub fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Replaces the one occurrence of `from` with `to` (same length, so nothing moves).
pub fn replace_bytes(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let at = find(bytes, from)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(from)));
    bytes[at..at + to.len()].copy_from_slice(to);
}

/// What must hold of any file that parsed: every accessor works, nothing panics.
pub fn check_invariants(g: &Gguf) {
    let len = g.bytes().len() as u64;
    for t in g.tensors() {
        assert_eq!(t.offset() % g.alignment(), 0, "{}", t.name());
        let bytes = g
            .tensor_bytes(t)
            .expect("a parsed tensor's bytes are in range");
        assert_eq!(bytes.len() as u64, t.n_bytes());
        assert!(g.data_offset() + t.offset() + t.n_bytes() <= len);
        assert_eq!(g.tensor(t.name()), Some(t));
        // Dequantizing needs memory proportional to the element count; the parser bounded it
        // by the file size, but keep the fuzz loop quick.
        if t.n_elements() <= 1 << 16 {
            let values = g.dequantize(t).expect("a parsed tensor dequantizes");
            assert_eq!(values.len() as u64, t.n_elements());
            if t.n_rows() > 0 && t.row_len() > 0 {
                let last = g.dequantize_row(t, t.n_rows() - 1).expect("last row");
                assert_eq!(last.len() as u64, t.row_len());
            }
        }
    }
    let _ = LlamaConfig::from_gguf(g);
    let _ = format!("{g:?}");
}

/// Writes GGUF files by hand, for shapes no converter produces.
#[derive(Default)]
pub struct Writer {
    pub version: u32,
    kv: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    n_tensors: u64,
    pub data: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            version: 3,
            ..Default::default()
        }
    }

    pub fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    /// A key with a raw value: `type_id` then `value` as already encoded.
    pub fn kv_raw(&mut self, key: &str, type_id: u32, value: &[u8]) -> &mut Self {
        Self::string(&mut self.kv, key);
        self.kv.extend_from_slice(&type_id.to_le_bytes());
        self.kv.extend_from_slice(value);
        self.n_kv += 1;
        self
    }

    pub fn kv_str(&mut self, key: &str, value: &str) -> &mut Self {
        let mut v = vec![];
        Self::string(&mut v, value);
        self.kv_raw(key, 8, &v)
    }

    pub fn kv_u32(&mut self, key: &str, value: u32) -> &mut Self {
        self.kv_raw(key, 4, &value.to_le_bytes())
    }

    pub fn tensor(&mut self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> &mut Self {
        Self::string(&mut self.infos, name);
        self.infos
            .extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            self.infos.extend_from_slice(&d.to_le_bytes());
        }
        self.infos.extend_from_slice(&type_id.to_le_bytes());
        self.infos.extend_from_slice(&offset.to_le_bytes());
        self.n_tensors += 1;
        self
    }

    /// The file, with the data section aligned to 32 bytes.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&self.n_tensors.to_le_bytes());
        out.extend_from_slice(&self.n_kv.to_le_bytes());
        out.extend_from_slice(&self.kv);
        out.extend_from_slice(&self.infos);
        while !out.len().is_multiple_of(32) {
            out.push(0);
        }
        out.extend_from_slice(&self.data);
        out
    }
}
