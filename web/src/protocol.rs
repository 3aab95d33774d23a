//! Messages between the page and the inference worker (bincode over `postMessage`, by gloo).

use serde::{Deserialize, Serialize};

/// A file of a model or adapter as the node lists it in `/v1/models`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    pub name: String,
    /// Absolute: the worker runs from a `blob:` URL, against which relative URLs do not resolve.
    pub url: String,
    /// Lower-case hex SHA-256 of the file; the bytes are checked against it before use.
    pub sha256: String,
    pub bytes: u64,
}

/// A LoRA adapter the worker fetches and registers the first time a generation names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterRef {
    pub name: String,
    pub files: Vec<FileRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backend {
    /// WebGPU when the browser offers an adapter, else the CPU.
    Auto,
    /// burn's NdArray in wasm, whatever the browser offers.
    Cpu,
}

/// How weights are fetched: files larger than `range_chunk` bytes come in `Range` requests of
/// that size (progress per chunk, and no single response larger than it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetching {
    pub range_chunk: u64,
    /// Keep downloaded files in the Cache API so a reload does not download them again.
    pub use_cache: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// 0 is greedy.
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub seed: u64,
    pub max_tokens: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    Load {
        base: String,
        files: Vec<FileRef>,
        backend: Backend,
        fetching: Fetching,
    },
    /// One prompt through one or more adapters (`None`: the base alone), all in the same batches.
    Generate {
        job: u32,
        prompt: String,
        lanes: Vec<Option<AdapterRef>>,
        sampling: Sampling,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromWorker {
    Progress {
        file: String,
        done: u64,
        total: u64,
        from_cache: bool,
    },
    /// Something the user should know that is not an error (a fallback taken).
    Notice(String),
    Ready {
        /// "WebGPU" or "CPU (wasm)".
        backend: String,
        /// The GPU adapter's description, when there is one.
        device: Option<String>,
    },
    /// The prompt was tokenized and queued; `prompt_tokens` for the stats.
    Started {
        job: u32,
        prompt_tokens: usize,
    },
    Token {
        job: u32,
        lane: usize,
        token: u32,
        /// All text decoded so far (decoding whole keeps multi-byte characters intact).
        text: String,
        /// Milliseconds since the worker took the request, by the worker's clock: the page's own
        /// arrival times bunch up whenever it is busy, so speeds are measured here.
        at_ms: f64,
    },
    Done {
        job: u32,
        lane: usize,
        tokens: Vec<u32>,
        text: String,
        stop: String,
        /// The worker's wasm memory, which only grows: its peak so far.
        worker_memory_bytes: u64,
    },
    Failed {
        job: Option<u32>,
        error: String,
    },
}
