//! `cargo xtask bench serve`'s measurements: decode throughput of the continuous-batching engine
//! (tributary-serve) on the bench checkpoint (see bench-model `--make`), for
//! - 32 requests over 32 distinct rank-16 adapters in one batch,
//! - the same 32 requests served one adapter at a time (each request alone),
//! - 32 requests on the base model in one batch,
//!
//! and the cold load time of a rank-16 adapter (read, hash, parse, upload); time to first token
//! with 8 and 32 closed-loop clients (each sends its next request when the last one finishes, each
//! on its own adapter); and throughput as registered adapters grow 1 → 100 → 1,000 under a fixed
//! device budget (S-LoRA's curve: requests pick adapters uniformly, so with many adapters most
//! requests load theirs first). Prints one JSON object.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use serde_json::json;
use tributary_model::{AdapterWeights, Model, SamplingParams, SgmvBackend, Target};
use tributary_serve::{
    AdapterSource, AdapterStore, Budgets, Engine, EngineConfig, Event, Request, content_hash,
};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Device {
    Cpu,
    Wgpu,
}

#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, value_enum, default_value = "cpu")]
    device: Device,
    #[arg(long, default_value_t = 32)]
    requests: usize,
    #[arg(long, default_value_t = 16)]
    new_tokens: usize,
    #[arg(long, default_value_t = 16)]
    prompt_tokens: usize,
    /// Requests per run of the adapter-count curve.
    #[arg(long, default_value_t = 64)]
    curve_requests: usize,
}

const RANK: usize = 16;

fn main() -> Result<()> {
    let args = Args::parse();
    let out = match args.device {
        Device::Cpu => run::<burn::backend::NdArray>(&args, &Default::default())?,
        Device::Wgpu => {
            run::<burn::backend::Wgpu>(&args, &burn::backend::wgpu::WgpuDevice::default())?
        }
    };
    println!("{out}");
    Ok(())
}

