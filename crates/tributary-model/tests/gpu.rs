//! The same fixtures on burn's `Wgpu` backend (lavapipe in CI) against the CPU (`NdArray`) run:
//! logits within 1e-3 and identical greedy tokens, with and without an adapter.

use std::path::{Path, PathBuf};

use burn::backend::{NdArray, Wgpu};
use tributary_model::{AdapterWeights, Model, SamplingParams, generate};

const FIXTURES: [(&str, &str); 3] = [
    ("llama-gqa", "attn-r8"),
    ("llama-tied-rope3", "qv-r2"),
    ("qwen2-bias", "all-r6"),
];

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn run<B: tributary_model::SgmvBackend>(
    model: &Model<B>,
    adapter: Option<&tributary_model::Adapter<B>>,
    prompt: &[u32],
) -> (Vec<f32>, Vec<u32>) {
    let g = pollster::block_on(generate(
        model,
        adapter,
        prompt,
        &SamplingParams::greedy(32),
        |_| true,
    ))
    .unwrap();
    (g.prompt_logits, g.tokens)
}

#[test]
#[ignore = "needs a wgpu device: the lavapipe suite of `cargo xtask test` runs it"]
fn wgpu_matches_cpu_on_every_fixture() {
    let cpu_device = Default::default();
    let gpu_device = burn::backend::wgpu::WgpuDevice::default();
    let prompt: Vec<u32> = vec![52, 72, 277, 335, 258, 376, 76, 73, 293, 282, 357];
    for (name, adapter_name) in FIXTURES {
        let cpu = Model::<NdArray<f32>>::load(&dir(name), &cpu_device).unwrap();
        let gpu = Model::<Wgpu>::load(&dir(name), &gpu_device).unwrap();
        let weights =
            AdapterWeights::open_dir(&dir(name).join("adapters").join(adapter_name), &cpu.config)
                .unwrap();
        let (cpu_adapter, gpu_adapter) = (
            cpu.adapter(&weights).unwrap(),
            gpu.adapter(&weights).unwrap(),
        );
        for (label, with_adapter) in [("base", false), ("adapter", true)] {
            let (cl, ct) = run(&cpu, with_adapter.then_some(&cpu_adapter), &prompt);
            let (gl, gt) = run(&gpu, with_adapter.then_some(&gpu_adapter), &prompt);
            let diff = cl
                .iter()
                .zip(&gl)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            eprintln!("{name} {label}: max |Δlogit| {diff:e}");
            assert!(diff <= 1e-3, "{name} {label}: logits differ by {diff:e}");
            assert_eq!(ct, gt, "{name} {label}: greedy tokens");
        }
    }
}

mod common;

#[test]
#[ignore = "needs a wgpu device: the lavapipe suite of `cargo xtask test` runs it"]
fn mixed_adapter_batch_matches_sequences_run_alone_on_wgpu() {
    let model = common::load::<Wgpu>(
        &dir("llama-gqa"),
        &burn::backend::wgpu::WgpuDevice::default(),
    );
    let worst = common::batch_matches_sequences_run_alone(&model);
    eprintln!("max |Δlogit| batch vs alone: {worst:e}");
}

#[test]
#[ignore = "needs a wgpu device: the lavapipe suite of `cargo xtask test` runs it"]
fn continuous_batching_steps_match_sequences_run_alone_on_wgpu() {
    let model = common::load::<Wgpu>(
        &dir("llama-gqa"),
        &burn::backend::wgpu::WgpuDevice::default(),
    );
    let worst = common::continuous_batching_matches_sequences_run_alone(&model);
    eprintln!("max |Δlogit| continuous batching vs alone: {worst:e}");
}

/// The default model (SmolLM2-135M-Instruct, Q4_1) with its weights quantized in device buffers,
/// through the WGSL kernels (one teacher-forced prefill per prompt), against transformers: the
/// bounds of the CPU suite, on one plain and one chat prompt and one with the PEFT adapter (a
/// prefill takes ~10 s on lavapipe; the CPU suite runs every prompt).
#[test]
#[ignore = "needs a wgpu device: the lavapipe suite of `cargo xtask test` runs it"]
fn smollm2_matches_transformers_on_wgpu() {
    let worst =
        common::smollm2::check_backend::<Wgpu>(&burn::backend::wgpu::WgpuDevice::default(), 3);
    eprintln!("max |Δlogit| against transformers on wgpu: {worst:e}");
}
