//! OpenAI's completion wire format over the engine, shared by the node's server and the edge
//! worker so both read the same request fields and answer in the same bytes.

use serde_json::{Value, json};
use tributary_model::{SamplingParams, StopReason, Tokenizer};

use crate::EngineError;

/// Tokens generated when a request names no `max_tokens` (OpenAI's legacy default).
pub const DEFAULT_MAX_TOKENS: usize = 16;

/// What the two completion endpoints return: OpenAI's legacy text shape or the chat shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Text,
    Chat,
}

/// The sampling fields of a request body; `eos` ends generation unless `ignore_eos` (vLLM's
/// spelling) is set.
pub fn sampling(v: &Value, eos: &[u32]) -> SamplingParams {
    let max_tokens = v["max_completion_tokens"]
        .as_u64()
        .or(v["max_tokens"].as_u64())
        .map_or(DEFAULT_MAX_TOKENS, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        });
    SamplingParams {
        temperature: v["temperature"].as_f64().unwrap_or(1.0) as f32,
        top_k: 0,
        top_p: v["top_p"].as_f64().unwrap_or(1.0) as f32,
        seed: v["seed"].as_u64().unwrap_or(0),
        max_tokens,
        stop_tokens: if v["ignore_eos"].as_bool() == Some(true) {
            Vec::new()
        } else {
            eos.to_vec()
        },
    }
}

/// `"<base>"` → the base alone, `"<base>:<adapter>"` → that adapter; `None` for another base.
pub fn resolve<'a>(model: &'a str, base: &str) -> Option<Option<&'a str>> {
    match model.split_once(':') {
        None if model == base => Some(None),
        Some((b, adapter)) if b == base && !adapter.is_empty() => Some(Some(adapter)),
        _ => None,
    }
}

/// The HTTP status for a request the engine refused at submission.
pub fn status(e: &EngineError) -> u16 {
    match e {
        EngineError::UnknownAdapter(_) => 404,
        EngineError::OverContext(..) | EngineError::OverKvBudget(..) => 413,
        EngineError::QueueFull(_) => 429,
        _ => 400,
    }
}

/// OpenAI's `finish_reason`.
pub fn finish(r: &StopReason) -> &'static str {
    if *r == StopReason::StopToken {
        "stop"
    } else {
        "length"
    }
}

/// The fields every response and chunk of one request share.
#[derive(Debug, Clone)]
pub struct Reply {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub shape: Shape,
}

impl Reply {
    /// `nanos` makes the id unique per request; `created` is in seconds.
    pub fn new(model: &str, shape: Shape, created: u64, nanos: u128) -> Self {
        let id = match shape {
            Shape::Text => format!("cmpl-{nanos}"),
            Shape::Chat => format!("chatcmpl-{nanos}"),
        };
        Self {
            id,
            created,
            model: model.to_owned(),
            shape,
        }
    }

    fn envelope(&self, chunk: bool) -> Value {
        let object = match (self.shape, chunk) {
            (Shape::Text, _) => "text_completion",
            (Shape::Chat, false) => "chat.completion",
            (Shape::Chat, true) => "chat.completion.chunk",
        };
        json!({"id": self.id, "object": object, "created": self.created, "model": self.model})
    }

    /// The whole answer of a request that did not stream. `token_ids` is an extension (vLLM
    /// returns the same) so clients can compare tokens, not re-tokenised text.
    pub fn complete(
        &self,
        text: &str,
        tokens: &[u32],
        prompt_tokens: usize,
        reason: &StopReason,
    ) -> Value {
        let choice = match self.shape {
            Shape::Text => {
                json!({"index": 0, "text": text, "finish_reason": finish(reason), "token_ids": tokens})
            }
            Shape::Chat => json!({"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": finish(reason), "token_ids": tokens}),
        };
        let mut body = self.envelope(false);
        body["choices"] = json!([choice]);
        body["usage"] = json!({"prompt_tokens": prompt_tokens, "completion_tokens": tokens.len(),
                               "total_tokens": prompt_tokens + tokens.len()});
        body
    }

