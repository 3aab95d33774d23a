//! Adapters registered by URL (native hosts): both PEFT files are downloaded once into a local
//! cache folder named by their content hash, and the store then loads them from there on first
//! use like any folder. A tab or an edge worker fetches with its own platform's API and registers
//! [`AdapterSource::Bytes`](crate::AdapterSource::Bytes) instead.
//!
//! Files are written to a temporary folder and renamed into place only when both are complete and
//! verified, so an interrupted download never leaves a half-written adapter in the cache.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::store::{content_hash, hex};

/// The two files of a PEFT adapter, in the order [`content_hash`] takes them.
const FILES: [&str; 2] = [tributary_peft::CONFIG_FILE, tributary_peft::WEIGHTS_FILE];

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: larger than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: content hash {got} does not match the expected {expected}")]
    Hash {
        url: String,
        expected: String,
        got: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{0}` is not an http(s):// or hf:// adapter location")]
    BadUrl(String),
}

/// The folder URL files are fetched from. `hf://ORG/REPO` and `hf://ORG/REPO@REVISION` name a
/// Hugging Face Hub repository (its `resolve` path, where the files themselves are served).
pub fn resolve_url(location: &str) -> Result<String, FetchError> {
    if let Some(repo) = location.strip_prefix("hf://") {
        let (repo, revision) = repo.split_once('@').unwrap_or((repo, "main"));
        if repo.split('/').count() != 2 || repo.split('/').any(str::is_empty) {
            return Err(FetchError::BadUrl(location.into()));
        }
        return Ok(format!("https://huggingface.co/{repo}/resolve/{revision}"));
    }
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.trim_end_matches('/').to_owned());
    }
    Err(FetchError::BadUrl(location.into()))
}

/// Downloads the adapter at `location` into `cache` (unless a verified copy is there already) and
/// returns its folder and content hash. Each file may be at most `max_bytes`; with `expected`,
/// the content hash must match it.
pub fn fetch_adapter(
    location: &str,
    cache: &Path,
    max_bytes: u64,
    expected: Option<[u8; 32]>,
) -> Result<(PathBuf, [u8; 32]), FetchError> {
    let base = resolve_url(location)?;
    if let Some(hash) = expected {
        let dir = cache.join(hex(&hash));
        if FILES.iter().all(|f| dir.join(f).is_file()) {
            return Ok((dir, hash)); // content-addressed: what is there was verified on the way in
        }
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut bodies = Vec::with_capacity(2);
    for file in FILES {
        let url = format!("{base}/{file}");
        let http = |e: ureq::Error| FetchError::Http {
            url: url.clone(),
            reason: e.to_string(),
        };
        let mut response = agent.get(&url).call().map_err(http)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(FetchError::Status { url, status });
        }
        let mut body = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(max_bytes + 1)
            .read_to_end(&mut body)
            .map_err(|e| FetchError::Http {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        if body.len() as u64 > max_bytes {
            return Err(FetchError::TooLarge {
                url,
                limit: max_bytes,
            });
        }
        bodies.push(body);
    }
    let hash = content_hash(&bodies[0], &bodies[1]);
    if let Some(want) = expected
        && want != hash
    {
        return Err(FetchError::Hash {
            url: base,
            expected: hex(&want),
            got: hex(&hash),
        });
    }
    let dir = cache.join(hex(&hash));
    if FILES.iter().all(|f| dir.join(f).is_file()) {
        return Ok((dir, hash));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io { path, source }
    };
    std::fs::create_dir_all(cache).map_err(io(cache))?;
    let partial = cache.join(format!(".partial-{}-{}", hex(&hash), std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir(&partial).map_err(io(&partial))?;
    for (file, body) in FILES.iter().zip(&bodies) {
        let path = partial.join(file);
        std::fs::write(&path, body).map_err(io(&path))?;
    }
    if let Err(source) = std::fs::rename(&partial, &dir) {
        let _ = std::fs::remove_dir_all(&partial);
        // Another process may have put the same content there first.
        if !FILES.iter().all(|f| dir.join(f).is_file()) {
            return Err(FetchError::Io { path: dir, source });
        }
    }
    tracing::info!(url = base, dir = %dir.display(), "adapter downloaded");
    Ok((dir, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_to_folder_urls() {
        assert_eq!(
            resolve_url("hf://org/lora").unwrap(),
            "https://huggingface.co/org/lora/resolve/main"
        );
        assert_eq!(
            resolve_url("hf://org/lora@v2").unwrap(),
            "https://huggingface.co/org/lora/resolve/v2"
        );
        assert_eq!(resolve_url("http://h:1/a/").unwrap(), "http://h:1/a");
        for bad in [
            "hf://org",
            "hf://org/",
            "hf://a/b/c",
            "ftp://x",
            "/tmp/a",
            "",
        ] {
            assert!(
                matches!(resolve_url(bad), Err(FetchError::BadUrl(_))),
                "{bad}"
            );
        }
    }
}
