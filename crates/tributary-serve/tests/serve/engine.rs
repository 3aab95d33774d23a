//! Continuous batching against each request run alone with `tributary_model::generate`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::common::*;
use tributary_model::{SamplingParams, StopReason, generate};
use tributary_serve::{AdapterStore, Engine, EngineConfig, EngineError, Event, Request, RequestId};

fn config(kv_blocks: u64, model: &tributary_model::Model<B>) -> EngineConfig {
    let c = &model.config;
    let block_tokens = 4;
    let block_bytes = (2 * c.num_layers * c.num_kv_heads * block_tokens * c.head_dim * 4) as u64;
    EngineConfig {
        max_queue: 32,
        max_batch: 8,
        block_tokens,
        kv_budget_bytes: kv_blocks * block_bytes,
    }
}

/// Runs the engine until idle; returns each request's tokens and how it ended.
fn drain(
    engine: &mut Engine<B>,
    mut on_step: impl FnMut(&mut Engine<B>, usize),
) -> BTreeMap<RequestId, (Vec<u32>, Option<StopReason>)> {
    let mut out: BTreeMap<RequestId, (Vec<u32>, Option<StopReason>)> = BTreeMap::new();
    let mut step = 0;
    while !engine.is_idle() {
        for event in pollster::block_on(engine.step()).unwrap() {
            match event {
                Event::Token { id, token } => out.entry(id).or_default().0.push(token),
                Event::Finished { id, reason } => out.entry(id).or_default().1 = Some(reason),
                Event::Failed { id, error } => panic!("request {id} failed: {error}"),
            }
        }
        on_step(engine, step);
        step += 1;
        assert!(step < 500, "the engine does not finish");
    }
    out
}

#[test]
fn sixteen_requests_over_sixteen_adapters_each_equal_their_run_alone() {
    let model = model("llama-gqa");
    let store = Arc::new(AdapterStore::new(Arc::clone(&model), ROOMY));
    for k in 0..16 {
        store
            .register(&format!("a{k}"), random_adapter(&model, k), None)
            .unwrap();
    }
    // 14 blocks of 4 tokens: not enough for 8 sequences at once, so requests wait for blocks
    // as well as for batch slots.
    let mut engine = Engine::new(Arc::clone(&store), config(14, &model)).unwrap();
    let mut requests = Vec::new();
    for k in 0..18u64 {
        let prompt: Vec<u32> = (0..(1 + k % 7))
            .map(|i| (3 + 31 * k + 7 * i) as u32 % 384)
            .collect();
        let params = SamplingParams {
            // Greedy for most; seeded sampling for some, which must reproduce too.
            temperature: if k % 3 == 0 { 0.8 } else { 0.0 },
            top_k: 0,
            top_p: 1.0,
            seed: k,
            max_tokens: 3 + (k as usize % 5),
            stop_tokens: Vec::new(),
        };
        let adapter = (k < 16).then(|| format!("a{k}"));
        let request = Request {
            adapter,
            prompt,
            params,
        };
        let id = engine.submit(request.clone()).unwrap();
        requests.push((id, request));
    }
    let mut most_running = 0;
    let mut most_waiting = 0;
    let out = drain(&mut engine, |e, _| {
        most_running = most_running.max(e.metrics().running);
        most_waiting = most_waiting.max(e.metrics().waiting);
    });
    assert!(
        most_running > 1 && most_waiting > 0,
        "batched and queued: {most_running} / {most_waiting}"
    );
    for (id, request) in &requests {
        let adapter = request.adapter.as_ref().map(|n| store.acquire(n).unwrap());
        let alone = pollster::block_on(generate(
            &model,
            adapter.as_ref(),
            &request.prompt,
            &request.params,
            |_| true,
        ))
        .unwrap();
        let (tokens, reason) = &out[id];
        assert_eq!(
            tokens, &alone.tokens,
            "request {id} ({:?})",
            request.adapter
        );
        assert_eq!(reason.as_ref(), Some(&alone.stop), "request {id}");
    }
    let m = engine.metrics();
    assert_eq!(
        m.kv_blocks_used, 0,
        "every finished request gave its blocks back"
    );
    assert_eq!(
        m.tokens as usize,
        out.values().map(|(t, _)| t.len()).sum::<usize>()
    );
}