    /// One streamed chunk: new text, and the finish reason on the last one.
    pub fn chunk(&self, text: &str, first: bool, reason: Option<&str>) -> Value {
        let choice = match self.shape {
            Shape::Text => json!({"index": 0, "text": text, "finish_reason": reason}),
            Shape::Chat => {
                let delta = match (first, text.is_empty() && reason.is_some()) {
                    (_, true) => json!({}),
                    (true, false) => json!({"role": "assistant", "content": text}),
                    (false, false) => json!({"content": text}),
                };
                json!({"index": 0, "delta": delta, "finish_reason": reason})
            }
        };
        let mut body = self.envelope(true);
        body["choices"] = json!([choice]);
        body
    }
}

/// The error object a stream sends in place of a chunk when its request fails mid-way.
pub fn stream_error(message: &str) -> Value {
    json!({"error": {"message": message, "type": "server_error"}})
}

/// Turns a request's events into stream chunks whose texts add up to the decoded whole. Each
/// token decodes everything so far and sends what is new; a character whose bytes are split
/// across tokens decodes as U+FFFD until its last byte arrives, so trailing U+FFFDs are held back
/// (and sent with the finish reason if they never resolve).
#[derive(Debug, Clone)]
pub struct ChunkStream {
    reply: Reply,
    tokenizer: Tokenizer,
    tokens: Vec<u32>,
    sent: usize,
}

impl ChunkStream {
    pub fn new(reply: Reply, tokenizer: Tokenizer) -> Self {
        Self {
            reply,
            tokenizer,
            tokens: Vec::new(),
            sent: 0,
        }
    }

    pub fn token(&mut self, token: u32) -> Value {
        self.tokens.push(token);
        let delta = self.unsent(false);
        self.reply.chunk(&delta, self.tokens.len() == 1, None)
    }

    pub fn finished(&mut self, reason: &StopReason) -> Value {
        let rest = self.unsent(true);
        self.reply
            .chunk(&rest, self.tokens.is_empty(), Some(finish(reason)))
    }

    fn unsent(&mut self, all: bool) -> String {
        let text = self.tokenizer.decode(&self.tokens).unwrap_or_default();
        let end = if all {
            text.len()
        } else {
            text.trim_end_matches('\u{FFFD}').len()
        };
        if end <= self.sent || !text.is_char_boundary(self.sent) {
            return String::new();
        }
        let delta = text[self.sent..end].to_owned();
        self.sent = end;
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_defaults() {
        let p = sampling(&json!({}), &[7]);
        assert_eq!(p.max_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!(p.temperature, 1.0);
        assert_eq!(p.stop_tokens, vec![7]);
        let p = sampling(
            &json!({"max_tokens": 3, "max_completion_tokens": 5, "temperature": 0,
                    "top_p": 0.5, "seed": 9, "ignore_eos": true}),
            &[7],
        );
        assert_eq!(
            (p.max_tokens, p.temperature, p.top_p, p.seed),
            (5, 0.0, 0.5, 9)
        );
        assert!(p.stop_tokens.is_empty());
    }

    #[test]
    fn model_names() {
        assert_eq!(resolve("tiny", "tiny"), Some(None));
        assert_eq!(resolve("tiny:a", "tiny"), Some(Some("a")));
        assert_eq!(resolve("tiny:", "tiny"), None);
        assert_eq!(resolve("other:a", "tiny"), None);
        assert_eq!(resolve("other", "tiny"), None);
    }

    #[test]
    fn shapes_follow_openai() {
        let text = Reply::new("m", Shape::Text, 1, 2);
        assert_eq!(text.id, "cmpl-2");
        let v = text.complete("hi", &[4, 5], 3, &StopReason::StopToken);
        assert_eq!(v["object"], "text_completion");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["total_tokens"], 5);
        let chat = Reply::new("m", Shape::Chat, 1, 2);
        let first = chat.chunk("a", true, None);
        assert_eq!(first["object"], "chat.completion.chunk");
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
        let last = chat.chunk("", false, Some("length"));
        assert_eq!(last["choices"][0]["delta"], json!({}));
        assert_eq!(last["choices"][0]["finish_reason"], "length");
        let held = chat.chunk("b", false, Some("stop"));
        assert_eq!(held["choices"][0]["delta"], json!({"content": "b"}));
    }
}
