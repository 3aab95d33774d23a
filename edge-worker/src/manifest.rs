//! What the worker records about an adapter: its manifest (the KV value) and the summary the
//! list shows (the KV metadata, which Cloudflare caps at 1,024 bytes). Plain data, tested natively.

use serde::{Deserialize, Serialize};
use tributary_peft::{CONFIG_FILE, WEIGHTS_FILE};

/// Adapter ids are path segments and KV keys: short, URL-safe, and never `.` or `..`.
pub fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// KV key of an adapter's manifest.
pub fn index_key(id: &str) -> String {
    format!("adapter:{id}")
}

/// R2 key of a file's bytes: stored once per content, so a second adapter with the same config
/// costs nothing.
pub fn blob_key(sha256_hex: &str) -> String {
    format!("blobs/{sha256_hex}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
    pub url: String,
}

/// What the list shows per adapter, small enough for KV metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// [`tributary_peft::content_hash`] of the two files, hex: the `sha256` a node's
    /// `POST /v1/adapters` takes, so an adapter fetched from here can be registered by hash.
    pub hash: String,
    pub rank: usize,
    pub alpha: f64,
    pub targets: Vec<String>,
    pub layers: usize,
    pub parameters: u64,
    pub bytes: u64,
    /// Unix seconds.
    pub created: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    pub object: String,
    #[serde(flatten)]
    pub summary: Summary,
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// The manifest of files that [`tributary_peft::check`] accepted as `checked`; `hash` is
    /// their content hash.
    pub fn new(
        id: &str,
        checked: &tributary_peft::Summary,
        hash: String,
        (config, weights): (&[u8], &[u8]),
        file_hashes: [String; 2],
        created: u64,
    ) -> Self {
        let [config_hash, weights_hash] = file_hashes;
        // The URL pins the content: the worker answers it only with these bytes, so it may be
        // cached as immutable whatever later happens to the id.
        let entry = |name: &str, sha256: String, bytes: &[u8]| FileEntry {
            name: name.into(),
            url: format!("/v1/adapters/{id}/{name}?sha256={sha256}"),
            sha256,
            bytes: bytes.len() as u64,
        };
        Self {
            id: id.into(),
            object: "adapter".into(),
            summary: Summary {
                hash,
                rank: checked.config.rank,
                alpha: checked.config.alpha,
                targets: checked
                    .config
                    .targets
                    .iter()
                    .map(|t| t.module_name().to_owned())
                    .collect(),
                layers: checked.layers,
                parameters: checked.parameters,
                bytes: (config.len() + weights.len()) as u64,
                created,
            },
            files: vec![
                entry(CONFIG_FILE, config_hash, config),
                entry(WEIGHTS_FILE, weights_hash, weights),
            ],
        }
    }

    pub fn file(&self, name: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// Constant-time comparison of a presented bearer token with the secret, so response timing
/// does not reveal how much of a guess was right.
pub fn token_matches(authorization: Option<&str>, secret: &str) -> bool {
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let Some(presented) = authorization
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
    else {
        return false;
    };
    let (a, b) = (presented.trim().as_bytes(), secret.as_bytes());
    a.len() == b.len()
        && !secret.is_empty()
        && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// A hex SHA-256 as a client states it: 64 hex digits, any case, optionally `0x`-prefixed.
pub fn parse_sha256(value: &str) -> Option<String> {
    let v = value.trim();
    let v = v.strip_prefix("0x").unwrap_or(v);
    (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then(|| v.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_url_safe_segments() {
        for ok in ["a", "psalms-v2", "x_1.0", &"a".repeat(128)] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a b",
            "é",
            "a%2f",
            &"a".repeat(129),
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_must_match_whole() {
        assert!(token_matches(Some("Bearer s3cret"), "s3cret"));
        assert!(token_matches(Some("bearer s3cret"), "s3cret"));
        assert!(!token_matches(Some("Basic s3cret"), "s3cret"));
        assert!(!token_matches(Some("Bearer s3cre"), "s3cret"));
        assert!(!token_matches(Some("Bearer s3cretX"), "s3cret"));
        assert!(!token_matches(Some("s3cret"), "s3cret"));
        assert!(!token_matches(None, "s3cret"));
        assert!(!token_matches(Some("Bearer "), ""));
    }

    #[test]
    fn hashes_are_normalised() {
        let h = "AB".repeat(32);
        assert_eq!(parse_sha256(&format!("0x{h}")), Some("ab".repeat(32)));
        assert_eq!(parse_sha256("abc"), None);
        assert_eq!(parse_sha256(&"g".repeat(64)), None);
    }

    #[test]
    fn the_summary_fits_in_kv_metadata() {
        let summary = Summary {
            hash: "f".repeat(64),
            rank: 64,
            alpha: 128.0,
            targets: tributary_peft::Target::ALL
                .iter()
                .map(|t| t.module_name().to_owned())
                .collect(),
            layers: 128,
            parameters: u64::MAX,
            bytes: u64::MAX,
            created: u64::MAX,
        };
        assert!(serde_json::to_vec(&summary).unwrap().len() <= 1024);
    }
}
