//! Adapters: KV holds one manifest per id (its metadata a summary for the list), R2 holds each
//! file once under its SHA-256. An upload is checked whole before the first write, and the KV
//! entry is written last: until it exists nothing refers to the blobs, so a failed or interrupted
//! upload leaves no adapter behind.

use base64::Engine as _;
use serde::Deserialize;
use tributary_http::{Answer, Conditions};
use tributary_peft::{CONFIG_FILE, WEIGHTS_FILE};
use worker::{Date, Env, FormEntry, Headers, Range, Request, Response, Result};

use crate::manifest::{Manifest, blob_key, index_key, parse_sha256, token_matches, valid_id};
use crate::{ApiError, json};

const INDEX: &str = "ADAPTER_INDEX";
const BUCKET: &str = "ADAPTERS";
const TOKEN: &str = "UPLOAD_TOKEN";
/// When the `MAX_UPLOAD_BYTES` var is absent. An upload is held about three times while it is
/// checked and stored (the form's copy, ours, R2's), and an isolate has 128 MB.
const DEFAULT_MAX_UPLOAD: u64 = 32_000_000;

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<u64>,
    cursor: Option<String>,
}

/// `GET /v1/adapters[?limit=&cursor=]`: one KV list call, metadata only.
pub async fn list(req: &Request, env: &Env) -> Result<Response> {
    let query: ListQuery = match req.query() {
        Ok(q) => q,
        Err(e) => return ApiError::bad_request(format!("query: {e}")).response(),
    };
    let mut listing = env
        .kv(INDEX)?
        .list()
        .prefix("adapter:".into())
        .limit(query.limit.unwrap_or(1000).clamp(1, 1000));
    if let Some(cursor) = query.cursor {
        listing = listing.cursor(cursor);
    }
    let page = listing.execute().await.map_err(worker::Error::from)?;
    let data: Vec<serde_json::Value> = page
        .keys
        .into_iter()
        .map(|key| {
            let id = key.name.trim_start_matches("adapter:").to_owned();
            let mut entry = serde_json::json!({"id": id, "object": "adapter"});
            if let (Some(serde_json::Value::Object(meta)), Some(obj)) =
                (key.metadata, entry.as_object_mut())
            {
                obj.extend(meta);
            }
            entry
        })
        .collect();
    json(
        200,
        &serde_json::json!({
            "object": "list",
            "data": data,
            "complete": page.list_complete,
            "cursor": if page.list_complete { None } else { page.cursor },
        }),
    )
}

pub(crate) async fn load(id: &str, env: &Env) -> Result<std::result::Result<Manifest, ApiError>> {
    if !valid_id(id) {
        return Ok(Err(ApiError::not_found(format!("no adapter `{id}`"))));
    }
    let found: Option<Manifest> = env
        .kv(INDEX)?
        .get(&index_key(id))
        .json()
        .await
        .map_err(worker::Error::from)?;
    Ok(
        found
            .ok_or_else(|| ApiError::not_found(format!("no adapter `{id}`; see GET /v1/adapters"))),
    )
}

/// `GET /v1/adapters/{id}`.
pub async fn manifest(id: &str, env: &Env) -> Result<Response> {
    match load(id, env).await? {
        Ok(m) => json(200, &m),
        Err(e) => e.response(),
    }
}

#[derive(Debug, Deserialize)]
struct FileQuery {
    sha256: Option<String>,
}

