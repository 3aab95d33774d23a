//! Gradient attribution's measurements, part of `cargo xtask bench attribution`: per-example
//! LoRA gradient extraction (forward, backward, projection) in examples/s, and scoring a store
//! (one preconditioned query against every row) in rows/s and bytes/s: the CPU scan over the
//! stored bytes (what `tributary attribute` runs on the CPU) against a memcpy of the same bytes,
//! and the device matrix-vector product against an elementwise copy on that device (bandwidth
//! counted as bytes read plus written, as for the memcpy). CPU (NdArray) here; CUDA when built
//! with `--features cuda` and run with `--device cuda`. Prints one JSON object.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use clap::{Parser, ValueEnum};
use rand::{Rng, SeedableRng};
use serde_json::json;
use tributary_attribution::gradient::{Extractor, Projection, scan, score};
use tributary_finetune::Lora;
use tributary_model::{AdapterWeights, Model, SgmvBackend, Target};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Device {
    Cpu,
    Cuda,
}

#[derive(Debug, Parser)]
struct Args {
    /// The base model folder; with --make, written there first (random, 26M parameters).
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    make: bool,
    #[arg(long, value_enum, default_value = "cpu")]
    device: Device,
    /// Examples whose gradients are timed.
    #[arg(long, default_value_t = 32)]
    examples: usize,
    #[arg(long, default_value_t = 64)]
    window: usize,
    #[arg(long, default_value_t = 8)]
    rank: usize,
    #[arg(long, default_value_t = 1024)]
    dims: usize,
    /// Rows of the synthetic store that scoring scans.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    #[arg(long, default_value_t = 10)]
    reps: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.make {
        tributary_bench::checkpoint::write(&args.model, &tributary_bench::checkpoint::SMALL)?;
    }
    let out = match args.device {
        Device::Cpu => run::<burn::backend::Autodiff<burn::backend::NdArray>>(
            &args,
            &Default::default(),
            "cpu (NdArray)",
        )?,
        #[cfg(feature = "cuda")]
        Device::Cuda => {
            run::<burn::backend::Autodiff<burn::backend::Cuda>>(&args, &Default::default(), "cuda")?
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => bail!("built without CUDA: rebuild with `--features cuda`"),
    };
    println!("{out}");
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `f` over `reps` runs after one warm-up.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn run<B: AutodiffBackend + SgmvBackend>(
    args: &Args,
    device: &B::Device,
    name: &str,
) -> Result<serde_json::Value> {
    if args.examples == 0 || args.rows == 0 {
        bail!("--examples and --rows must be positive");
    }
    let model = Model::<B>::load(&args.model, device)?;
    let c = &model.config;
    let weights = AdapterWeights::random(
        c,
        "bench",
        (args.rank, 2.0 * args.rank as f64),
        &Target::ALL,
        0.02,
        1,
    );
    let lora = Lora::<B>::from_adapter(&weights, c, device);
    let projection = Projection::for_lora(7, &lora, args.dims)?;
    let extractor = Extractor::new(&model, &lora, projection, args.window)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let examples: Vec<Vec<u32>> = (0..args.examples)
        .map(|_| {
            (0..args.window)
                .map(|_| rng.random_range(0..c.vocab_size as u32))
                .collect()
        })
        .collect();
    // Warm-up (kernels compiled, buffers allocated), and the determinism a receipt needs: the
    // same example gives the same bits.
    let first = extractor.row(&examples[0])?;
    let rows_reproduce = extractor.row(&examples[0])? == first;
    let start = Instant::now();
    for e in &examples {
        extractor.row(e)?;
    }
    let extract_s = start.elapsed().as_secs_f64();

    // Scoring: a synthetic store, as stored bytes (CPU scan) and resident on the device.
    let values: Vec<f32> = (0..args.rows * args.dims)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let stored: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let query: Vec<f32> = (0..args.dims)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let scan_reproduce = scan(&stored, args.dims, &query) == scan(&stored, args.dims, &query);
    let scan_s = time(args.reps, || {
        std::hint::black_box(scan(&stored, args.dims, &query));
    });
    let mut copy = vec![0u8; stored.len()];
    let memcpy_s = time(args.reps, || {
        copy.copy_from_slice(std::hint::black_box(&stored));
        std::hint::black_box(&copy);
    });
    drop(copy);
    let rows = Tensor::<B::InnerBackend, 2>::from_data(
        TensorData::new(values, [args.rows, args.dims]),
        device,
    );
    let scores_reproduce = score(&rows, &query) == score(&rows, &query);
    let score_s = time(args.reps, || {
        std::hint::black_box(score(&rows, &query));
    });
    let copy_s = time(args.reps, || {
        // An elementwise pass (read and write every value), synchronised by a one-value read.
        let copied = rows.clone() * 1.0001;
        let one: Vec<f32> = copied
            .slice([0..1, 0..1])
            .into_data()
            .convert::<f32>()
            .to_vec()
            .expect("f32");
        std::hint::black_box(one);
    });
    let bytes = (args.rows * args.dims * 4) as f64;
    Ok(json!({
        "device": name,
        "model": {"hidden": c.hidden_size, "layers": c.num_layers, "vocab": c.vocab_size},
        "lora_params": lora.num_params(),
        "rank": args.rank,
        "window": args.window,
        "dims": args.dims,
        "examples_per_s": args.examples as f64 / extract_s,
        "store_rows": args.rows,
        "scan_ms": scan_s * 1e3,
        "scan_rows_per_s": args.rows as f64 / scan_s,
        "scan_gb_s": bytes / scan_s / 1e9,
        "memcpy_gb_s": 2.0 * bytes / memcpy_s / 1e9,
        "score_ms": score_s * 1e3,
        "score_rows_per_s": args.rows as f64 / score_s,
        "score_gb_s": bytes / score_s / 1e9,
        "device_copy_gb_s": 2.0 * bytes / copy_s / 1e9,
        "rows_reproduce": rows_reproduce,
        "scores_reproduce": scores_reproduce && scan_reproduce,
    }))
}
