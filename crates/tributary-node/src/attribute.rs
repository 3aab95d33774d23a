//! `tributary index build` and `tributary attribute`: span attribution against a datanet
//! snapshot's suffix-array index, or gradient attribution against its gradient store
//! ([`crate::gradient`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tributary_attribution::{
    Index, SnapshotMeta, Source, SpanParams, Split, build_snapshot, open_snapshot,
    read_snapshot_meta, reuse, snapshot_dir, split_spans, trace,
};
use tributary_datanet::Store;
use tributary_model::{ModelSource, Tokenizer};
use tributary_receipt::{B256, METHOD_SPAN, keccak256};

use crate::gradient::{GradientBuildArgs, TrainDevice};

/// Where the datanets and their indexes are.
#[derive(Debug, Args)]
pub struct Places {
    /// The datanets' SQLite file.
    #[arg(long, env = "TRIBUTARY_DB", value_name = "FILE")]
    db: Option<PathBuf>,
    /// Where snapshot indexes are kept (default: `indexes/` beside the database).
    #[arg(long, env = "TRIBUTARY_INDEXES", value_name = "DIR")]
    indexes: Option<PathBuf>,
}

impl Places {
    pub fn db(&self) -> PathBuf {
        self.db.clone().unwrap_or_else(crate::datanet::default_db)
    }

    pub fn indexes(&self) -> PathBuf {
        self.indexes.clone().unwrap_or_else(|| {
            self.db()
                .parent()
                .map_or_else(|| PathBuf::from("indexes"), |p| p.join("indexes"))
        })
    }
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    #[command(subcommand)]
    command: IndexCommand,
}

