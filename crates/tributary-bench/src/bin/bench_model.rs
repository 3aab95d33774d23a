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
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
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

const VOCAB: usize = 8192;
const HIDDEN: usize = 512;
const INTERMEDIATE: usize = 1536;
const LAYERS: usize = 6;
const HEADS: usize = 8;
const KV_HEADS: usize = 4;

fn main() -> Result<()> {
    let args = Args::parse();
    if args.make {
        return make_checkpoint(&args.dir);
    }
    let engine = args.engine.context("--engine or --make")?;
    let prompt: Vec<u32> = (0..args.prefill)
        .map(|i| ((i * 7919) % VOCAB) as u32)
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

/// A Llama checkpoint with GQA and untied embeddings, random weights from a fixed seed, written
/// in the Hugging Face layout both engines read (rope_theta at the top level, which candle needs).
fn make_checkpoint(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let config = serde_json::json!({
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": false,
        "hidden_act": "silu",
        "bos_token_id": 0,
        "eos_token_id": 0,
    });
    std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
    let head_dim = HIDDEN / HEADS;
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![VOCAB, HIDDEN]),
        ("lm_head.weight".into(), vec![VOCAB, HIDDEN]),
        ("model.norm.weight".into(), vec![HIDDEN]),
    ];
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        shapes.extend([
            (format!("{p}.input_layernorm.weight"), vec![HIDDEN]),
            (format!("{p}.post_attention_layernorm.weight"), vec![HIDDEN]),
            (
                format!("{p}.self_attn.q_proj.weight"),
                vec![HEADS * head_dim, HIDDEN],
            ),
            (
                format!("{p}.self_attn.k_proj.weight"),
                vec![KV_HEADS * head_dim, HIDDEN],
            ),
            (
                format!("{p}.self_attn.v_proj.weight"),
                vec![KV_HEADS * head_dim, HIDDEN],
            ),
            (
                format!("{p}.self_attn.o_proj.weight"),
                vec![HIDDEN, HEADS * head_dim],
            ),
            (
                format!("{p}.mlp.gate_proj.weight"),
                vec![INTERMEDIATE, HIDDEN],
            ),
            (
                format!("{p}.mlp.up_proj.weight"),
                vec![INTERMEDIATE, HIDDEN],
            ),
            (
                format!("{p}.mlp.down_proj.weight"),
                vec![HIDDEN, INTERMEDIATE],
            ),
        ]);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(512);
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let norm = name.ends_with("norm.weight");
            let bytes = (0..n)
                .flat_map(|_| {
                    let v: f32 = if norm {
                        1.0
                    } else {
                        rng.random_range(-0.05..0.05)
                    };
                    v.to_le_bytes()
                })
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views = data
        .iter()
        .map(|(name, shape, bytes)| {
            Ok((
                name.as_str(),
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    shape.clone(),
                    bytes,
                )?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors"))?;
    Ok(())
}
