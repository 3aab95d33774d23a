//! `tributary finetune`, and the gradient method of `tributary index build` and `tributary
//! attribute`: a LoRA fine-tune over a datanet snapshot, the store of its projected per-example
//! gradients, and queries against it. On the CPU (burn NdArray under Autodiff), or on CUDA when
//! built with `--features cuda`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tributary_attribution::Source;
use tributary_attribution::gradient::{
    Extractor, GradientStore, Projection, StoreMeta, score, split_scores, store_dir,
};
use tributary_datanet::Store;
use tributary_finetune::{Lora, LoraSpec, TrainParams, save_adapter, train, windows};
use tributary_model::{AdapterWeights, Model, SgmvBackend, Tokenizer};
use tributary_receipt::{B256, METHOD_GRADIENT};

use crate::attribute::{AttributeArgs, Places, latest_version, tokenizer};
use crate::files::{adapter_hash, model_hash};

/// Where gradients are computed.
#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum TrainDevice {
    /// burn's NdArray backend (under Autodiff) on the CPU.
    #[default]
    Cpu,
    /// burn's CUDA backend; needs a binary built with `--features cuda`.
    Cuda,
}

/// Runs `$body` with `$B` bound to the autodiff backend of `$device` and `device` to its device.
macro_rules! on_device {
    ($device:expr, |$B:ident, $dev:ident| $body:expr) => {
        match $device {
            TrainDevice::Cpu => {
                type $B = burn::backend::Autodiff<burn::backend::NdArray>;
                let $dev = Default::default();
                $body
            }
            #[cfg(feature = "cuda")]
            TrainDevice::Cuda => {
                type $B = burn::backend::Autodiff<burn::backend::Cuda>;
                let $dev = Default::default();
                $body
            }
            #[cfg(not(feature = "cuda"))]
            TrainDevice::Cuda => {
                bail!("this binary was built without CUDA: rebuild with `--features cuda`")
            }
        }
    };
}

#[derive(Debug, Args)]
pub struct FinetuneArgs {
    /// The base model folder.
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    datanet: String,
    /// The snapshot version (default: the latest).
    #[arg(long)]
    version: Option<u64>,
    /// Where to write the PEFT adapter folder.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long, default_value_t = 8)]
    batch: usize,
    #[arg(long, default_value_t = 1e-2)]
    lr: f64,
    #[arg(long, default_value_t = 8)]
    rank: usize,
    #[arg(long, default_value_t = 16.0)]
    alpha: f64,
    /// Tokens per training example: contributions are cut into windows of this many.
    #[arg(long, default_value_t = 64)]
    window: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value_t)]
    device: TrainDevice,
    #[command(flatten)]
    places: Places,
}

/// A snapshot's accepted contributions as sources and token ids.
fn snapshot_documents(
    store: &Store,
    datanet: &str,
    version: u64,
    tokenizer: &Tokenizer,
) -> Result<Vec<(Source, Vec<u32>)>> {
    store
        .snapshot_contents(datanet, version)?
        .into_iter()
        .map(|c| {
            Ok((
                Source {
                    datanet: datanet.to_owned(),
                    contribution: c.content_hash,
                    contributor: c.contributor,
                },
                tokenizer.encode(&c.content)?,
            ))
        })
        .collect()
}

fn bar(len: u64, template: &str) -> ProgressBar {
    ProgressBar::new(len)
        .with_style(ProgressStyle::with_template(template).expect("valid template"))
}

