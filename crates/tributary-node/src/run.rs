//! `tributary run`: load a model (and adapter), generate, print text or one JSON object.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use burn::backend::{NdArray, Wgpu};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use tributary_model::{
    AdapterWeights, ChatMessage, ModelSource, QuantBackend, SamplingParams, SgmvBackend, generate,
};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Device {
    /// burn's NdArray backend on the CPU.
    Cpu,
    /// burn's Wgpu backend (Vulkan, Metal or DX12; lavapipe where no GPU is present).
    Wgpu,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Hugging Face model folder (config.json, model.safetensors or shards, tokenizer.json) or
    /// a .gguf file. Default: the embedded model (SmolLM2-135M-Instruct, Q4_1), which
    /// `cargo xtask setup` installs.
    #[arg(long)]
    model: Option<PathBuf>,
    /// PEFT adapter folder (adapter_config.json, adapter_model.safetensors).
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Text to continue, as is.
    #[arg(long, required_unless_present = "chat")]
    prompt: Option<String>,
    /// A user message, rendered with the model's chat template (and its default system turn)
    /// into the prompt the model answers.
    #[arg(long, conflicts_with = "prompt", value_name = "TEXT")]
    chat: Option<String>,
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// Always take the most likely token (same as --temperature 0).
    #[arg(long)]
    greedy: bool,
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Sample among the k most likely tokens only (0: all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Keep generating past the model's end-of-sequence token.
    #[arg(long)]
    ignore_eos: bool,
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    device: Device,
    /// Print one JSON object: prompt and generated token ids, text, stop reason.
    #[arg(long)]
    json: bool,
    /// With --json: include the logits of the last prompt position.
    #[arg(long, requires = "json")]
    logits: bool,
}

pub fn run(args: RunArgs) -> Result<()> {
    match args.device {
        Device::Cpu => run_on::<NdArray<f32>>(&args, &Default::default()),
        Device::Wgpu => run_on::<Wgpu>(&args, &burn::backend::wgpu::WgpuDevice::default()),
    }
}

fn step(bar: &ProgressBar, message: &str) {
    bar.set_message(message.to_owned());
    bar.inc(1);
}

/// `--model`, or the embedded default model's installed file when it is absent.
pub(crate) fn model_path(model: Option<&Path>) -> Result<PathBuf> {
    match model {
        Some(path) => Ok(path.to_path_buf()),
        None => Ok(tributary_models::DEFAULT.locate()?),
    }
}

fn run_on<B: SgmvBackend + QuantBackend>(args: &RunArgs, device: &B::Device) -> Result<()> {
    let path = model_path(args.model.as_deref())?;
    let bar = ProgressBar::new(if args.adapter.is_some() { 3 } else { 2 });
    bar.set_style(
        ProgressStyle::with_template("{spinner} loading [{bar:20}] {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message("tokenizer");
    let source = ModelSource::open(&path)?;
    let tokenizer = source.tokenizer()?;
    let prompt = match (&args.prompt, &args.chat) {
        (Some(prompt), _) => prompt.clone(),
        (None, Some(message)) => {
            let Some(template) = source.chat_template()? else {
                bail!("--chat: {} has no chat template", path.display());
            };
            template.render(
                &[ChatMessage {
                    role: "user".into(),
                    content: message.clone(),
                }],
                true,
            )?
        }
        (None, None) => bail!("--prompt or --chat is required"),
    };
    step(&bar, "model weights");
    let model = source.load::<B>(device)?;
    tracing::info!(
        model = %path.display(),
        layers = model.config.num_layers,
        hidden = model.config.hidden_size,
        "model loaded"
    );
    let adapter = match &args.adapter {
        Some(dir) => {
            step(&bar, "adapter");
            let weights = AdapterWeights::open_dir(dir, &model.config)?;
            tracing::info!(name = %weights.name, rank = weights.config.rank, "adapter loaded");
            Some(model.adapter(&weights)?)
        }
        None => None,
    };
    step(&bar, "done");
    bar.finish_and_clear();

    let prompt_ids = tokenizer.encode(&prompt)?;
    let params = SamplingParams {
        temperature: if args.greedy { 0.0 } else { args.temperature },
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
        max_tokens: args.max_tokens,
        stop_tokens: if args.ignore_eos {
            Vec::new()
        } else {
            model.config.eos_token_ids.clone()
        },
    };

    // Streamed text: decode everything so far and print what is new, so multi-byte characters
    // split across tokens come out whole.
    let mut generated = Vec::new();
    let mut printed = 0;
    let mut stdout = std::io::stdout().lock();
    let stream = !args.json;
    // Prefill ends at the first token; decode speed is over the tokens after it.
    let started = std::time::Instant::now();
    let mut first_token = None;
    let result = pollster::block_on(generate(
        &model,
        adapter.as_ref(),
        &prompt_ids,
        &params,
        |token| {
            first_token.get_or_insert_with(std::time::Instant::now);
            generated.push(token);
            if stream
                && let Ok(text) = tokenizer.decode(&generated)
                && text.len() > printed
                && text.is_char_boundary(printed)
            {
                let _ = write!(stdout, "{}", &text[printed..]);
                let _ = stdout.flush();
                printed = text.len();
            }
            true
        },
    ))?;
    let finished = std::time::Instant::now();
    let text = tokenizer.decode(&result.tokens)?;
    if args.json {
        let first = first_token.unwrap_or(finished);
        let decoded = result.tokens.len().saturating_sub(1);
        let mut out = serde_json::json!({
            "prompt_ids": result.prompt_ids,
            "generated_ids": result.tokens,
            "text": text,
            "stop": format!("{:?}", result.stop),
            "timing": {
                "first_token_ms": (first - started).as_secs_f64() * 1e3,
                "decode_tokens_per_s": decoded as f64 / (finished - first).as_secs_f64().max(1e-9),
            },
        });
        if args.logits {
            out["logits"] = serde_json::json!(result.prompt_logits);
        }
        writeln!(stdout, "{out}").context("writing the result")?;
    } else {
        writeln!(stdout)?;
    }
    Ok(())
}
