//! The mixed-adapter batch check, shared by the CPU suite (`batch.rs`) and the wgpu suite
//! (`gpu.rs`): 8 sequences with 8 different adapters in one forward pass against each sequence
//! run alone — through SGMV with one segment, and through a merged model (W + s·B·A, computed
//! without SGMV at all) — and a continuous-batching schedule against the same sequences alone.

use std::path::Path;

pub mod smollm2;

use burn::tensor::{Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tributary_model::{
    Adapter, AdapterWeights, Adapters, Model, PagedKv, SamplingParams, SeqKv, SgmvBackend, Step,
    Target, generate,
};

pub const SEQUENCES: usize = 8;
const PROMPT_LEN: usize = 6;
const NEW_TOKENS: usize = 8;

/// A random PEFT adapter for `model`: its own rank and targets, small weights, scale 1.5.
pub fn random_adapter<B: SgmvBackend>(
    model: &Model<B>,
    name: &str,
    rank: usize,
    targets: &[Target],
    seed: u64,
) -> AdapterWeights {
    AdapterWeights::random(
        &model.config,
        name,
        (rank, 1.5 * rank as f64),
        targets,
        0.05,
        seed,
    )
}

/// Eight adapters of mixed ranks and target sets.
pub fn eight_adapters<B: SgmvBackend>(model: &Model<B>) -> Vec<AdapterWeights> {
    use Target::*;
    let plans: [(usize, &[Target]); SEQUENCES] = [
        (1, &[Q, V]),
        (2, &[Q, K, V, O]),
        (4, &Target::ALL),
        (8, &[Gate, Up, Down]),
        (16, &[O, Down]),
        (3, &Target::ALL),
        (32, &[Q, K]),
        (5, &[V, Up]),
    ];
    plans
        .iter()
        .enumerate()
        .map(|(i, &(rank, targets))| {
            random_adapter(model, &format!("r{rank}-{i}"), rank, targets, i as u64)
        })
        .collect()
}

pub fn load<B: SgmvBackend>(dir: &Path, device: &B::Device) -> Model<B> {
    Model::<B>::load(dir, device).unwrap()
}

fn prompts() -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    (0..SEQUENCES)
        .map(|_| (0..PROMPT_LEN).map(|_| rng.random_range(3..300)).collect())
        .collect()
}