pub fn finetune(args: FinetuneArgs) -> Result<()> {
    let store = Store::open(&args.places.db())?;
    let version = match args.version {
        Some(v) => v,
        None => latest_version(&store, &args.datanet)?,
    };
    let (tokenizer, _) = tokenizer(&args.model)?;
    let documents = snapshot_documents(&store, &args.datanet, version, &tokenizer)?;
    let examples: Vec<Vec<u32>> = documents
        .iter()
        .flat_map(|(_, t)| windows(t, args.window))
        .collect();
    let params = TrainParams {
        lora: LoraSpec {
            rank: args.rank,
            alpha: args.alpha,
            ..LoraSpec::default()
        },
        epochs: args.epochs,
        batch_size: args.batch,
        learning_rate: args.lr,
        seed: args.seed,
        ..TrainParams::default()
    };
    let name = args
        .out
        .file_name()
        .map_or_else(|| "adapter".into(), |n| n.to_string_lossy().into_owned());
    let progress = bar(0, "tuning [{bar:30}] {pos}/{len} steps, loss {msg}");
    let adapter = on_device!(args.device, |B, device| {
        let model = Model::<B>::load(&args.model, &device)?;
        let lora = train(&model, &examples, &params, &mut |step, total, loss| {
            progress.set_length(total as u64);
            progress.set_position(step as u64);
            progress.set_message(format!("{loss:.4}"));
        })?;
        lora.to_adapter(&name)
    });
    progress.finish_and_clear();
    save_adapter(&adapter, &args.out)?;
    println!(
        "{}",
        json!({"datanet": args.datanet, "version": version, "examples": examples.len(),
               "adapter": args.out, "rank": args.rank})
    );
    Ok(())
}

/// What `index build --method gradient` needs beyond the span build's arguments.
#[derive(Debug, Args)]
pub struct GradientBuildArgs {
    /// The fine-tuned adapter whose gradients are stored (`tributary finetune --out`).
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Projected dimensions per row.
    #[arg(long, default_value_t = 1024)]
    dims: usize,
    /// Tokens per example (as fine-tuned).
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Seeds the random projection.
    #[arg(long, default_value_t = 0x7121_b07a)]
    projection_seed: u64,
    #[arg(long, value_enum, default_value_t)]
    device: TrainDevice,
}

pub fn build_store(
    datanet: &str,
    version: u64,
    model_dir: &Path,
    places: &Places,
    args: &GradientBuildArgs,
) -> Result<()> {
    let Some(adapter_dir) = &args.adapter else {
        bail!(
            "--method gradient needs --adapter DIR: the fine-tuned adapter (`tributary finetune`)"
        )
    };
    let store = Store::open(&places.db())?;
    let root = store.snapshot_root(datanet, version)?;
    let (tokenizer, tokenizer_hash) = tokenizer(model_dir)?;
    let documents = snapshot_documents(&store, datanet, version, &tokenizer)?;
    let mut examples = Vec::new();
    let mut row_sources = Vec::new();
    for (i, (_, tokens)) in documents.iter().enumerate() {
        for w in windows(tokens, args.window) {
            examples.push(w);
            row_sources.push(i);
        }
    }
    let progress = bar(
        examples.len() as u64,
        "gradients [{bar:30}] {pos}/{len} examples",
    );
    let dir = store_dir(&places.indexes(), datanet, version);
    let meta = on_device!(args.device, |B, device| {
        let model = Model::<B>::load(model_dir, &device)?;
        let weights = AdapterWeights::open_dir(adapter_dir, &model.config)?;
        let lora = Lora::<B>::from_adapter(&weights, &model.config, &device);
        let projection = Projection::for_lora(args.projection_seed, &lora, args.dims)?;
        let extractor = Extractor::new(&model, &lora, projection.clone(), args.window)?;
        let mut rows = Vec::with_capacity(examples.len());
        for e in &examples {
            rows.push(extractor.row(e)?);
            progress.inc(1);
        }
        let meta = StoreMeta {
            datanet: datanet.to_owned(),
            version,
            root,
            tokenizer: tokenizer_hash,
            model: model_hash(model_dir)?,
            adapter: adapter_hash(adapter_dir)?,
            adapter_dir: std::path::absolute(adapter_dir)?,
            window: args.window,
            projection,
            damping: Vec::new(),
            rows: 0,
            row_root: B256::ZERO,
            row_sources,
            sources: documents.into_iter().map(|(s, _)| s).collect(),
        };
        GradientStore::save(&dir, meta, &rows)?
    });
    progress.finish_and_clear();
    println!(
        "{}",
        json!({"datanet": datanet, "version": version, "root": root, "method": "gradient",
               "rows": meta.rows, "dims": meta.projection.dims(), "rowRoot": meta.row_root,
               "contributions": meta.sources.len(), "dir": dir})
    );
    Ok(())
}

