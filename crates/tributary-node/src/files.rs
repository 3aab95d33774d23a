//! The files of a model folder and of an adapter folder, as a browser tab downloads them, and the
//! hashes that name a model in receipts and gradient stores.
//!
//! Two hashes for two readers. sha256 per file lets a tab check each download and keep it in its
//! cache under a name it can trust. keccak256 over the weights (config and safetensors, in name
//! order) is what a receipt's `baseModel` / `adapter` and a gradient store commit to: a wallet or
//! a contract recomputes keccak cheaply, and a tab that ran the same files gets the same value.
//! Files are streamed, never read whole, so a multi-gigabyte checkpoint costs no memory.

use std::io::Read;
use std::path::{Path, PathBuf};

use alloy::primitives::Keccak256;
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use tributary_model::ModelSource;
use tributary_receipt::B256;

/// Files a tab needs besides the weights, if the folder has them.
const MODEL_EXTRAS: [&str; 4] = [
    "tokenizer_config.json",
    "chat_template.jinja",
    "generation_config.json",
    "model.safetensors.index.json",
];

/// A PEFT adapter is these two files; both are in its hash.
const ADAPTER_FILES: [&str; 2] = ["adapter_config.json", "adapter_model.safetensors"];

/// One file as served: its name in the folder (the URL's last segment), where it is, and what
/// the tab should find when it has downloaded it.
#[derive(Debug, Clone)]
pub struct FileEntry {
    pub name: String,
    pub path: PathBuf,
    pub sha256: [u8; 32],
    pub bytes: u64,
}

impl FileEntry {
    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }
}

/// A folder's served files and the keccak256 its receipts name.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub files: Vec<FileEntry>,
    pub keccak: B256,
}

impl Manifest {
    /// config.json, the weights (model.safetensors, or the index and its shards), tokenizer.json,
    /// and the optional extras the folder has. Hashes every file in one pass.
    /// A GGUF is one file; a folder is its weight files (hashed into the model's identity) and
    /// the tokenizer and config files beside them.
    pub fn of_model(source: &ModelSource) -> Result<Self> {
        let dir = match source {
            ModelSource::Gguf(_) => return Self::hash(&[source.path()], &[]),
            ModelSource::Dir(dir) => dir,
        };
        let weights = weight_files(dir)?;
        let mut extras = vec![dir.join("tokenizer.json")];
        extras.extend(
            MODEL_EXTRAS
                .iter()
                .map(|n| dir.join(n))
                .filter(|p| p.is_file()),
        );
        Self::hash(&weights, &extras)
    }

    pub fn of_adapter(dir: &Path) -> Result<Self> {
        let files: Vec<PathBuf> = ADAPTER_FILES.iter().map(|n| dir.join(n)).collect();
        Self::hash(&files, &[])
    }

    pub fn get(&self, name: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.name == name)
    }

    /// sha256 of every file; keccak256 over the concatenation of `hashed`, in order.
    fn hash(hashed: &[PathBuf], extras: &[PathBuf]) -> Result<Self> {
        let mut keccak = Keccak256::new();
        let mut files = Vec::with_capacity(hashed.len() + extras.len());
        for (i, path) in hashed.iter().chain(extras).enumerate() {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("{}: not a UTF-8 file name", path.display()))?
                .to_owned();
            let mut sha = Sha256::new();
            let bytes = stream(path, |chunk| {
                sha.update(chunk);
                if i < hashed.len() {
                    keccak.update(chunk);
                }
            })?;
            files.push(FileEntry {
                name,
                path: path.clone(),
                sha256: sha.finalize().into(),
                bytes,
            });
        }
        Ok(Self {
            files,
            keccak: keccak.finalize(),
        })
    }
}

/// keccak256 of the base model's config.json and safetensors, in name order: a receipt's
/// `baseModel`, and what a gradient store records it was built with.
pub fn model_hash(dir: &Path) -> Result<B256> {
    keccak_files(&weight_files(dir)?)
}

/// keccak256 of adapter_config.json then adapter_model.safetensors: a receipt's `adapter`.
pub fn adapter_hash(dir: &Path) -> Result<B256> {
    let files: Vec<PathBuf> = ADAPTER_FILES.iter().map(|n| dir.join(n)).collect();
    keccak_files(&files)
}

fn keccak_files(files: &[PathBuf]) -> Result<B256> {
    let mut keccak = Keccak256::new();
    for f in files {
        stream(f, |chunk| keccak.update(chunk))?;
    }
    Ok(keccak.finalize())
}

/// config.json, then the safetensors the loader reads: model.safetensors when present, else
/// the shards model.safetensors.index.json names (sorted, each once).
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = vec![dir.join("config.json")];
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    if single.is_file() {
        files.push(single);
    } else if index.is_file() {
        let text = std::fs::read_to_string(&index)
            .with_context(|| format!("reading {}", index.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: invalid JSON", index.display()))?;
        let map = v["weight_map"]
            .as_object()
            .with_context(|| format!("{}: no `weight_map`", index.display()))?;
        let mut shards: Vec<&str> = map.values().filter_map(|s| s.as_str()).collect();
        shards.sort_unstable();
        shards.dedup();
        for shard in shards {
            // Only plain names: the index must not point outside the folder.
            if Path::new(shard).file_name().and_then(|n| n.to_str()) != Some(shard) {
                bail!("{}: shard `{shard}` is not a file name", index.display());
            }
            files.push(dir.join(shard));
        }
    } else {
        bail!(
            "{}: neither model.safetensors nor model.safetensors.index.json",
            dir.display()
        );
    }
    Ok(files)
}

/// Feeds the file to `f` in 1 MiB chunks; its length.
fn stream(path: &Path, mut f: impl FnMut(&[u8])) -> Result<u64> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            return Ok(total);
        }
        f(&buf[..n]);
        total += n as u64;
    }
}

pub use tributary_peft::hex;

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tributary-model/tests/fixtures")
            .join(name)
    }

    /// The manifest's keccak is the one gradient stores recorded before there was a manifest:
    /// config.json then the safetensors, concatenated.
    #[test]
    fn a_sharded_model_lists_its_index_and_shards_and_hashes_as_before() {
        let dir = fixture("qwen2-bias");
        let manifest = Manifest::of_model(&ModelSource::Dir(dir.clone())).unwrap();
        let names: Vec<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "config.json",
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
                "tokenizer.json",
                "generation_config.json",
                "model.safetensors.index.json",
            ]
        );
        let mut weights = Vec::new();
        for f in &manifest.files[..3] {
            weights.extend(std::fs::read(&f.path).unwrap());
        }
        let want = tributary_receipt::keccak256(&weights);
        assert_eq!(manifest.keccak, want);
        assert_eq!(model_hash(&dir).unwrap(), want);
        for f in &manifest.files {
            let bytes = std::fs::read(&f.path).unwrap();
            assert_eq!(f.bytes, bytes.len() as u64);
            assert_eq!(
                f.sha256,
                <[u8; 32]>::from(Sha256::digest(&bytes)),
                "{}",
                f.name
            );
        }
        let adapter = fixture("llama-gqa/adapters/attn-r8");
        assert_eq!(
            Manifest::of_adapter(&adapter).unwrap().keccak,
            adapter_hash(&adapter).unwrap()
        );
    }

    #[test]
    fn a_folder_without_weights_is_refused() {
        let err = Manifest::of_model(&ModelSource::Dir(fixture("llama-gqa/adapters"))).unwrap_err();
        assert!(format!("{err:#}").contains("model.safetensors"), "{err:#}");
    }
}