#[derive(Debug, Subcommand)]
enum IndexCommand {
    /// Build a datanet snapshot's attribution index: its suffix-array index over the model's
    /// tokens (span), or the store of a fine-tuned adapter's projected gradients (gradient).
    Build {
        #[arg(long)]
        datanet: String,
        /// The snapshot version (default: the latest).
        #[arg(long)]
        version: Option<u64>,
        /// The model (folder or .gguf file) whose tokenizer the index is for.
        #[arg(long)]
        model: PathBuf,
        #[arg(long, value_enum, default_value = "span")]
        method: Method,
        #[command(flatten)]
        gradient: GradientBuildArgs,
        #[command(flatten)]
        places: Places,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Method {
    /// Spans of the text found verbatim in the data (suffix arrays).
    Span,
    /// Projected LoRA gradients of the fine-tuned adapter (LoGra-style).
    Gradient,
}

#[derive(Debug, Args)]
pub struct AttributeArgs {
    #[arg(long)]
    pub(crate) model: PathBuf,
    #[arg(long)]
    pub(crate) datanet: String,
    /// The model output to attribute.
    #[arg(long)]
    pub(crate) text: String,
    #[arg(long, value_enum, default_value = "span")]
    pub(crate) method: Method,
    /// Keep contributions, largest first, until this share of the evidence is covered.
    #[arg(long, default_value_t = 0.95)]
    pub(crate) share: f64,
    /// Gradient method: the fine-tuned adapter (default: the one the store was built from).
    #[arg(long)]
    pub(crate) adapter: Option<PathBuf>,
    /// Gradient method: contributions kept before the threshold.
    #[arg(long, default_value_t = 10)]
    pub(crate) top_k: usize,
    /// Gradient method: where the query's gradient is computed.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) device: TrainDevice,
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) places: Places,
}

/// A model's tokenizer and the hash an index records of it: of the folder's tokenizer.json, or
/// of a GGUF's tokenizer serialized as that file would be.
pub fn tokenizer(model: &Path) -> Result<(Tokenizer, String)> {
    match ModelSource::open(model)? {
        ModelSource::Dir(dir) => {
            let path = dir.join("tokenizer.json");
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let tokenizer = Tokenizer::from_bytes(&path, &bytes)?;
            Ok((tokenizer, keccak256(&bytes).to_string()))
        }
        gguf => {
            let tokenizer = gguf.tokenizer()?;
            let hash = keccak256(tokenizer.to_json()?.as_bytes()).to_string();
            Ok((tokenizer, hash))
        }
    }
}

pub fn latest_version(store: &Store, datanet: &str) -> Result<u64> {
    let summary = store.summary(datanet)?;
    summary
        .snapshots
        .last()
        .map(|s| s.version)
        .with_context(|| format!("datanet `{datanet}` has no snapshot yet: run `tributary datanet snapshot {datanet}`"))
}

pub fn index(args: IndexArgs) -> Result<()> {
    let IndexCommand::Build {
        datanet,
        version,
        model,
        method,
        gradient,
        places,
    } = args.command;
    let store = Store::open(&places.db())?;
    let version = match version {
        Some(v) => v,
        None => latest_version(&store, &datanet)?,
    };
    if let Method::Gradient = method {
        return crate::gradient::build_store(&datanet, version, &model, &places, &gradient);
    }
    let root = store.snapshot_root(&datanet, version)?;
    let (tokenizer, tokenizer_hash) = tokenizer(&model)?;
    let mut contributions = store.snapshot_contents(&datanet, version)?;
    // Reuse the shards of the newest earlier index when its contributions are all still in this
    // snapshot (the datanet only grew): only the new contributions are indexed.
    let indexes = places.indexes();
    let (mut shards, mut sources) = (Vec::new(), Vec::new());
    let current: std::collections::HashSet<B256> =
        contributions.iter().map(|c| c.content_hash).collect();
    for earlier in (1..version).rev() {
        let dir = snapshot_dir(&indexes, &datanet, earlier);
        let Ok(old) = read_snapshot_meta(&dir) else {
            continue;
        };
        if old.tokenizer == tokenizer_hash
            && old
                .sources
                .iter()
                .all(|s| current.contains(&s.contribution))
        {
            (shards, sources) = reuse(&dir, &old);
            let indexed: std::collections::HashSet<B256> =
                old.sources.iter().map(|s| s.contribution).collect();
            contributions.retain(|c| !indexed.contains(&c.content_hash));
        }
        break;
    }
    let reused = shards.len();
    let bar = ProgressBar::new(contributions.len() as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} contributions")
            .expect("valid template"),
    );
    bar.set_message("tokenizing");
    let mut documents = Vec::with_capacity(contributions.len());
    for c in &contributions {
        documents.push((
            Source {
                datanet: datanet.clone(),
                contribution: c.content_hash,
                contributor: c.contributor,
            },
            tokenizer.encode(&c.content)?,
        ));
        bar.inc(1);
    }
    let total: usize = documents.iter().map(|(_, t)| t.len()).sum();
    bar.set_length(total as u64);
    bar.set_position(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} tokens")
            .expect("valid template"),
    );
    bar.set_message("indexing");
    let dir = snapshot_dir(&indexes, &datanet, version);
    let meta = SnapshotMeta {
        datanet: datanet.clone(),
        version,
        root,
        tokenizer: tokenizer_hash,
        shards,
        sources,
    };
    let meta = build_snapshot(&dir, meta, documents, |done| bar.set_position(done as u64))?;
    bar.finish_and_clear();
    println!(
        "{}",
        json!({"datanet": datanet, "version": version, "root": root, "tokens": total,
               "documents": meta.sources.len(), "shards": meta.shards.len(),
               "reusedShards": reused, "dir": dir})
    );
    Ok(())
}

pub fn attribute(args: AttributeArgs) -> Result<()> {
    if let Method::Gradient = args.method {
        let out = crate::gradient::attribute(&args)?;
        return print_attribution(&out, args.json);
    }
    let attributor = SpanAttributor::open(&args.places, &args.datanet, &args.model)?;
    let out = attributor.attribute(&args.text, args.share)?;
    print_attribution(&out.json, args.json)
}

/// A datanet's latest snapshot index, checked against the datanet and the model's tokenizer.
/// Opened once and queried many times: the server keeps one for its life, so the shards are
/// mapped and the span parameters (a pass over the whole vocabulary) computed only at startup;
/// the CLI and the server share [`SpanAttributor::attribute`], so they answer alike.
#[derive(Debug)]
pub struct SpanAttributor {
    datanet: String,
    version: u64,
    root: B256,
    meta: SnapshotMeta,
    index: Index,
    tokenizer: Tokenizer,
    params: SpanParams,
}