fn tokens<B: SgmvBackend>(rows: &[Vec<u32>], device: &B::Device) -> Tensor<B, 2, Int> {
    let len = rows[0].len();
    let data: Vec<i32> = rows.iter().flatten().map(|&t| t as i32).collect();
    Tensor::from_data(TensorData::new(data, [rows.len(), len]), device)
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Last-position logits of every sequence ([seq][vocab]) and each one's greedy tokens, all 8
/// sequences in one batch per step.
pub fn run_batch<B: SgmvBackend>(
    model: &Model<B>,
    adapters: &[Option<&Adapter<B>>],
) -> (Vec<Vec<f32>>, Vec<Vec<u32>>) {
    let vocab = model.config.vocab_size;
    let mut cache = model.new_cache();
    let mut input = prompts();
    let mut first_logits = Vec::new();
    let mut generated = vec![Vec::new(); SEQUENCES];
    for step in 0..NEW_TOKENS {
        let logits = model
            .forward_last(
                tokens(&input, model.device()),
                &mut cache,
                Adapters::PerSequence(adapters),
            )
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let rows: Vec<Vec<f32>> = logits.chunks_exact(vocab).map(<[f32]>::to_vec).collect();
        input = rows.iter().map(|r| vec![argmax(r)]).collect();
        for (g, next) in generated.iter_mut().zip(&input) {
            g.push(next[0]);
        }
        if step == 0 {
            first_logits = rows;
        }
    }
    (first_logits, generated)
}

/// The whole check; returns the largest logit difference seen, for the log.
pub fn batch_matches_sequences_run_alone<B: SgmvBackend>(model: &Model<B>) -> f32 {
    let weights = eight_adapters(model);
    let adapters: Vec<Adapter<B>> = weights.iter().map(|w| model.adapter(w).unwrap()).collect();
    let per_sequence: Vec<Option<&Adapter<B>>> = adapters.iter().map(Some).collect();
    let (batch_logits, batch_tokens) = run_batch(model, &per_sequence);

    let params = SamplingParams::greedy(NEW_TOKENS);
    let mut worst = 0.0f32;
    for (i, prompt) in prompts().iter().enumerate() {
        let alone =
            pollster::block_on(generate(model, Some(&adapters[i]), prompt, &params, |_| {
                true
            }))
            .unwrap();
        let merged = model.merged(&weights[i]).unwrap();
        let folded =
            pollster::block_on(generate(&merged, None, prompt, &params, |_| true)).unwrap();
        for (label, run) in [("alone", &alone), ("merged", &folded)] {
            let diff = max_abs_diff(&batch_logits[i], &run.prompt_logits);
            assert!(
                diff <= 1e-4,
                "sequence {i} ({}): batch vs {label} logits differ by {diff:e}",
                weights[i].name
            );
            assert_eq!(
                batch_tokens[i], run.tokens,
                "sequence {i} ({}): batch vs {label} greedy tokens",
                weights[i].name
            );
            worst = worst.max(diff);
        }
    }
    // The adapters matter: without them the batch answers differently.
    let (base_logits, _) = run_batch(model, &[None; SEQUENCES]);
    let moved = (0..SEQUENCES)
        .map(|i| max_abs_diff(&base_logits[i], &batch_logits[i]))
        .fold(0.0, f32::max);
    assert!(
        moved > 1e-2,
        "adapters changed the logits by only {moved:e}"
    );

    // The same batch again: the same bits.
    let (again, _) = run_batch(model, &per_sequence);
    let bits = |v: &[Vec<f32>]| v.iter().flatten().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert!(
        bits(&again) == bits(&batch_logits),
        "a rerun of the batch changed its logits"
    );
    worst
}

/// Continuous batching: sequences join at different steps (prefilling while others decode),
/// use different adapters or none, and leave when done; each must get exactly what it gets alone.
/// Returns the largest logit difference seen.
pub fn continuous_batching_matches_sequences_run_alone<B: SgmvBackend>(model: &Model<B>) -> f32 {
    let weights = eight_adapters(model);
    let adapters: Vec<Adapter<B>> = weights[..2]
        .iter()
        .map(|w| model.adapter(w).unwrap())
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let prompt_lens = [3, 7, 1, 5];
    let prompts: Vec<Vec<u32>> = prompt_lens
        .iter()
        .map(|&n| (0..n).map(|_| rng.random_range(3..300)).collect())
        .collect();
    let join = [0, 0, 1, 2];
    let wanted = [4, 2, 4, 3];
    let adapter_of: [Option<&Adapter<B>>; 4] = [
        Some(&adapters[0]),
        None,
        Some(&adapters[1]),
        Some(&adapters[0]),
    ];

    let vocab = model.config.vocab_size;
    // 4-token blocks: the longer sequences span several, interleaved with the others'.
    let mut kv = PagedKv::<B>::new(&model.config, 4, 1 << 20, model.device()).unwrap();
    let idle = kv.blocks_free();
    let mut caches: Vec<SeqKv> = (0..4).map(|_| SeqKv::new()).collect();
    let mut inputs = prompts.clone();
    let mut generated: Vec<Vec<u32>> = vec![Vec::new(); 4];
    let mut first_logits: Vec<Vec<f32>> = vec![Vec::new(); 4];
    let mut mixed_steps = 0;
    for step in 0.. {
        let active: Vec<usize> = (0..4)
            .filter(|&i| join[i] <= step && generated[i].len() < wanted[i])
            .collect();
        if active.is_empty() {
            break;
        }
        if active.iter().any(|&i| generated[i].is_empty())
            && active.iter().any(|&i| !generated[i].is_empty())
        {
            mixed_steps += 1; // a prefill and a decode in one step
        }
        let mut steps: Vec<Step<'_, B>> = caches
            .iter_mut()
            .zip(&inputs)
            .enumerate()
            .filter(|(i, _)| active.contains(i))
            .map(|(i, (seq, tokens))| Step {
                tokens,
                seq,
                adapter: adapter_of[i],
            })
            .collect();
        let logits = model
            .forward_steps(&mut kv, &mut steps)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        for (row, &i) in logits.chunks_exact(vocab).zip(&active) {
            if generated[i].is_empty() {
                first_logits[i] = row.to_vec();
            }
            let next = argmax(row);
            generated[i].push(next);
            inputs[i] = vec![next];
            if generated[i].len() == wanted[i] {
                kv.release(&mut caches[i]); // done: its blocks go back at once
            }
        }
    }
    assert_eq!(
        kv.blocks_free(),
        idle,
        "every finished sequence gave its KV blocks back"
    );
    assert!(
        mixed_steps >= 2,
        "the schedule mixes prefill and decode in one step"
    );

    let mut worst = 0.0f32;
    for i in 0..4 {
        let params = SamplingParams::greedy(wanted[i]);
        let alone =
            pollster::block_on(generate(model, adapter_of[i], &prompts[i], &params, |_| {
                true
            }))
            .unwrap();
        let diff = max_abs_diff(&first_logits[i], &alone.prompt_logits);
        assert!(
            diff <= 1e-4,
            "sequence {i}: batched vs alone logits differ by {diff:e}"
        );
        assert_eq!(generated[i], alone.tokens, "sequence {i}: greedy tokens");
        worst = worst.max(diff);
    }
    worst
}
