//! Continuous batching: requests join between steps, each step runs every admitted sequence
//! once (prompts prefill while others decode, each with its own adapter through SGMV), finished
//! and cancelled ones leave and hand back their KV blocks. Requests wait in a bounded queue
//! while KV blocks or batch slots are short, instead of failing.
//!
//! The engine is a plain state machine with one `async` method, [`Engine::step`], whose only
//! await is the device readback: no runtime inside, so it runs under a server's runtime, under
//! `pollster` in tests, or in a browser's event loop.

use std::collections::VecDeque;
use std::sync::Arc;

use tributary_model::{
    Adapter, ModelError, PagedKv, Sampler, SamplingParams, SeqKv, SgmvBackend, Step, StopReason,
};

use crate::store::{AdapterStore, StoreError};

/// Sizes of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Requests that may wait for admission; one more is refused.
    pub max_queue: usize,
    /// Sequences per step.
    pub max_batch: usize,
    /// Positions per KV block.
    pub block_tokens: usize,
    /// Bytes for the paged KV cache (all layers, keys and values).
    pub kv_budget_bytes: u64,
}

/// A completion request in token ids.
#[derive(Debug, Clone)]
pub struct Request {
    /// A registered adapter, or the base model.
    pub adapter: Option<String>,
    pub prompt: Vec<u32>,
    pub params: SamplingParams,
}

pub type RequestId = u64;

