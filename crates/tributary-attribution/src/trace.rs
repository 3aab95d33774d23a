//! Span tracing as OLMoTrace does it: at every output position the longest span that occurs
//! verbatim in the data, keep the maximal ones, cut them at sentence delimiters, rank them by
//! unigram probability (rare spans say more about where the text came from than common ones), keep
//! the top few, and a few documents for each.

use serde::Serialize;

use crate::index::Shard;

/// Several shards queried as one index; documents are numbered across shards in order.
#[derive(Debug, Default)]
pub struct Index {
    shards: Vec<Shard>,
    /// The first global document number of each shard.
    doc_base: Vec<usize>,
    /// Tokens without separators, for unigram probabilities.
    tokens: usize,
}

impl Index {
    pub fn new(shards: Vec<Shard>) -> Self {
        let mut doc_base = Vec::with_capacity(shards.len());
        let (mut docs, mut tokens) = (0, 0);
        for s in &shards {
            doc_base.push(docs);
            docs += s.meta().documents as usize;
            tokens += s.len() - s.meta().documents as usize;
        }
        Self {
            shards,
            doc_base,
            tokens,
        }
    }

    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    pub fn documents(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.meta().documents as usize)
            .sum()
    }

    /// Longest prefix of `query` found in any shard, and its occurrences in all shards.
    fn longest(&self, query: &[u32]) -> (usize, usize) {
        let matches: Vec<_> = self
            .shards
            .iter()
            .map(|s| s.longest_prefix(query))
            .collect();
        let len = matches.iter().map(|m| m.len).max().unwrap_or(0);
        let count = matches
            .iter()
            .filter(|m| m.len == len)
            .map(|m| m.sa_range.len())
            .sum();
        (len, count)
    }

    pub fn count(&self, ngram: &[u32]) -> usize {
        self.shards.iter().map(|s| s.count(ngram)).sum()
    }

    /// Up to `limit` (document, offset) occurrences of `ngram`, in suffix-array order shard by
    /// shard: deterministic, so the same query always names the same documents.
    pub fn occurrences(&self, ngram: &[u32], limit: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (s, base) in self.shards.iter().zip(&self.doc_base) {
            let m = s.longest_prefix(ngram);
            if m.len < ngram.len() || ngram.is_empty() {
                continue;
            }
            for j in m.sa_range {
                if out.len() == limit {
                    return out;
                }
                let (doc, off) = s.document_of(s.suffix(j));
                out.push((base + doc, off));
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanParams {
    /// Shorter spans are common phrases, not evidence.
    pub min_len: usize,
    /// Spans kept per output token (OLMoTrace keeps about 0.05·L).
    pub spans_per_token: f64,
    /// Documents kept per span.
    pub docs_per_span: usize,
    /// Token ids that end a sentence; a span is cut after each.
    pub delimiters: Vec<u32>,
    /// Bytes of text of each token id (from the tokenizer); with it, spans shorter than
    /// `min_bytes` of text are dropped too. Tokens are no measure of evidence by themselves: a
    /// small vocabulary cuts a two-word phrase into six tokens, and such phrases occur anywhere.
    pub token_bytes: Vec<u32>,
    pub min_bytes: usize,
}

impl Default for SpanParams {
    fn default() -> Self {
        Self {
            min_len: 6,
            spans_per_token: 0.05,
            docs_per_span: 10,
            delimiters: Vec::new(),
            token_bytes: Vec::new(),
            // About six English words.
            min_bytes: 32,
        }
    }
}

impl SpanParams {
    /// The defaults, with sentence delimiters and token lengths read off a vocabulary:
    /// `decode(id)` is the text of one token id. Delimiters are tokens whose text holds a
    /// sentence end or a line break.
    pub fn for_vocabulary(vocab_size: u32, decode: impl Fn(u32) -> Option<String>) -> Self {
        let mut params = Self::default();
        for id in 0..vocab_size {
            let text = decode(id).unwrap_or_default();
            if text.contains(['.', '!', '?', '\n']) {
                params.delimiters.push(id);
            }
            params.token_bytes.push(text.len() as u32);
        }
        params
    }
}

/// A span of the output found in the data.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    /// Output token positions.
    pub start: usize,
    pub len: usize,
    /// Sum of log unigram probabilities of its tokens (lower: rarer).
    pub log_prob: f64,
    /// How often it occurs in the data.
    pub occurrences: usize,
    /// (document, token offset) of up to `docs_per_span` occurrences.
    pub documents: Vec<(usize, usize)>,
}

/// Traces `output` against `index`. Deterministic: the same index and output give the same spans
/// in the same order.
pub fn trace(index: &Index, output: &[u32], params: &SpanParams) -> Vec<Span> {
    if index.tokens == 0 || output.is_empty() {
        return Vec::new();
    }
    // Longest match starting at each position; a span is maximal when it ends after every
    // earlier one (a span starting later and ending no later is inside an earlier one).
    let mut candidates: Vec<(usize, usize)> = Vec::new();
    let mut furthest = 0;
    for i in 0..output.len() {
        let (len, _) = index.longest(&output[i..]);
        if len > 0 && i + len > furthest {
            candidates.push((i, len));
            furthest = i + len;
        }
    }
    // Cut at sentence delimiters: keep the pieces, each ending at (and including) a delimiter.
    let mut pieces = Vec::new();
    for (start, len) in candidates {
        let mut from = start;
        for (p, token) in output.iter().enumerate().skip(start).take(len) {
            if params.delimiters.contains(token) {
                pieces.push((from, p + 1 - from));
                from = p + 1;
            }
        }
        if from < start + len {
            pieces.push((from, start + len - from));
        }
    }
    let text_bytes = |start: usize, len: usize| -> usize {
        output[start..start + len]
            .iter()
            .map(|&t| params.token_bytes.get(t as usize).copied().unwrap_or(0) as usize)
            .sum()
    };
    pieces.retain(|&(start, len)| {
        len >= params.min_len
            && (params.token_bytes.is_empty() || text_bytes(start, len) >= params.min_bytes)
    });
    pieces.sort();
    pieces.dedup();
    let log_unigram = |t: u32| {
        let c = index.count(&[t]).max(1) as f64;
        (c / index.tokens as f64).ln()
    };
    let mut spans: Vec<Span> = pieces
        .into_iter()
        .map(|(start, len)| {
            let ngram = &output[start..start + len];
            Span {
                start,
                len,
                log_prob: ngram.iter().map(|&t| log_unigram(t)).sum(),
                occurrences: index.count(ngram),
                documents: index.occurrences(ngram, params.docs_per_span),
            }
        })
        .filter(|s| s.occurrences > 0)
        .collect();
    // Rarest first; ties by position, so the order is total.
    spans.sort_by(|a, b| {
        a.log_prob
            .total_cmp(&b.log_prob)
            .then(a.start.cmp(&b.start))
    });
    let keep = ((output.len() as f64 * params.spans_per_token).ceil() as usize).max(1);
    spans.truncate(keep);
    spans.sort_by_key(|s| s.start);
    spans
}
