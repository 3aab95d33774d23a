//! The adapter store on the CPU backend, with the model fixtures (tributary-model) and random
//! PEFT adapters written as real safetensors bytes.

use std::sync::Arc;

use tributary_model::{SamplingParams, generate};
use tributary_serve::{AdapterSource, AdapterStore, Budgets, StoreError, content_hash};

use crate::common::*;

#[test]
fn an_adapter_loads_on_first_use_and_generates_transformers_tokens() {
    let model = model("llama-gqa");
    let store = AdapterStore::new(Arc::clone(&model), ROOMY);
    let dir = fixture("llama-gqa/adapters/attn-r8");
    let hash = content_hash(
        &std::fs::read(dir.join("adapter_config.json")).unwrap(),
        &std::fs::read(dir.join("adapter_model.safetensors")).unwrap(),
    );
    store
        .register("attn-r8", AdapterSource::Dir(dir), Some(hash))
        .unwrap();
    assert_eq!(store.metrics().misses, 0, "registering loads nothing");
    assert_eq!(store.metrics().device_bytes, 0);

    let adapter = store.acquire("attn-r8").unwrap();
    let m = store.metrics();
    assert_eq!((m.misses, m.hits), (1, 0));
    assert!(m.device_bytes > 0 && m.host_bytes > 0);

    // The reference file holds Hugging Face transformers + PEFT's greedy tokens for this adapter.
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("llama-gqa/reference.json")).unwrap())
            .unwrap();
    let case = &reference["adapters"]["attn-r8"][0];
    let prompt: Vec<u32> = serde_json::from_value(case["prompt_ids"].clone()).unwrap();
    let want: Vec<u32> = serde_json::from_value(case["greedy"].clone()).unwrap();
    let params = SamplingParams::greedy(want.len());
    let got =
        pollster::block_on(generate(&model, Some(&adapter), &prompt, &params, |_| true)).unwrap();
    assert_eq!(got.tokens, want);

    store.acquire("attn-r8").unwrap();
    assert_eq!(store.metrics().hits, 1);
}

#[test]
fn a_wrong_content_hash_is_refused_and_nothing_stays_resident() {
    let model = model("llama-gqa");
    let store = AdapterStore::new(Arc::clone(&model), ROOMY);
    let dir = fixture("llama-gqa/adapters/attn-r8");
    store
        .register("tampered", AdapterSource::Dir(dir), Some([7; 32]))
        .unwrap();
    let err = store.acquire("tampered").unwrap_err();
    assert!(matches!(err, StoreError::Hash { .. }), "{err}");
    let m = store.metrics();
    assert_eq!((m.device_bytes, m.host_bytes, m.misses), (0, 0, 0));
    assert_eq!(model.adapter_bytes(), 0);
}

#[test]
fn ten_adapters_rotate_through_a_budget_of_two() {
    let model = model("llama-gqa");
    let one = one_adapter(&model);

    let budgets = Budgets {
        device_bytes: 2 * one.device_bytes,
        host_bytes: 3 * one.host_bytes,
    };
    let store = AdapterStore::new(Arc::clone(&model), budgets);
    for k in 0..10 {
        store
            .register(&format!("a{k}"), random_adapter(&model, k), None)
            .unwrap();
    }
    let mut first = Vec::new();
    for round in 0..3 {
        for k in 0..10 {
            let adapter = store.acquire(&format!("a{k}")).unwrap();
            let m = store.metrics();
            assert!(
                m.device_bytes <= budgets.device_bytes,
                "device tier over budget: {m:?}"
            );
            assert!(
                m.host_bytes <= budgets.host_bytes,
                "host tier over budget: {m:?}"
            );
            let out = logits(&model, &adapter);
            if round == 0 {
                first.push(out);
            } else {
                // Reloaded after eviction, the adapter computes exactly what it did first.
                assert!(out == first[k as usize], "a{k} changed after a reload");
            }
        }
    }
    let m = store.metrics();
    assert_eq!(
        m.misses, 30,
        "the host tier of 3 cannot keep a rotation of 10: {m:?}"
    );
    assert_eq!(m.device_evictions, 28);
    assert!(
        first[0] != first[1],
        "different adapters give different logits"
    );
    // Dropping every handle leaves only the store's two residents in the pool.
    assert_eq!(model.adapter_bytes(), m.device_bytes);
}