/// Scores `text` against the latest snapshot's gradient store; the JSON `tributary attribute`
/// prints.
pub fn attribute(args: &AttributeArgs) -> Result<Value> {
    let (datanet, model_dir, places) = (args.datanet.as_str(), args.model.as_path(), &args.places);
    let device = args.device;
    let store = Store::open(&places.db())?;
    let latest = latest_version(&store, datanet)?;
    let dir = store_dir(&places.indexes(), datanet, latest);
    if !dir.join("gradient.json").exists() {
        bail!(
            "datanet `{datanet}` snapshot {latest} has no gradient store at {}: run `tributary index build --datanet {datanet} --method gradient --adapter …`",
            dir.display()
        );
    }
    let gradients = GradientStore::open(&dir)?;
    let meta = &gradients.meta;
    let root = store.snapshot_root(datanet, latest)?;
    if meta.root != root || meta.version != latest {
        bail!(
            "the gradient store at {} is for snapshot {} (root {}), not the latest {latest} (root {root}): rebuild it",
            dir.display(),
            meta.version,
            meta.root
        );
    }
    let (tokenizer, tokenizer_hash) = tokenizer(model_dir)?;
    if tokenizer_hash != meta.tokenizer || model_hash(model_dir)? != meta.model {
        bail!(
            "the gradient store was built with another model than {}: rebuild it with this one",
            model_dir.display()
        );
    }
    let adapter_dir = args
        .adapter
        .clone()
        .unwrap_or_else(|| meta.adapter_dir.clone());
    if adapter_hash(&adapter_dir)? != meta.adapter {
        bail!(
            "the adapter at {} is not the one the gradient store was built from",
            adapter_dir.display()
        );
    }
    let tokens = tokenizer.encode(&args.text)?;
    // On the CPU the store is scanned from its mapped file; on a GPU it is uploaded and scored
    // there.
    let on_cpu = matches!(device, TrainDevice::Cpu);
    let scores = on_device!(device, |B, dev| query_scores::<B>(
        model_dir,
        &adapter_dir,
        &gradients,
        &tokens,
        &dev,
        on_cpu
    )?);
    let (top, split) = split_scores(&scores, meta, args.top_k, args.share);
    let top_json: Vec<Value> = top
        .iter()
        .map(|s| {
            let source = &meta.sources[s.source];
            json!({"contribution": source.contribution, "contributor": source.contributor,
                   "score": s.score, "rows": s.rows})
        })
        .collect();
    Ok(json!({
        "datanet": datanet,
        "snapshot": {"version": latest, "root": root},
        "method": "gradient",
        "estimator": "logra-damped-inverse",
        "store": {"rows": meta.rows, "dims": meta.projection.dims(), "rowRoot": meta.row_root},
        "outputTokens": tokens.len(),
        "top": top_json,
        "attributions": split.attributions(METHOD_GRADIENT),
        "thresholdPpm": split.threshold_ppm(),
        "byContributor": split.by_contributor,
        "byDatanet": split.by_datanet,
    }))
}

fn query_scores<B: AutodiffBackend + SgmvBackend>(
    model_dir: &Path,
    adapter_dir: &Path,
    gradients: &GradientStore,
    tokens: &[u32],
    device: &B::Device,
    on_cpu: bool,
) -> Result<Vec<f32>> {
    let meta = &gradients.meta;
    let model = Model::<B>::load(model_dir, device)?;
    let weights = AdapterWeights::open_dir(adapter_dir, &model.config)?;
    let lora = Lora::<B>::from_adapter(&weights, &model.config, device);
    let extractor = Extractor::new(&model, &lora, meta.projection.clone(), meta.window)?;
    let query = gradients.precondition(&extractor.query(tokens)?);
    Ok(if on_cpu {
        gradients.scan(&query)
    } else {
        score(&gradients.to_device::<B::InnerBackend>(device), &query)
    })
}
