//! A datanet snapshot's index on disk: `index.json` (which datanet, version and root it was built
//! from, and the source of every document) beside its shards. Attribution refuses an index built
//! from another snapshot than the one it is asked about, so receipts never name a root whose data
//! was not searched.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tributary_receipt::B256;

use crate::index::{IndexError, Shard};
use crate::split::Source;
use crate::trace::Index;

/// Documents per shard are cut so a shard stays far below libsais's 2^31 positions.
pub const SHARD_TOKENS: usize = 1 << 28;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotMeta {
    pub datanet: String,
    pub version: u64,
    pub root: B256,
    /// SHA-256 of the tokenizer.json the documents were tokenized with.
    pub tokenizer: String,
    pub shards: Vec<String>,
    pub sources: Vec<Source>,
}

/// Where the index of `datanet` at `version` lives under `root_dir`.
pub fn snapshot_dir(root_dir: &Path, datanet: &str, version: u64) -> PathBuf {
    root_dir.join(datanet).join(format!("v{version}"))
}

/// Builds and saves the index of one snapshot. `meta.shards` and `meta.sources` may already list
/// shards reused from an earlier snapshot's index (paths relative to `dir`, see [`reuse`]);
/// `documents` — the rest of the snapshot's contributions, tokenized — go into new shards after
/// them, so growing a datanet never rebuilds what is indexed. `progress` is told the tokens
/// indexed so far.
pub fn build_snapshot(
    dir: &Path,
    mut meta: SnapshotMeta,
    documents: Vec<(Source, Vec<u32>)>,
    mut progress: impl FnMut(usize),
) -> Result<SnapshotMeta, IndexError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| IndexError::Io { path, source }
    };
    let tmp = dir.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let mut batch: Vec<Vec<u32>> = Vec::new();
    let (mut batch_tokens, mut done) = (0, 0);
    let flush = |batch: &mut Vec<Vec<u32>>, meta: &mut SnapshotMeta| -> Result<(), IndexError> {
        if batch.is_empty() {
            return Ok(());
        }
        let name = format!("shard-{}", meta.shards.len());
        Shard::build(batch)?.save(&tmp.join(&name))?;
        meta.shards.push(name);
        batch.clear();
        Ok(())
    };
    for (source, tokens) in documents {
        if batch_tokens + tokens.len() + 1 > SHARD_TOKENS && !batch.is_empty() {
            flush(&mut batch, &mut meta)?;
            batch_tokens = 0;
        }
        batch_tokens += tokens.len() + 1;
        done += tokens.len();
        batch.push(tokens);
        meta.sources.push(source);
        progress(done);
    }
    flush(&mut batch, &mut meta)?;
    let meta_path = tmp.join("index.json");
    std::fs::write(
        &meta_path,
        serde_json::to_vec_pretty(&meta).expect("plain struct"),
    )
    .map_err(io(&meta_path))?;
    publish(&tmp, dir)?;
    Ok(meta)
}

/// Moves a fully written temporary folder `tmp` to `dir`, replacing what was there, so readers
/// see the old folder or the new one and never half of either.
pub(crate) fn publish(tmp: &Path, dir: &Path) -> Result<(), IndexError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| IndexError::Io { path, source }
    };
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::rename(tmp, dir).map_err(io(dir))
}

/// The `index.json` of a snapshot's index, without opening its shards.
pub fn read_snapshot_meta(dir: &Path) -> Result<SnapshotMeta, IndexError> {
    let path = dir.join("index.json");
    let bytes = std::fs::read(&path).map_err(|source| IndexError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| IndexError::Corrupt {
        path,
        reason: e.to_string(),
    })
}

/// The shard paths and sources of an earlier snapshot's index at `earlier` (a sibling folder of
/// the new one), as the new index will list them.
pub fn reuse(earlier: &Path, meta: &SnapshotMeta) -> (Vec<String>, Vec<Source>) {
    let folder = earlier
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let shards = meta
        .shards
        .iter()
        .map(|s| {
            if s.starts_with("../") {
                s.clone() // already a sibling's, and siblings share a parent
            } else {
                format!("../{folder}/{s}")
            }
        })
        .collect();
    (shards, meta.sources.clone())
}

/// Opens a snapshot's index.
pub fn open_snapshot(dir: &Path) -> Result<(SnapshotMeta, Index), IndexError> {
    let path = dir.join("index.json");
    let meta = read_snapshot_meta(dir)?;
    let shards = meta
        .shards
        .iter()
        .map(|name| Shard::open(&dir.join(name)))
        .collect::<Result<Vec<_>, _>>()?;
    let index = Index::new(shards);
    if index.documents() != meta.sources.len() {
        return Err(IndexError::Corrupt {
            path,
            reason: format!(
                "{} sources for {} documents",
                meta.sources.len(),
                index.documents()
            ),
        });
    }
    Ok((meta, index))
}
