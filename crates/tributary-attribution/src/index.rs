//! A suffix-array index over the token ids of a set of documents (infini-gram's structure): the
//! documents' tokens concatenated with a separator token between them, and the suffix array of
//! that text built by libsais. Finding where any token sequence occurs is a binary search; the
//! longest prefix of a query that occurs anywhere is found by narrowing the suffix-array range
//! one token at a time.
//!
//! On disk a shard is a folder of three little-endian files — `tokens.bin` (u16 when every id
//! fits, else u32), `sa.bin` (u32 positions), `docs.bin` (u64 start of each document) — and
//! `meta.json`, written into a temporary folder and renamed into place, then memory-mapped for
//! queries, so a shard is opened in microseconds and shared by every process that reads it.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("the shard would hold {0} tokens; a shard holds at most 2^31 - 1")]
    TooLarge(usize),
    #[error("token id {0} is reserved (the document separator) or out of range")]
    BadToken(u32),
    #[error("suffix array construction failed: {0}")]
    Construction(String),
}

/// `meta.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// Bytes per stored token: 2 or 4.
    pub token_width: u8,
    /// Length of the text, separators included.
    pub tokens: u64,
    pub documents: u64,
    pub separator: u32,
}

/// Token ids at or above this are refused: the largest id of each width is the separator.
pub const MAX_TOKEN: u32 = u32::MAX - 1;

/// Where the token sequence `query[..len]` occurs: `sa_range` indexes the suffix array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub len: usize,
    pub sa_range: Range<usize>,
}

/// The bytes of a shard: owned after a build, mapped after an open.
#[derive(Debug)]
pub(crate) enum Bytes {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Mapped(m) => m,
        }
    }
}

#[derive(Debug)]
pub struct Shard {
    meta: Meta,
    tokens: Bytes,
    sa: Bytes,
    docs: Bytes,
}

impl Shard {
    /// Builds a shard over `documents` (token ids each).
    pub fn build(documents: &[Vec<u32>]) -> Result<Self, IndexError> {
        let len = documents.iter().map(|d| d.len() + 1).sum::<usize>();
        if len > i32::MAX as usize {
            return Err(IndexError::TooLarge(len));
        }
        let max = documents.iter().flatten().copied().max().unwrap_or(0);
        if max > MAX_TOKEN {
            return Err(IndexError::BadToken(max));
        }
        let narrow = max < u16::MAX as u32;
        let separator = if narrow { u16::MAX as u32 } else { max + 1 };
        let mut docs = Vec::with_capacity(documents.len() * 8);
        let mut text: Vec<u32> = Vec::with_capacity(len);
        for d in documents {
            docs.extend_from_slice(&(text.len() as u64).to_le_bytes());
            text.extend_from_slice(d);
            text.push(separator);
        }
        let sa: Vec<i32> = if narrow {
            let t16: Vec<u16> = text.iter().map(|&t| t as u16).collect();
            libsais::SuffixArrayConstruction::for_text(&t16)
                .in_owned_buffer32()
                .single_threaded()
                .run()
                .map_err(|e| IndexError::Construction(format!("{e:?}")))?
                .into_vec()
        } else {
            let mut t32: Vec<i32> = text.iter().map(|&t| t as i32).collect();
            libsais::SuffixArrayConstruction::for_text_mut(&mut t32)
                .in_owned_buffer32()
                .single_threaded()
                .run()
                .map_err(|e| IndexError::Construction(format!("{e:?}")))?
                .into_vec()
        };
        let width = if narrow { 2 } else { 4 };
        let mut tokens = Vec::with_capacity(text.len() * width);
        for &t in &text {
            if narrow {
                tokens.extend_from_slice(&(t as u16).to_le_bytes());
            } else {
                tokens.extend_from_slice(&t.to_le_bytes());
            }
        }
        let sa_bytes: Vec<u8> = sa.iter().flat_map(|&p| (p as u32).to_le_bytes()).collect();
        Ok(Self {
            meta: Meta {
                token_width: width as u8,
                tokens: text.len() as u64,
                documents: documents.len() as u64,
                separator,
            },
            tokens: Bytes::Owned(tokens),
            sa: Bytes::Owned(sa_bytes),
            docs: Bytes::Owned(docs),
        })
    }

