//! The node's `/v1/models` list, read into what the page offers: bases and their adapters, each
//! with the files (and hashes) the worker downloads.

use serde::Deserialize;

use crate::protocol::{AdapterRef, FileRef};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    pub id: String,
    pub files: Vec<FileRef>,
    pub adapters: Vec<AdapterRef>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelsError {
    #[error("/v1/models is not the expected JSON: {0}")]
    Json(String),
    #[error("/v1/models: model `{0}` lists no downloadable files")]
    NoFiles(String),
    #[error("/v1/models: adapter `{0}` names no base model that is listed")]
    Orphan(String),
    #[error("/v1/models lists no base model")]
    Empty,
}

#[derive(Deserialize)]
struct List {
    data: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    #[serde(default)]
    files: Vec<FileRef>,
}

/// Parses the list; relative file URLs are made absolute against `origin` (for the worker).
pub fn parse(json: &str, origin: &str) -> Result<Vec<Base>, ModelsError> {
    let list: List = serde_json::from_str(json).map_err(|e| ModelsError::Json(e.to_string()))?;
    let absolute = |mut files: Vec<FileRef>| {
        for f in &mut files {
            if f.url.starts_with('/') {
                f.url = format!("{}{}", origin.trim_end_matches('/'), f.url);
            }
        }
        files
    };
    let mut bases: Vec<Base> = Vec::new();
    let mut adapters = Vec::new();
    for entry in list.data {
        if entry.files.is_empty() {
            return Err(ModelsError::NoFiles(entry.id));
        }
        let files = absolute(entry.files);
        match entry.id.split_once(':') {
            None => bases.push(Base {
                id: entry.id,
                files,
                adapters: Vec::new(),
            }),
            Some((base, name)) => adapters.push((base.to_owned(), name.to_owned(), files)),
        }
    }
    for (base, name, files) in adapters {
        let Some(b) = bases.iter_mut().find(|b| b.id == base) else {
            return Err(ModelsError::Orphan(format!("{base}:{name}")));
        };
        b.adapters.push(AdapterRef { name, files });
    }
    if bases.is_empty() {
        return Err(ModelsError::Empty);
    }
    Ok(bases)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(url: &str) -> serde_json::Value {
        serde_json::json!({"name": "config.json", "url": url, "sha256": "00", "bytes": 2})
    }

    #[test]
    fn adapters_join_their_base_and_urls_become_absolute() {
        let json = serde_json::json!({"object": "list", "data": [
            {"id": "m:a", "object": "model", "files": [file("/v1/files/m:a/config.json")]},
            {"id": "m", "object": "model", "files": [file("/v1/files/m/config.json")]},
        ]});
        let bases = parse(&json.to_string(), "http://127.0.0.1:9/").unwrap();
        assert_eq!(bases.len(), 1);
        assert_eq!(
            bases[0].files[0].url,
            "http://127.0.0.1:9/v1/files/m/config.json"
        );
        assert_eq!(bases[0].adapters[0].name, "a");
        assert_eq!(
            bases[0].adapters[0].files[0].url,
            "http://127.0.0.1:9/v1/files/m:a/config.json"
        );
    }

    #[test]
    fn bad_lists_are_named() {
        let orphan = serde_json::json!({"data": [{"id": "x:a", "files": [file("/f")]}]});
        assert_eq!(
            parse(&orphan.to_string(), "http://h"),
            Err(ModelsError::Orphan("x:a".into()))
        );
        let bare = serde_json::json!({"data": [{"id": "m"}]});
        assert_eq!(
            parse(&bare.to_string(), "http://h"),
            Err(ModelsError::NoFiles("m".into()))
        );
        assert_eq!(
            parse(r#"{"data": []}"#, "http://h"),
            Err(ModelsError::Empty)
        );
        assert!(matches!(parse("[", "http://h"), Err(ModelsError::Json(_))));
    }
}