#[test]
fn pinned_adapters_are_not_evicted_and_the_host_tier_saves_reloads() {
    let model = model("llama-gqa");
    let one = one_adapter(&model);

    let budgets = Budgets {
        device_bytes: 2 * one.device_bytes,
        host_bytes: 10 * one.host_bytes,
    };
    let store = AdapterStore::new(Arc::clone(&model), budgets);
    for k in 0..4 {
        store
            .register(&format!("a{k}"), random_adapter(&model, k), None)
            .unwrap();
    }
    store.pin("a0", true).unwrap();
    store.acquire("a0").unwrap();
    for _ in 0..3 {
        for k in 1..4 {
            store.acquire(&format!("a{k}")).unwrap();
        }
    }
    store.acquire("a0").unwrap();
    let m = store.metrics();
    assert_eq!(m.hits, 1, "the pinned adapter stayed on the device: {m:?}");
    // 4 loads from source; every later device miss came from the host tier.
    assert_eq!((m.misses, m.host_hits), (4, 6), "{m:?}");
    // With a0 pinned and a budget of two, a third adapter can only evict the other.
    store.pin("a1", true).unwrap();
    store.acquire("a1").unwrap();
    let err = store.acquire("a2").unwrap_err();
    assert!(
        matches!(err, StoreError::Pinned { tier: "device", .. }),
        "{err}"
    );
}

#[test]
fn bad_registrations_and_adapters_for_another_base_are_typed_errors() {
    let qwen = model("qwen2-bias");
    let store = AdapterStore::new(Arc::clone(&qwen), ROOMY);
    assert!(matches!(store.acquire("nope"), Err(StoreError::Unknown(_))));
    let dir = fixture("llama-gqa/adapters/attn-r8");
    for bad in ["", "base:adapter", "tab\there"] {
        let err = store
            .register(bad, AdapterSource::Dir(dir.clone()), None)
            .unwrap_err();
        assert!(matches!(err, StoreError::BadName(..)), "{bad:?}: {err}");
    }
    store
        .register("llama-adapter", AdapterSource::Dir(dir.clone()), None)
        .unwrap();
    assert!(matches!(
        store.register("llama-adapter", AdapterSource::Dir(dir), None),
        Err(StoreError::Duplicate(_))
    ));
    let err = store.acquire("llama-adapter").unwrap_err();
    let StoreError::Load { source, .. } = &err else {
        panic!("expected a load error, got {err}");
    };
    assert!(
        source
            .to_string()
            .contains("base_model.model.model.layers."),
        "the error names the tensor: {source}"
    );
    assert_eq!(store.metrics().device_bytes, 0);

    // An adapter larger than the whole budget.
    let small = AdapterStore::new(
        qwen,
        Budgets {
            device_bytes: 1024,
            host_bytes: 1 << 30,
        },
    );
    small
        .register(
            "big",
            AdapterSource::Dir(fixture("qwen2-bias/adapters/all-r6")),
            None,
        )
        .unwrap();
    let err = small.acquire("big").unwrap_err();
    assert!(
        matches!(err, StoreError::OverBudget { tier: "device", .. }),
        "{err}"
    );
}

#[test]
fn an_unregistered_adapter_frees_its_bytes_but_a_held_handle_still_generates() {
    let model = model("llama-gqa");
    let store = AdapterStore::new(Arc::clone(&model), ROOMY);
    store
        .register("a", random_adapter(&model, 1), None)
        .unwrap();
    let held = store.acquire("a").unwrap();
    let prompt = [1, 2, 3];
    let params = SamplingParams::greedy(4);
    let before =
        pollster::block_on(generate(&model, Some(&held), &prompt, &params, |_| true)).unwrap();

    store.unregister("a").unwrap();
    let m = store.metrics();
    assert_eq!((m.registered, m.device_bytes, m.host_bytes), (0, 0, 0));
    assert!(!store.contains("a"));
    assert!(matches!(store.acquire("a"), Err(StoreError::Unknown(_))));
    assert!(matches!(store.unregister("a"), Err(StoreError::Unknown(_))));
    // The in-flight request's pages are its own until it lets go of them.
    let after =
        pollster::block_on(generate(&model, Some(&held), &prompt, &params, |_| true)).unwrap();
    assert_eq!(before.tokens, after.tokens);
    drop(held);
    assert_eq!(
        model.adapter_bytes(),
        0,
        "the pool frees the pages with the last handle"
    );

    // The name can be used again.
    store
        .register("a", random_adapter(&model, 2), None)
        .unwrap();
    store.acquire("a").unwrap();
}