/// `GET /v1/adapters/{id}/{file}[?sha256=]`: validators and ranges decided from the manifest
/// (shared rules with the node), then one ranged R2 read whose stream goes to the client
/// untouched — the isolate never holds the file, whatever its size. With `?sha256=` (the URLs the
/// manifest lists) the URL names its bytes, so the answer is cacheable as immutable, and a hash
/// that is not the file's is a 404; without it, caches revalidate by ETag.
pub async fn file(req: &Request, id: &str, name: &str, env: &Env) -> Result<Response> {
    let pinned = match req.query::<FileQuery>() {
        Ok(q) => q.sha256,
        Err(e) => return ApiError::bad_request(format!("query: {e}")).response(),
    };
    let manifest = match load(id, env).await? {
        Ok(m) => m,
        Err(e) => return e.response(),
    };
    let Some(entry) = manifest.file(name) else {
        return ApiError::not_found(format!("adapter `{id}` has no file `{name}`")).response();
    };
    if let Some(pinned) = &pinned
        && parse_sha256(pinned).as_deref() != Some(entry.sha256.as_str())
    {
        return ApiError::not_found(format!(
            "adapter `{id}` has no file `{name}` with sha256 {pinned} (it is {})",
            entry.sha256
        ))
        .response();
    }
    let headers = Headers::new();
    headers.set("etag", &tributary_http::etag(&entry.sha256))?;
    headers.set("x-content-sha256", &entry.sha256)?;
    if let Some(digest) = repr_digest(&entry.sha256) {
        headers.set("repr-digest", &digest)?;
    }
    headers.set("accept-ranges", "bytes")?;
    headers.set(
        "cache-control",
        if pinned.is_some() {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        },
    )?;
    let content_type = if name.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    };
    headers.set("content-type", content_type)?;

    let h = req.headers();
    let (inm, if_range, range) = (h.get("if-none-match")?, h.get("if-range")?, h.get("range")?);
    let conditions = Conditions {
        if_none_match: inm.as_deref(),
        if_range: if_range.as_deref(),
        range: range.as_deref(),
    };
    let size = entry.bytes;
    let (status, r2_range) = match conditions.answer(&entry.sha256, size) {
        Answer::NotModified => {
            return Ok(Response::empty()?.with_status(304).with_headers(headers));
        }
        Answer::Unsatisfiable => {
            let mut refusal = ApiError::new(
                416,
                "invalid_request_error",
                format!("range outside {size} bytes"),
            )
            .response()?;
            let h = refusal.headers_mut();
            h.set("content-range", &format!("bytes */{size}"))?;
            h.set("etag", &tributary_http::etag(&entry.sha256))?;
            return Ok(refusal);
        }
        Answer::Whole => {
            headers.set("content-length", &size.to_string())?;
            (200, None)
        }
        Answer::Part(first, last) => {
            headers.set("content-range", &format!("bytes {first}-{last}/{size}"))?;
            headers.set("content-length", &(last - first + 1).to_string())?;
            let range = Range::OffsetWithLength {
                offset: first,
                length: last - first + 1,
            };
            (206, Some(range))
        }
    };
    if req.method() == worker::Method::Head {
        return Ok(Response::empty()?.with_status(status).with_headers(headers));
    }
    let bucket = env.bucket(BUCKET)?;
    let mut get = bucket.get(blob_key(&entry.sha256));
    if let Some(range) = r2_range {
        get = get.range(range);
    }
    let Some(object) = get.execute().await? else {
        return ApiError::server(format!(
            "adapter `{id}`: file `{name}` is listed but its blob is missing from R2"
        ))
        .response();
    };
    let Some(body) = object.body() else {
        return ApiError::server(format!("adapter `{id}`: `{name}` came back without a body"))
            .response();
    };
    Ok(Response::from_body(body.response_body()?)?
        .with_status(status)
        .with_headers(headers))
}