fn run<B: SgmvBackend>(args: &Args, device: &B::Device) -> Result<serde_json::Value> {
    let model = Arc::new(Model::<B>::load(&args.dir, device).with_context(|| {
        format!(
            "loading {} (make it with bench-model --make)",
            args.dir.display()
        )
    })?);
    let budgets = Budgets {
        device_bytes: 1 << 30,
        host_bytes: 1 << 30,
    };
    let store = Arc::new(AdapterStore::new(Arc::clone(&model), budgets));
    for k in 0..args.requests {
        let targets = [Target::Q, Target::K, Target::V, Target::O];
        let weights =
            AdapterWeights::random(&model.config, "", (RANK, 32.0), &targets, 0.02, k as u64);
        let (config, safetensors) = weights.to_peft_bytes();
        let hash = content_hash(&config, &safetensors);
        let source = AdapterSource::Bytes {
            config: config.into(),
            safetensors: safetensors.into(),
        };
        store.register(&format!("a{k}"), source, Some(hash))?;
    }
    // Cold loads: every adapter's first acquire.
    let mut load_ms: Vec<f64> = (0..args.requests)
        .map(|k| {
            let start = Instant::now();
            store
                .acquire(&format!("a{k}"))
                .map(|_| start.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_, _>>()?;
    load_ms.sort_by(f64::total_cmp);

    let request = |k: usize, adapter: bool| Request {
        adapter: adapter.then(|| format!("a{k}")),
        prompt: (0..args.prompt_tokens)
            .map(|i| ((k * 131 + i * 7919) % model.config.vocab_size) as u32)
            .collect(),
        params: SamplingParams::greedy(args.new_tokens),
    };
    let config = EngineConfig {
        max_queue: args.requests,
        max_batch: args.requests,
        block_tokens: 16,
        kv_budget_bytes: 512 << 20,
    };
    // Decode tokens per second: all generated tokens after each request's first, over the time
    // of the steps that produced them.
    let serve = |requests: Vec<Request>, batch: usize| -> Result<f64> {
        let mut engine = Engine::new(
            Arc::clone(&store),
            EngineConfig {
                max_batch: batch,
                ..config
            },
        )?;
        for r in requests {
            engine.submit(r)?;
        }
        let mut decode_tokens = 0usize;
        let mut decode_s = 0.0;
        let mut started = std::collections::HashSet::new();
        while !engine.is_idle() {
            let start = Instant::now();
            let events = pollster::block_on(engine.step())?;
            let took = start.elapsed().as_secs_f64();
            let mut decoded = 0;
            for e in &events {
                match e {
                    Event::Token { id, .. } if !started.insert(*id) => decoded += 1,
                    Event::Failed { error, .. } => anyhow::bail!("request failed: {error}"),
                    _ => {}
                }
            }
            // Steps that only decode count; prefill steps are not decode throughput.
            if decoded
                == events
                    .iter()
                    .filter(|e| matches!(e, Event::Token { .. }))
                    .count()
            {
                decode_tokens += decoded;
                decode_s += took;
            }
        }
        Ok(decode_tokens as f64 / decode_s)
    };
    let n = args.requests;
    let ttft = |clients: usize| -> Result<(f64, f64)> {
        let names: Vec<String> = (0..clients).map(|k| format!("a{}", k % n)).collect();
        let run = closed_loop(&store, config, clients, clients * 3, |c, i| Request {
            adapter: Some(names[c].clone()),
            ..request(c * 7 + i, false)
        })?;
        Ok((run.ttft_ms(0.5), run.ttft_ms(0.99)))
    };
    let (ttft8_p50, ttft8_p99) = ttft(8)?;
    let (ttft32_p50, ttft32_p99) = ttft(32.min(n))?;
    let mut curve = Vec::new();
    for adapters in [1usize, 100, 1000] {
        curve.push((adapters, adapter_curve(&model, args, config, adapters)?));
    }
    let distinct = serve((0..n).map(|k| request(k, true)).collect(), n)?;
    let one_at_a_time = serve((0..n).map(|k| request(k, true)).collect(), 1)?;
    let base = serve((0..n).map(|k| request(k, false)).collect(), n)?;
    Ok(json!({
        "device": format!("{:?}", args.device),
        "requests": n,
        "new_tokens": args.new_tokens,
        "decode_tok_s_distinct_batched": distinct,
        "decode_tok_s_one_at_a_time": one_at_a_time,
        "decode_tok_s_base_batched": base,
        "cold_load_ms_p50": load_ms[load_ms.len() / 2],
        "cold_load_ms_p99": load_ms[(load_ms.len() * 99 / 100).min(load_ms.len() - 1)],
        "ttft_ms_8_clients": [ttft8_p50, ttft8_p99],
        "ttft_ms_32_clients": [ttft32_p50, ttft32_p99],
        "curve": curve.iter().map(|(a, tok_s)| json!({"adapters": a, "tok_s": tok_s})).collect::<Vec<_>>(),
    }))
}

/// What one closed-loop run measured.
#[derive(Debug)]
struct Run {
    /// Submission to first token, per request, sorted.
    ttft_ms: Vec<f64>,
    tokens: usize,
    seconds: f64,
}

impl Run {
    fn ttft_ms(&self, q: f64) -> f64 {
        let i = ((self.ttft_ms.len() as f64 * q) as usize).min(self.ttft_ms.len() - 1);
        self.ttft_ms[i]
    }
}

/// `clients` clients, each sending its next request (`make(client, index)`) as soon as its last
/// one finishes, until `total` requests have been served.
fn closed_loop<B: SgmvBackend>(
    store: &Arc<AdapterStore<B>>,
    config: EngineConfig,
    clients: usize,
    total: usize,
    mut make: impl FnMut(usize, usize) -> Request,
) -> Result<Run> {
    let mut engine = Engine::new(
        Arc::clone(store),
        EngineConfig {
            max_batch: clients,
            max_queue: clients,
            ..config
        },
    )?;
    let start = Instant::now();
    let mut owner = std::collections::HashMap::new(); // request id -> (client, submitted at)
    let mut sent = 0;
    for c in 0..clients.min(total) {
        let id = engine.submit(make(c, 0))?;
        owner.insert(id, (c, Instant::now(), false));
        sent += 1;
    }
    let mut per_client = vec![1usize; clients];
    let (mut ttft_ms, mut tokens) = (Vec::new(), 0);
    while !engine.is_idle() {
        let events = pollster::block_on(engine.step())?;
        let now = Instant::now();
        for e in events {
            match e {
                Event::Token { id, .. } => {
                    tokens += 1;
                    let (_, at, seen) = owner.get_mut(&id).expect("submitted here");
                    if !*seen {
                        *seen = true;
                        ttft_ms.push((now - *at).as_secs_f64() * 1e3);
                    }
                }
                Event::Finished { id, .. } => {
                    let (c, _, _) = owner.remove(&id).expect("submitted here");
                    if sent < total {
                        let id = engine.submit(make(c, per_client[c]))?;
                        per_client[c] += 1;
                        owner.insert(id, (c, Instant::now(), false));
                        sent += 1;
                    }
                }
                Event::Failed { error, .. } => anyhow::bail!("request failed: {error}"),
            }
        }
    }
    ttft_ms.sort_by(f64::total_cmp);
    Ok(Run {
        ttft_ms,
        tokens,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Tokens per second (loads included) with `adapters` registered and a device budget that
/// holds 32 of them: 32 clients, each request on an adapter drawn uniformly.
fn adapter_curve<B: SgmvBackend>(
    model: &Arc<Model<B>>,
    args: &Args,
    config: EngineConfig,
    adapters: usize,
) -> Result<f64> {
    let targets = [Target::Q, Target::V];
    let make = |k: usize| {
        AdapterWeights::random(
            &model.config,
            "",
            (8, 16.0),
            &targets,
            0.02,
            10_000 + k as u64,
        )
    };
    let one = make(0);
    let bytes: u64 = one
        .pairs
        .iter()
        .map(|p| ((p.a.len() + p.b.len()) * size_of::<f32>()) as u64)
        .sum();
    // Pages round each row up, so allow a little over the weight bytes of 32.
    let budgets = Budgets {
        device_bytes: bytes * 40,
        host_bytes: bytes * 40,
    };
    let store = Arc::new(AdapterStore::new(Arc::clone(model), budgets));
    for k in 0..adapters {
        let (config, safetensors) = make(k).to_peft_bytes();
        let source = AdapterSource::Bytes {
            config: config.into(),
            safetensors: safetensors.into(),
        };
        store.register(&format!("c{k}"), source, None)?;
    }
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let vocab = model.config.vocab_size;
    let run = closed_loop(&store, config, 32, args.curve_requests, |c, i| {
        // xorshift: a fixed, uniform draw of adapters, the same for every run.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        Request {
            adapter: Some(format!("c{}", rng % adapters as u64)),
            prompt: (0..args.prompt_tokens)
                .map(|t| ((c * 131 + i * 17 + t * 7919) % vocab) as u32)
                .collect(),
            params: SamplingParams::greedy(args.new_tokens),
        }
    })?;
    Ok(run.tokens as f64 / run.seconds)
}
