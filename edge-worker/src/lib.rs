//! The Tributary edge worker (Cloudflare Workers, workers-rs): PEFT adapters stored in R2 and
//! indexed in KV, served by ranges next to the tabs and nodes that fetch them, and receipt
//! verification for clients that cannot run the wallet's WASM themselves.
//!
//! Routes (errors are the node's OpenAI-shaped JSON, from `tributary-http`):
//! - `GET /v1/adapters` — the list, from KV metadata alone (no per-adapter reads);
//! - `GET /v1/adapters/{id}` — one adapter's manifest;
//! - `GET /v1/adapters/{id}/{file}` — a file streamed from R2, with `Range`, `ETag`,
//!   `Cache-Control: immutable` (ids are write-once, so a URL always names the same bytes) and
//!   its SHA-256 as `X-Content-Sha256` and `Repr-Digest`;
//! - `PUT /v1/adapters/{id}` — multipart upload of both PEFT files with their content hash,
//!   behind a bearer token from a secret; checked whole before anything is stored;
//! - `POST /v1/receipts/verify` — `{receipt, proofs?, trustedHeader?}` in, the wallet's outcome
//!   (trust level or failing step) out;
//! - `POST /v1/completions` — OpenAI text completions on the CPU for a small base in R2, with
//!   this worker's adapters;
//! - `/healthz` — with the isolate's memory high-water mark.

mod adapters;
mod completions;
mod manifest;

use futures_util::StreamExt as _;
use serde::Serialize;
use worker::{Context, Env, Headers, Method, Request, Response, Result, event};

pub use manifest::{FileEntry, Manifest, Summary, valid_id};

/// Receipt bundles are a few kilobytes; this bounds what a client can make the isolate hold.
const MAX_VERIFY_BYTES: usize = 256 * 1024;

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let response = match route(req, &env).await {
        Ok(r) => r,
        Err(e) => ApiError::server(e.to_string()).response(),
    };
    response.and_then(cors)
}

async fn route(req: Request, env: &Env) -> Result<Result<Response>> {
    let path = req.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method();
    Ok(match (method.clone(), segments.as_slice()) {
        (Method::Options, _) => preflight(),
        (Method::Get, ["healthz"]) => {
            let mut health = completions::health();
            health["status"] = "ok".into();
            json(200, &health)
        }
        (Method::Get, ["v1", "adapters"]) => adapters::list(&req, env).await,
        (Method::Get, ["v1", "adapters", id]) => adapters::manifest(id, env).await,
        (Method::Get | Method::Head, ["v1", "adapters", id, file]) => {
            adapters::file(&req, id, file, env).await
        }
        (Method::Put, ["v1", "adapters", id]) => adapters::upload(req, id, env).await,
        (Method::Post, ["v1", "receipts", "verify"]) => verify(req).await,
        (Method::Post, ["v1", "completions"]) => completions::completions(req, env).await,
        (
            _,
            ["healthz"]
            | ["v1", "adapters"]
            | ["v1", "adapters", _]
            | ["v1", "adapters", _, _]
            | ["v1", "receipts", "verify"]
            | ["v1", "completions"],
        ) => ApiError::new(
            405,
            "invalid_request_error",
            format!("{method} is not allowed on {path}"),
        )
        .response(),
        _ => ApiError::not_found(format!("no route {path}")).response(),
    })
}

/// `POST /v1/receipts/verify`: a receipt that fails is a 200 with `valid: false` and the step
/// (what the wallet's `verifyReceipt` returns); only input that is not a receipt bundle is a 400.
async fn verify(mut req: Request) -> Result<Response> {
    let body = match read_limited(&mut req, MAX_VERIFY_BYTES).await? {
        Ok(body) => body,
        Err(refusal) => return refusal.response(),
    };
    let request: tributary_receipt::VerifyRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return ApiError::bad_request(format!("request body: {e}")).response(),
    };
    match request.outcome() {
        Ok(outcome) => json(200, &outcome),
        Err(reason) => ApiError::bad_request(reason.to_string()).response(),
    }
}

/// A numeric var from wrangler.toml, or `default` when it is absent or not a number.
pub(crate) fn var_u64(env: &Env, name: &str, default: u64) -> u64 {
    env.var(name)
        .ok()
        .and_then(|v| v.to_string().parse().ok())
        .unwrap_or(default)
}

/// The body, refused with 413 past `limit` whether or not the client declared its length.
pub(crate) async fn read_limited(
    req: &mut Request,
    limit: usize,
) -> Result<std::result::Result<Vec<u8>, ApiError>> {
    let too_big = || {
        ApiError::new(
            413,
            "invalid_request_error",
            format!("request body over {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Ok(Err(too_big()));
    }
    // Read by chunks, so a body without a length is cut off at the limit, not held whole first.
    let mut body = Vec::new();
    let mut stream = req.stream()?;
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk?);
        if body.len() > limit {
            return Ok(Err(too_big()));
        }
    }
    Ok(Ok(body))
}

/// An error answer in the shape every Tributary endpoint uses.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: u16,
    kind: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found_error", message)
    }

    pub(crate) fn server(message: impl Into<String>) -> Self {
        Self::new(500, "server_error", message)
    }

    pub(crate) fn response(&self) -> Result<Response> {
        json(
            self.status,
            &tributary_http::error_body(self.kind, &self.message),
        )
    }
}

pub(crate) fn json(status: u16, value: &impl Serialize) -> Result<Response> {
    Ok(Response::from_json(value)?.with_status(status))
}

/// Tabs on other origins fetch adapters and verify receipts here.
fn cors(mut response: Response) -> Result<Response> {
    let headers = response.headers_mut();
    headers.set("access-control-allow-origin", "*")?;
    headers.set(
        "access-control-expose-headers",
        "etag, content-range, content-length, accept-ranges, x-content-sha256, repr-digest",
    )?;
    Ok(response)
}

fn preflight() -> Result<Response> {
    let headers = Headers::new();
    headers.set(
        "access-control-allow-methods",
        "GET, HEAD, PUT, POST, OPTIONS",
    )?;
    headers.set(
        "access-control-allow-headers",
        "authorization, content-type, range, if-none-match, if-range",
    )?;
    headers.set("access-control-max-age", "86400")?;
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}
