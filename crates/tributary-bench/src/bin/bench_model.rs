//! Prefill and decode speed of tributary-model (NdArray on the CPU, Wgpu) and of
//! candle-transformers on the CPU, on one model: by default the embedded SmolLM2-135M-Instruct
//! Q4_1 GGUF (candle's `quantized_llama` on the same file), or a Hugging Face folder (candle's
//! f32 Llama).
//!
//! Each engine runs in its own process (`--engine`), so the peak memory it reports is its own,
//! and the thread count is the process's rayon pool (`RAYON_NUM_THREADS`, which candle's CPU
//! kernels read too). `cargo xtask bench model` runs them in turn, with llama.cpp beside them,
//! and prints the ratios.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::tensor::{Int, Tensor, TensorData};
use clap::{Parser, ValueEnum};
use tributary_model::{Adapters, Model, ModelConfig, ModelSource, QuantBackend, SgmvBackend};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Engine {
    OursCpu,
    OursWgpu,
    Candle,
}

#[derive(Debug, Parser)]
struct Args {
    /// Write the random 6-layer checkpoint (the attribution bench's larger model) into --dir
    /// and exit.
    #[arg(long)]
    make: bool,
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long, value_enum)]
    engine: Option<Engine>,
    /// A GGUF file or a Hugging Face folder; the installed default model when absent.
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long, default_value_t = 128)]
    prefill: usize,
    #[arg(long, default_value_t = 64)]
    decode: usize,
    #[arg(long, default_value_t = 3)]
    reps: usize,
}

/// Seconds of one run: the prompt in one pass, then greedy steps one token at a time, reading
/// the logits back every step as generation does.
struct Timing {
    prefill: f64,
    decode: f64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.make {
        let dir = args.dir.as_deref().context("--make needs --dir")?;
        return tributary_bench::checkpoint::write(dir, &tributary_bench::checkpoint::SMALL);
    }
    let engine = args.engine.context("--engine or --make")?;
    let path = match &args.model {
        Some(path) => path.clone(),
        None => tributary_models::DEFAULT.locate()?,
    };
    let source = ModelSource::open(&path)?;
    let mut prefill_s = Vec::new();
    let mut decode_s = Vec::new();
    for _ in 0..args.reps {
        let t = match engine {
            Engine::OursCpu => {
                ours::<burn::backend::NdArray<f32>>(&source, &args, &Default::default())?
            }
            Engine::OursWgpu => ours::<burn::backend::Wgpu>(
                &source,
                &args,
                &burn::backend::wgpu::WgpuDevice::default(),
            )?,
            Engine::Candle => candle(&source, &args)?,
        };
        prefill_s.push(t.prefill);
        decode_s.push(t.decode);
    }
    let out = serde_json::json!({
        "engine": format!("{engine:?}"),
        "threads": rayon_threads(),
        "prefill_tokens_per_s": args.prefill as f64 / median(&mut prefill_s),
        "decode_tokens_per_s": args.decode as f64 / median(&mut decode_s),
        "peak_rss_mib": peak_rss_mib(),
    });
    println!("{out}");
    Ok(())
}

/// The prompt: spread over the vocabulary, the same ids for every engine.
fn prompt(len: usize, vocab: usize) -> Vec<u32> {
    (0..len).map(|i| ((i * 7919 + 17) % vocab) as u32).collect()
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
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

fn ours<B: SgmvBackend + QuantBackend>(
    source: &ModelSource,
    args: &Args,
    device: &B::Device,
) -> Result<Timing> {
    let model: Model<B> = source.load(device)?;
    let prompt = prompt(args.prefill, model.config.vocab_size);
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
    let mut next = argmax(model.forward_last(ids(&prompt[..8]), &mut cache, Adapters::None)?)?;
    for _ in 0..2 {
        next = argmax(model.forward_last(ids(&[next]), &mut cache, Adapters::None)?)?;
    }

    let mut cache = model.new_cache();
    let t = Instant::now();
    let mut next = argmax(model.forward_last(ids(&prompt), &mut cache, Adapters::None)?)?;
    let prefill = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..args.decode {
        next = argmax(model.forward_last(ids(&[next]), &mut cache, Adapters::None)?)?;
    }
    Ok(Timing {
        prefill,
        decode: t.elapsed().as_secs_f64(),
    })
}

fn candle(source: &ModelSource, args: &Args) -> Result<Timing> {
    use candle_core::{Device, Tensor as CTensor};

    let device = Device::Cpu;
    let argmax =
        |logits: CTensor| -> Result<u32> { Ok(logits.squeeze(0)?.argmax(0)?.to_scalar::<u32>()?) };
    // Both of candle's Llamas as one step function: (tokens, position) → last logits.
    let mut model = candle_model(source, &device)?;
    let prompt = prompt(args.prefill, model.vocab);

    let mut next = argmax((model.step)(&CTensor::new(&prompt[..8], &device)?, 0)?)?;
    for i in 0..2 {
        next = argmax((model.step)(&CTensor::new(&[next], &device)?, 8 + i)?)?;
    }

    let mut model = candle_model(source, &device)?;
    let t = Instant::now();
    let mut next = argmax((model.step)(&CTensor::new(prompt.as_slice(), &device)?, 0)?)?;
    let prefill = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for step in 0..args.decode {
        let input = CTensor::new(&[next], &device)?;
        next = argmax((model.step)(&input, prompt.len() + step)?)?;
    }
    Ok(Timing {
        prefill,
        decode: t.elapsed().as_secs_f64(),
    })
}

type CandleStep = Box<dyn FnMut(&candle_core::Tensor, usize) -> Result<candle_core::Tensor>>;

struct CandleModel {
    vocab: usize,
    step: CandleStep,
}

/// A GGUF through candle's `quantized_llama` (weights stay quantized; candle quantizes the
/// activations to 8 bits inside its dot products, as llama.cpp does), a folder through its f32
/// `Llama`. A fresh model is a fresh KV cache.
fn candle_model(source: &ModelSource, device: &candle_core::Device) -> Result<CandleModel> {
    use candle_core::DType;
    use candle_core::quantized::gguf_file;

    let path = source.path();
    let gguf = match source {
        ModelSource::Gguf(gguf) => gguf,
        ModelSource::Dir(path) => {
            use candle_transformers::models::llama::{Cache, Llama, LlamaConfig};
            let config: LlamaConfig =
                serde_json::from_slice(&std::fs::read(path.join("config.json"))?)?;
            let config = config.into_config(false);
            let weights = std::fs::read(path.join("model.safetensors"))?;
            let vb = candle_nn::VarBuilder::from_buffered_safetensors(weights, DType::F32, device)?;
            let model = Llama::load(vb, &config)?;
            let mut cache = Cache::new(true, DType::F32, &config, device)?;
            return Ok(CandleModel {
                vocab: config.vocab_size,
                step: Box::new(move |ids, pos| {
                    Ok(model.forward(&ids.unsqueeze(0)?, pos, &mut cache)?)
                }),
            });
        }
    };
    let vocab = ModelConfig::from_gguf(gguf)?.vocab_size;
    let mut file =
        std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let content = gguf_file::Content::read(&mut file)?;
    let mut model = candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
        content, &mut file, device,
    )?;
    Ok(CandleModel {
        vocab,
        step: Box::new(move |ids, pos| Ok(model.forward(&ids.unsqueeze(0)?, pos)?)),
    })
}