/// RFC 9530 `Repr-Digest` of the whole file, from its hex SHA-256.
fn repr_digest(sha256_hex: &str) -> Option<String> {
    let bytes: Vec<u8> = (0..sha256_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(sha256_hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    Some(format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// `PUT /v1/adapters/{id}`, multipart: `adapter_config.json` and `adapter_model.safetensors` as
/// files, `sha256` the content hash the uploader computed. 401 without the token; 400 naming
/// the field, file or tensor at fault; 409 when the id already names other content; 413 past
/// `MAX_UPLOAD_BYTES`. Re-sending the same content is a 200.
pub async fn upload(mut req: Request, id: &str, env: &Env) -> Result<Response> {
    let secret = match env.secret(TOKEN) {
        Ok(s) => s.to_string(),
        Err(_) => {
            return ApiError::new(
                503,
                "server_error",
                format!("uploads are off: no {TOKEN} secret is bound"),
            )
            .response();
        }
    };
    if !token_matches(req.headers().get("authorization")?.as_deref(), &secret) {
        let mut refusal = ApiError::new(
            401,
            "authentication_error",
            "a valid `Authorization: Bearer` token is required to upload",
        )
        .response()?;
        refusal.headers_mut().set("www-authenticate", "Bearer")?;
        return Ok(refusal);
    }
    if !valid_id(id) {
        return ApiError::bad_request(format!(
            "id `{id}`: use 1-128 of A-Z a-z 0-9 - _ . (not starting with a dot)"
        ))
        .response();
    }
    let limit = crate::var_u64(env, "MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD);
    let declared = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_none_or(|n| n > limit) {
        return ApiError::new(
            if declared.is_none() { 411 } else { 413 },
            "invalid_request_error",
            format!("uploads need a Content-Length of at most {limit} bytes"),
        )
        .response();
    }
    let form = match req.form_data().await {
        Ok(f) => f,
        Err(e) => {
            return ApiError::bad_request(format!("body: not multipart/form-data ({e})"))
                .response();
        }
    };
    let expected = match form.get_field("sha256").as_deref().map(parse_sha256) {
        Some(Some(hash)) => hash,
        Some(None) => {
            return ApiError::bad_request("field `sha256`: not 64 hex digits").response();
        }
        None => {
            return ApiError::bad_request(
                "field `sha256` is missing: the content hash of the two files",
            )
            .response();
        }
    };
    let mut files = Vec::new();
    for name in [CONFIG_FILE, WEIGHTS_FILE] {
        match form.get(name) {
            Some(FormEntry::File(file)) => files.push(file.bytes().await?),
            Some(FormEntry::Field(_)) => {
                return ApiError::bad_request(format!("field `{name}`: must be a file")).response();
            }
            None => return ApiError::bad_request(format!("file `{name}` is missing")).response(),
        }
    }
    let weights = files.pop().unwrap_or_default();
    let config = files.pop().unwrap_or_default();
    let checked = match tributary_peft::check(&config, &weights) {
        Ok(s) => s,
        Err(e) => return ApiError::bad_request(e.to_string()).response(),
    };
    let actual = tributary_peft::hex(&tributary_peft::content_hash(&config, &weights));
    if actual != expected {
        return ApiError::bad_request(format!(
            "field `sha256`: the files hash to {actual}, not {expected}"
        ))
        .response();
    }

    let index = env.kv(INDEX)?;
    let existing: Option<Manifest> = index
        .get(&index_key(id))
        .json()
        .await
        .map_err(worker::Error::from)?;
    if let Some(existing) = existing {
        return if existing.summary.hash == actual {
            json(200, &existing)
        } else {
            ApiError::new(
                409,
                "invalid_request_error",
                format!(
                    "adapter `{id}` already exists with other content ({}); ids are write-once",
                    existing.summary.hash
                ),
            )
            .response()
        };
    }
    let hashes = [
        tributary_peft::sha256(&config),
        tributary_peft::sha256(&weights),
    ];
    let created = Date::now().as_millis() / 1000;
    let manifest = Manifest::new(
        id,
        &checked,
        actual,
        (&config, &weights),
        hashes.map(|h| tributary_peft::hex(&h)),
        created,
    );
    let bucket = env.bucket(BUCKET)?;
    // Moved, not copied, into R2's call: the isolate holds each file as few times as it can.
    for (bytes, hash) in [config, weights].into_iter().zip(&hashes) {
        // R2 checks the SHA-256 itself, so a blob under a name is never other bytes.
        bucket
            .put(blob_key(&tributary_peft::hex(hash)), bytes)
            .sha256(hash.to_vec())
            .execute()
            .await?;
    }
    index
        .put(&index_key(id), serde_json::to_string(&manifest)?)
        .map_err(worker::Error::from)?
        .metadata(&manifest.summary)
        .map_err(worker::Error::from)?
        .execute()
        .await
        .map_err(worker::Error::from)?;
    json(201, &manifest)
}
