//! `cargo xtask bench serve`'s measurements: decode throughput of the continuous-batching engine
//! (tributary-serve) on the bench checkpoint (see bench-model `--make`), for
//! - 32 requests over 32 distinct rank-16 adapters in one batch,
//! - the same 32 requests served one adapter at a time (each request alone),
//! - 32 requests on the base model in one batch,
//!
//! and the cold load time of a rank-16 adapter (read, hash, parse, upload). Prints one JSON object.

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
    }))
}
