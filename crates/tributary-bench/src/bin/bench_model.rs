//! Prefill and decode speed of tributary-model (NdArray on the CPU, Wgpu) and of
//! candle-transformers' Llama on the CPU, on one random checkpoint sized like a small real model.
//!
//! Each engine runs in its own process (`--engine`), so the peak memory it reports is its own;
//! `cargo xtask bench model` runs them in turn and prints the ratios.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::{Int, Tensor, TensorData};
use clap::{Parser, ValueEnum};
use tributary_model::{Adapters, Model, SgmvBackend};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Engine {
    OursCpu,
    OursWgpu,
    Candle,
}

#[derive(Debug, Parser)]
struct Args {
    /// Write the random checkpoint into --dir and exit.
    #[arg(long)]
    make: bool,
    #[arg(long, value_enum)]
    engine: Option<Engine>,
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value_t = 128)]
    prefill: usize,
    #[arg(long, default_value_t = 64)]
    decode: usize,
    #[arg(long, default_value_t = 3)]
    reps: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.make {
        return tributary_bench::checkpoint::write(&args.dir, &tributary_bench::checkpoint::SMALL);
    }
    let engine = args.engine.context("--engine or --make")?;
    let prompt: Vec<u32> = (0..args.prefill)
        .map(|i| ((i * 7919) % tributary_bench::checkpoint::SMALL.vocab) as u32)
        .collect();
    let mut prefill_s = Vec::new();
    let mut decode_s = Vec::new();
    for _ in 0..args.reps {
        let (p, d) = match engine {
            Engine::OursCpu => ours::<burn::backend::NdArray<f32>>(
                &args.dir,
                &prompt,
                args.decode,
                &Default::default(),
            )?,
            Engine::OursWgpu => ours::<burn::backend::Wgpu>(
                &args.dir,
                &prompt,
                args.decode,
                &burn::backend::wgpu::WgpuDevice::default(),
            )?,
            Engine::Candle => candle(&args.dir, &prompt, args.decode)?,
        };
        prefill_s.push(p);
        decode_s.push(d);
    }
    let out = serde_json::json!({
        "engine": format!("{engine:?}"),
        "prefill_tokens_per_s": args.prefill as f64 / median(&mut prefill_s),
        "decode_tokens_per_s": args.decode as f64 / median(&mut decode_s),
        "peak_rss_mib": peak_rss_mib(),
    });
    println!("{out}");
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// VmHWM: the process's peak resident memory.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// (prefill seconds, decode seconds) for one run, greedy, reading logits back every step as
/// generation does.
fn ours<B: SgmvBackend>(
    dir: &Path,
    prompt: &[u32],
    decode: usize,
    device: &B::Device,
) -> Result<(f64, f64)> {
    let model = Model::<B>::load(dir, device)?;
    let ids = |t: &[u32]| {
        let v: Vec<i32> = t.iter().map(|&x| x as i32).collect();
        Tensor::<B, 2, Int>::from_data(TensorData::new(v, [1, t.len()]), device)
    };
    let argmax = |logits: Tensor<B, 2>| -> Result<u32> {
        let v = logits
            .into_data()
            .to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(v.iter()
            .enumerate()
            .fold(
                (0, f32::MIN),
                |best, (i, &x)| if x > best.1 { (i, x) } else { best },
            )
            .0 as u32)
    };
    // Warm-up so that one-time costs (kernel compilation on wgpu) are not timed.
    let mut cache = model.new_cache();
    argmax(model.forward_last(ids(&prompt[..8]), &mut cache, Adapters::None)?)?;

    let mut cache = model.new_cache();
    let t = Instant::now();
    let mut next = argmax(model.forward_last(ids(prompt), &mut cache, Adapters::None)?)?;
    let prefill = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..decode {
        next = argmax(model.forward_last(ids(&[next]), &mut cache, Adapters::None)?)?;
    }
    Ok((prefill, t.elapsed().as_secs_f64()))
}

fn candle(dir: &Path, prompt: &[u32], decode: usize) -> Result<(f64, f64)> {
    use candle_core::{DType, Device, Tensor as CTensor};
    use candle_transformers::models::llama::{Cache, Llama, LlamaConfig};

    let device = Device::Cpu;
    let config: LlamaConfig = serde_json::from_slice(&std::fs::read(dir.join("config.json"))?)?;
    let config = config.into_config(false);
    let weights = std::fs::read(dir.join("model.safetensors"))?;
    let vb = candle_nn::VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)?;
    let model = Llama::load(vb, &config)?;
    let argmax =
        |logits: CTensor| -> Result<u32> { Ok(logits.squeeze(0)?.argmax(0)?.to_scalar::<u32>()?) };

    let mut cache = Cache::new(true, DType::F32, &config, &device)?;
    argmax(model.forward(
        &CTensor::new(&prompt[..8], &device)?.unsqueeze(0)?,
        0,
        &mut cache,
    )?)?;

    let mut cache = Cache::new(true, DType::F32, &config, &device)?;
    let t = Instant::now();
    let input = CTensor::new(prompt, &device)?.unsqueeze(0)?;
    let mut next = argmax(model.forward(&input, 0, &mut cache)?)?;
    let prefill = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for step in 0..decode {
        let input = CTensor::new(&[next], &device)?.unsqueeze(0)?;
        next = argmax(model.forward(&input, prompt.len() + step, &mut cache)?)?;
    }
    Ok((prefill, t.elapsed().as_secs_f64()))
}