    /// Writes the shard into `dir` (which must not exist yet), through a temporary sibling
    /// folder renamed into place, so a reader never sees half a shard.
    pub fn save(&self, dir: &Path) -> Result<(), IndexError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| IndexError::Io { path, source }
        };
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let meta = serde_json::to_vec_pretty(&self.meta).expect("plain struct");
        for (file, bytes) in [
            ("tokens.bin", &*self.tokens),
            ("sa.bin", &*self.sa),
            ("docs.bin", &*self.docs),
            ("meta.json", meta.as_slice()),
        ] {
            let path = tmp.join(file);
            std::fs::write(&path, bytes).map_err(io(&path))?;
        }
        std::fs::rename(&tmp, dir).map_err(io(dir))
    }

    /// Opens a saved shard, memory-mapping its files.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        let meta_path = dir.join("meta.json");
        let meta: Meta = serde_json::from_slice(&std::fs::read(&meta_path).map_err(|source| {
            IndexError::Io {
                path: meta_path.clone(),
                source,
            }
        })?)
        .map_err(|e| IndexError::Corrupt {
            path: meta_path.clone(),
            reason: e.to_string(),
        })?;
        let map = |file: &str, expected: u64| -> Result<Bytes, IndexError> {
            let path = dir.join(file);
            let f = std::fs::File::open(&path).map_err(|source| IndexError::Io {
                path: path.clone(),
                source,
            })?;
            let len = f
                .metadata()
                .map_err(|source| IndexError::Io {
                    path: path.clone(),
                    source,
                })?
                .len();
            if len != expected {
                return Err(IndexError::Corrupt {
                    path,
                    reason: format!("{len} bytes, expected {expected}"),
                });
            }
            map_file(&f, &path)
        };
        if meta.token_width != 2 && meta.token_width != 4 {
            return Err(IndexError::Corrupt {
                path: meta_path,
                reason: format!("token width {}", meta.token_width),
            });
        }
        Ok(Self {
            tokens: map("tokens.bin", meta.tokens * u64::from(meta.token_width))?,
            sa: map("sa.bin", meta.tokens * 4)?,
            docs: map("docs.bin", meta.documents * 8)?,
            meta,
        })
    }

    pub fn meta(&self) -> Meta {
        self.meta
    }

    /// Bytes the shard occupies (tokens, suffix array, document starts).
    pub fn bytes(&self) -> usize {
        self.tokens.len() + self.sa.len() + self.docs.len()
    }

    pub fn len(&self) -> usize {
        self.meta.tokens as usize
    }

    pub fn is_empty(&self) -> bool {
        self.meta.tokens == 0
    }

    /// The token at text position `i`.
    pub fn token(&self, i: usize) -> u32 {
        if self.meta.token_width == 2 {
            u16::from_le_bytes([self.tokens[2 * i], self.tokens[2 * i + 1]]).into()
        } else {
            u32::from_le_bytes(self.tokens[4 * i..4 * i + 4].try_into().expect("4 bytes"))
        }
    }

    /// The text position of the `j`-th smallest suffix.
    pub fn suffix(&self, j: usize) -> usize {
        u32::from_le_bytes(self.sa[4 * j..4 * j + 4].try_into().expect("4 bytes")) as usize
    }

    /// The document holding text position `pos`, and the offset in it.
    pub fn document_of(&self, pos: usize) -> (usize, usize) {
        let start = |d: usize| {
            u64::from_le_bytes(self.docs[8 * d..8 * d + 8].try_into().expect("8 bytes")) as usize
        };
        let n = self.meta.documents as usize;
        // The last document whose start is ≤ pos.
        let (mut lo, mut hi) = (0, n);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if start(mid) <= pos {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (lo, pos - start(lo))
    }

    /// Key of suffix `j` at offset `k`: its token, or -1 past the end of the text (the end
    /// sorts first, as libsais sorts it).
    fn key(&self, j: usize, k: usize) -> i64 {
        let p = self.suffix(j) + k;
        if p < self.len() {
            i64::from(self.token(p))
        } else {
            -1
        }
    }

    /// The longest prefix of `query` that occurs in the text (never across documents: the
    /// separator is not a token a query can hold), with the suffix-array range of its
    /// occurrences. A query whose first token never occurs gives length 0 and the whole range.
    pub fn longest_prefix(&self, query: &[u32]) -> Match {
        let mut range = 0..self.len();
        let mut len = 0;
        for (k, &q) in query.iter().enumerate() {
            if q == self.meta.separator {
                break;
            }
            let q = i64::from(q);
            let lo = range.start + partition(range.len(), |i| self.key(range.start + i, k) < q);
            let hi = range.start + partition(range.len(), |i| self.key(range.start + i, k) <= q);
            if lo == hi {
                break;
            }
            range = lo..hi;
            len = k + 1;
        }
        Match {
            len,
            sa_range: range,
        }
    }

    /// How many times `ngram` occurs.
    pub fn count(&self, ngram: &[u32]) -> usize {
        let m = self.longest_prefix(ngram);
        if m.len == ngram.len() {
            m.sa_range.len()
        } else {
            0
        }
    }
}

/// The number of leading `i` in `0..n` for which `pred` holds (it must hold for a prefix).
fn partition(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Maps a shard file read-only.
#[allow(unsafe_code)]
pub(crate) fn map_file(f: &std::fs::File, path: &Path) -> Result<Bytes, IndexError> {
    if f.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
        return Ok(Bytes::Owned(Vec::new())); // mapping an empty file is an error on Linux
    }
    // SAFETY: shard files are written once into a temporary folder and renamed into place; no
    // writer touches them afterwards, so the mapped bytes do not change under the reader.
    let map = unsafe { memmap2::Mmap::map(f) }.map_err(|source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Bytes::Mapped(map))
}