#[test]
fn a_cancelled_request_frees_its_blocks_and_the_rest_finish() {
    let model = model("llama-gqa");
    let store = Arc::new(AdapterStore::new(Arc::clone(&model), ROOMY));
    store
        .register("a", random_adapter(&model, 1), None)
        .unwrap();
    let mut engine = Engine::new(Arc::clone(&store), config(32, &model)).unwrap();
    let params = SamplingParams::greedy(20);
    let long = engine
        .submit(Request {
            adapter: Some("a".into()),
            prompt: vec![5, 6, 7, 8, 9],
            params: params.clone(),
        })
        .unwrap();
    let other = engine
        .submit(Request {
            adapter: None,
            prompt: vec![11, 12],
            params,
        })
        .unwrap();
    let mut used_before_cancel = 0;
    let out = drain(&mut engine, |e, step| {
        if step == 2 {
            used_before_cancel = e.metrics().kv_blocks_used;
            assert!(e.cancel(long), "the running request is cancelled");
            assert!(
                e.metrics().kv_blocks_used < used_before_cancel,
                "its blocks came back"
            );
        }
    });
    assert_eq!(out[&long].0.len(), 3, "three steps ran before the cancel");
    assert_eq!(out[&long].1, None, "a cancelled request does not finish");
    assert_eq!(out[&other].0.len(), 20);
    assert_eq!(engine.metrics().kv_blocks_used, 0);
    assert!(!engine.cancel(long), "already gone");
}

#[test]
fn bad_requests_are_refused_at_submit_and_the_queue_is_bounded() {
    let model = model("llama-gqa");
    let store = Arc::new(AdapterStore::new(Arc::clone(&model), ROOMY));
    let mut cfg = config(8, &model);
    cfg.max_queue = 2;
    let mut engine = Engine::new(store, cfg).unwrap();
    let request = |adapter: Option<&str>, prompt: Vec<u32>| Request {
        adapter: adapter.map(str::to_owned),
        prompt,
        params: SamplingParams::greedy(4),
    };
    assert!(matches!(
        engine.submit(request(None, vec![])),
        Err(EngineError::EmptyPrompt)
    ));
    assert!(matches!(
        engine.submit(request(None, vec![384])),
        Err(EngineError::BadToken(384, 384))
    ));
    assert!(matches!(
        engine.submit(request(Some("nope"), vec![1])),
        Err(EngineError::UnknownAdapter(_))
    ));
    assert!(matches!(
        engine.submit(request(None, vec![1; 257])),
        Err(EngineError::OverContext(257, 256))
    ));
    // 8 blocks of 4 positions: a 40-token prompt can never be admitted.
    assert!(matches!(
        engine.submit(request(None, vec![1; 40])),
        Err(EngineError::OverKvBudget(11, 8))
    ));
    engine.submit(request(None, vec![1])).unwrap();
    engine.submit(request(None, vec![2])).unwrap();
    assert!(matches!(
        engine.submit(request(None, vec![3])),
        Err(EngineError::QueueFull(2))
    ));
}

#[test]
fn a_full_kv_cache_stops_the_youngest_request_and_the_engine_goes_on() {
    let model = model("llama-gqa");
    let store = Arc::new(AdapterStore::new(Arc::clone(&model), ROOMY));
    // 10 blocks of 4 positions: each request alone fits (≤ 7 blocks), both together do not.
    let mut engine = Engine::new(Arc::clone(&store), config(10, &model)).unwrap();
    let params = SamplingParams::greedy(20);
    let request = |prompt: Vec<u32>| Request {
        adapter: None,
        prompt,
        params: params.clone(),
    };
    let old = engine.submit(request(vec![5, 6, 7, 8, 9])).unwrap();
    let young = engine.submit(request(vec![11, 12])).unwrap();
    let mut out: BTreeMap<RequestId, (Vec<u32>, Option<StopReason>)> = BTreeMap::new();
    let mut failed = Vec::new();
    for _ in 0..100 {
        if engine.is_idle() {
            break;
        }
        for event in pollster::block_on(engine.step()).unwrap() {
            match event {
                Event::Token { id, token } => out.entry(id).or_default().0.push(token),
                Event::Finished { id, reason } => out.entry(id).or_default().1 = Some(reason),
                Event::Failed { id, error } => failed.push((id, error)),
            }
        }
    }
    assert!(engine.is_idle(), "every request ended");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, young);
    assert!(failed[0].1.contains("KV cache"), "{}", failed[0].1);
    let alone =
        pollster::block_on(generate(&model, None, &[5, 6, 7, 8, 9], &params, |_| true)).unwrap();
    assert_eq!(out[&old].0, alone.tokens, "the older request is untouched");
    assert_eq!(out[&old].1, Some(StopReason::MaxTokens));
    assert_eq!(engine.metrics().kv_blocks_used, 0);

    // The engine still serves.
    let next = engine.submit(request(vec![11, 12])).unwrap();
    let out = drain(&mut engine, |_, _| {});
    assert_eq!(out[&next].0.len(), 20);
}