/// One text's span attribution: the JSON `tributary attribute --method span --json` prints, and
/// the split a receipt is made from.
#[derive(Debug)]
pub struct SpanAttribution {
    pub json: serde_json::Value,
    pub split: Split,
}

impl SpanAttributor {
    /// Fails, saying which command fixes it, when the latest snapshot has no index, an index of
    /// another snapshot, or one built with another tokenizer.
    pub fn open(places: &Places, datanet: &str, model: &Path) -> Result<Self> {
        let store = Store::open(&places.db())?;
        let latest = latest_version(&store, datanet)?;
        let dir = snapshot_dir(&places.indexes(), datanet, latest);
        if !dir.join("index.json").exists() {
            bail!(
                "datanet `{datanet}` snapshot {latest} has no index at {}: run `tributary index build --datanet {datanet} --model …`",
                dir.display(),
            );
        }
        let (meta, index) = open_snapshot(&dir)?;
        let root: B256 = store.snapshot_root(datanet, latest)?;
        if meta.root != root || meta.version != latest {
            bail!(
                "the index at {} is for snapshot {} (root {}), not the latest {latest} (root {root}): rebuild it",
                dir.display(),
                meta.version,
                meta.root
            );
        }
        let (tokenizer, tokenizer_hash) = tokenizer(model)?;
        if tokenizer_hash != meta.tokenizer {
            bail!(
                "the index was built with another tokenizer than {}'s: rebuild it with this model",
                model.display()
            );
        }
        let params = SpanParams::for_vocabulary(tokenizer.vocab_size() as u32, |t| {
            tokenizer.decode(&[t]).ok()
        });
        Ok(Self {
            datanet: datanet.to_owned(),
            version: latest,
            root,
            meta,
            index,
            tokenizer,
            params,
        })
    }

    pub fn datanet(&self) -> &str {
        &self.datanet
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The snapshot's Merkle root, as a receipt's `datanetRoots` names it.
    pub fn root(&self) -> B256 {
        self.root
    }

    /// Keeps contributions, largest first, until `share` of the evidence is covered.
    pub fn attribute(&self, text: &str, share: f64) -> Result<SpanAttribution> {
        let output = self.tokenizer.encode(text)?;
        let spans = trace(&self.index, &output, &self.params);
        let sources = &self.meta.sources;
        let split = split_spans(&spans, sources, share);
        let spans_json: Vec<_> = spans
            .iter()
            .map(|s| {
                json!({
                    "start": s.start, "len": s.len,
                    "text": self.tokenizer.decode(&output[s.start..s.start + s.len]).unwrap_or_default(),
                    "logProb": s.log_prob, "occurrences": s.occurrences,
                    "contributions": s.documents.iter().map(|(d, _)| sources[*d].contribution).collect::<Vec<_>>(),
                })
            })
            .collect();
        let json = json!({
            "datanet": self.datanet,
            "snapshot": {"version": self.version, "root": self.root},
            "method": "span",
            "outputTokens": output.len(),
            "spans": spans_json,
            "attributions": split.attributions(METHOD_SPAN),
            "thresholdPpm": split.threshold_ppm(),
            "byContributor": split.by_contributor,
            "byDatanet": split.by_datanet,
        });
        Ok(SpanAttribution { json, split })
    }
}

/// The attribution JSON as is, or its contributor shares as lines.
fn print_attribution(out: &serde_json::Value, as_json: bool) -> Result<()> {
    if as_json {
        println!("{}", serde_json::to_string_pretty(out)?);
        return Ok(());
    }
    println!(
        "{} attribution against {} snapshot {}",
        out["method"].as_str().unwrap_or_default(),
        out["datanet"].as_str().unwrap_or_default(),
        out["snapshot"]["version"]
    );
    for entry in out["byContributor"].as_array().into_iter().flatten() {
        let ppm = entry[1].as_f64().unwrap_or_default();
        println!(
            "  {}: {:.2}%",
            entry[0].as_str().unwrap_or_default(),
            ppm / 1e4
        );
    }
    Ok(())
}
