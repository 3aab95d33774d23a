//! `cargo xtask bench sgmv`'s measurements: each scenario of `tributary_bench::sgmv` timed on
//! the default wgpu adapter (median of `--reps` runs after warm-up), printed as one JSON object.

use std::time::Instant;

use clap::Parser;
use serde_json::{Map, Value, json};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 30)]
    reps: usize,
}

fn main() {
    let args = Args::parse();
    let device = burn::backend::wgpu::WgpuDevice::default();
    let mut out = Map::new();
    for scenario in tributary_bench::sgmv::all(&device) {
        for _ in 0..3 {
            scenario.run();
        }
        let mut times: Vec<f64> = (0..args.reps.max(1))
            .map(|_| {
                let start = Instant::now();
                scenario.run();
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        out.insert(scenario.name.clone(), json!(times[times.len() / 2]));
        eprintln!("{}: {:.3} ms", scenario.name, times[times.len() / 2]);
    }
    println!("{}", Value::Object(out));
}