/// What a step produced, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Token {
        id: RequestId,
        token: u32,
    },
    Finished {
        id: RequestId,
        reason: StopReason,
    },
    /// The request could not be served (its adapter failed to load, say).
    Failed {
        id: RequestId,
        error: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the queue is full ({0} requests waiting)")]
    QueueFull(usize),
    #[error("no adapter named `{0}` is registered")]
    UnknownAdapter(String),
    #[error("the prompt has no tokens")]
    EmptyPrompt,
    #[error("prompt token {0} is outside the vocabulary ({1} tokens)")]
    BadToken(u32, usize),
    #[error("the prompt has {0} tokens; the model's context is {1}")]
    OverContext(usize, usize),
    #[error("the prompt needs {0} KV blocks; the whole cache has {1}")]
    OverKvBudget(usize, usize),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Counts for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineMetrics {
    pub waiting: usize,
    pub running: usize,
    pub kv_blocks_used: usize,
    pub kv_blocks_total: usize,
    pub steps: u64,
    pub tokens: u64,
}

#[derive(Debug)]
struct Running<B: SgmvBackend> {
    id: RequestId,
    adapter: Option<Adapter<B>>,
    seq: SeqKv,
    input: Vec<u32>,
    sampler: Sampler,
    params: SamplingParams,
    generated: usize,
}

#[derive(Debug)]
pub struct Engine<B: SgmvBackend> {
    store: Arc<AdapterStore<B>>,
    kv: PagedKv<B>,
    config: EngineConfig,
    waiting: VecDeque<(RequestId, Request)>,
    running: Vec<Running<B>>,
    next_id: RequestId,
    steps: u64,
    tokens: u64,
}

impl<B: SgmvBackend> Engine<B> {
    /// An engine over the store's base model.
    pub fn new(store: Arc<AdapterStore<B>>, config: EngineConfig) -> Result<Self, EngineError> {
        let model = store.model();
        let kv = PagedKv::new(
            &model.config,
            config.block_tokens,
            config.kv_budget_bytes,
            model.device(),
        )?;
        Ok(Self {
            store,
            kv,
            config,
            waiting: VecDeque::new(),
            running: Vec::new(),
            next_id: 0,
            steps: 0,
            tokens: 0,
        })
    }

    /// Queues a request after checking what can be checked now; it is admitted by a later step.
    pub fn submit(&mut self, request: Request) -> Result<RequestId, EngineError> {
        let config = &self.store.model().config;
        if request.prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        if let Some(&bad) = request
            .prompt
            .iter()
            .find(|&&t| t as usize >= config.vocab_size)
        {
            return Err(EngineError::BadToken(bad, config.vocab_size));
        }
        if request.prompt.len() > config.max_position_embeddings {
            return Err(EngineError::OverContext(
                request.prompt.len(),
                config.max_position_embeddings,
            ));
        }
        let blocks = (request.prompt.len() + 1).div_ceil(self.kv.block_tokens());
        if blocks > self.kv.blocks_total() {
            return Err(EngineError::OverKvBudget(blocks, self.kv.blocks_total()));
        }
        if let Some(name) = &request.adapter
            && !self.store.contains(name)
        {
            return Err(EngineError::UnknownAdapter(name.clone()));
        }
        if self.waiting.len() >= self.config.max_queue {
            return Err(EngineError::QueueFull(self.waiting.len()));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.waiting.push_back((id, request));
        Ok(id)
    }

    /// Drops a request, waiting or running, and frees its KV blocks; false if it is unknown or
    /// already finished.
    pub fn cancel(&mut self, id: RequestId) -> bool {
        if let Some(at) = self.waiting.iter().position(|(w, _)| *w == id) {
            self.waiting.remove(at);
            return true;
        }
        if let Some(at) = self.running.iter().position(|r| r.id == id) {
            let mut r = self.running.remove(at);
            self.kv.release(&mut r.seq);
            return true;
        }
        false
    }

    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    pub fn metrics(&self) -> EngineMetrics {
        EngineMetrics {
            waiting: self.waiting.len(),
            running: self.running.len(),
            kv_blocks_used: self.kv.blocks_total() - self.kv.blocks_free(),
            kv_blocks_total: self.kv.blocks_total(),
            steps: self.steps,
            tokens: self.tokens,
        }
    }

    /// Admits what fits, runs one step over every running sequence, and reports what happened.
    ///
    /// A sequence that grows past the KV cache stops the youngest running request (it fails;
    /// the older ones go on), and a step the model cannot run fails the requests in it: either
    /// way the engine itself keeps serving, and every request it took ends with an event.
    pub async fn step(&mut self) -> Result<Vec<Event>, EngineError> {
        let mut events = Vec::new();
        self.admit(&mut events);
        self.make_kv_room(&mut events);
        if self.running.is_empty() {
            return Ok(events);
        }
        let model = Arc::clone(self.store.model());
        let mut steps: Vec<Step<'_, B>> = self
            .running
            .iter_mut()
            .map(|r| Step {
                tokens: &r.input,
                seq: &mut r.seq,
                adapter: r.adapter.as_ref(),
            })
            .collect();
        let logits = match model.forward_steps(&mut self.kv, &mut steps) {
            Ok(logits) => logits
                .into_data_async()
                .await
                .map_err(|e| ModelError::Readback(format!("{e:?}")))
                .and_then(|data| {
                    data.to_vec::<f32>()
                        .map_err(|e| ModelError::Readback(format!("{e:?}")))
                }),
            Err(e) => Err(e),
        };
        let logits = match logits {
            Ok(logits) => logits,
            Err(e) => {
                tracing::error!(error = %e, requests = self.running.len(), "engine step failed");
                for mut r in self.running.drain(..) {
                    self.kv.release(&mut r.seq);
                    events.push(Event::Failed {
                        id: r.id,
                        error: format!("the model failed: {e}"),
                    });
                }
                return Ok(events);
            }
        };
        self.steps += 1;
        let vocab = model.config.vocab_size;
        let context = model.config.max_position_embeddings;
        let mut still = Vec::with_capacity(self.running.len());
        for (mut r, row) in self.running.drain(..).zip(logits.chunks_exact(vocab)) {
            let token = r.sampler.sample(row);
            r.generated += 1;
            self.tokens += 1;
            events.push(Event::Token { id: r.id, token });
            // The same stopping rules, in the same order, as `tributary_model::generate`.
            let reason = if r.params.stop_tokens.contains(&token) {
                Some(StopReason::StopToken)
            } else if r.generated >= r.params.max_tokens {
                Some(StopReason::MaxTokens)
            } else if r.seq.len() >= context {
                Some(StopReason::Context)
            } else {
                None
            };
            match reason {
                Some(reason) => {
                    self.kv.release(&mut r.seq);
                    events.push(Event::Finished { id: r.id, reason });
                }
                None => {
                    r.input = vec![token];
                    still.push(r);
                }
            }
        }
        self.running = still;
        Ok(events)
    }

    /// Reserves the blocks each running sequence needs for this step, oldest first; when the
    /// cache runs out, the youngest running request fails and gives its blocks back (vLLM would
    /// preempt and recompute it later; a failed request is at least never stuck).
    fn make_kv_room(&mut self, events: &mut Vec<Event>) {
        let mut at = 0;
        while at < self.running.len() {
            let r = &mut self.running[at];
            if self.kv.reserve(&mut r.seq, r.input.len()).is_ok() {
                at += 1;
                continue;
            }
            let mut youngest = self.running.pop().expect("`at` is in range");
            self.kv.release(&mut youngest.seq);
            tracing::warn!(request = youngest.id, "KV cache full: request stopped");
            events.push(Event::Failed {
                id: youngest.id,
                error: format!(
                    "the KV cache ({} blocks of {} positions) is full: this request was stopped \
                     after {} tokens; ask for fewer tokens or retry later",
                    self.kv.blocks_total(),
                    self.kv.block_tokens(),
                    youngest.generated
                ),
            });
        }
    }

    /// Moves waiting requests to running, in order, while a batch slot and KV blocks for the
    /// prompt are free, keeping one block in hand per running sequence for its next token.
    fn admit(&mut self, events: &mut Vec<Event>) {
        while self.running.len() < self.config.max_batch {
            let Some((id, request)) = self.waiting.front() else {
                break;
            };
            let id = *id;
            let blocks = (request.prompt.len() + 1).div_ceil(self.kv.block_tokens());
            if blocks + self.running.len() > self.kv.blocks_free() {
                break; // first come, first served: later requests wait behind this one
            }
            let (_, request) = self.waiting.pop_front().expect("peeked above");
            if request.params.max_tokens == 0 {
                events.push(Event::Finished {
                    id,
                    reason: StopReason::MaxTokens,
                });
                continue;
            }
            let adapter = match &request.adapter {
                Some(name) => match self.store.acquire(name) {
                    Ok(a) => Some(a),
                    Err(e @ StoreError::Pinned { .. }) => {
                        // Every resident adapter is pinned: try again after a step.
                        tracing::debug!(request = id, error = %e, "adapter not loadable yet");
                        self.waiting.push_front((id, request));
                        break;
                    }
                    Err(e) => {
                        events.push(Event::Failed {
                            id,
                            error: e.to_string(),
                        });
                        continue;
                    }
                },
                None => None,
            };
            self.running.push(Running {
                id,
                adapter,
                seq: SeqKv::new(),
                input: request.prompt,
                sampler: Sampler::new(request.params.clone()),
                params: request.params,
                generated: 0,
            });
        }
    }
}
