//! Fine-tuning on the fixture model (tiny random Llama with GQA, from transformers) over real text
//! no one here wrote: psalms from the King James Version (Debian's bible-kjv, installed by
//! `cargo xtask setup`), tokenized with the fixture's tokenizer.

use std::path::PathBuf;
use std::process::Command;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Int, Tensor, TensorData};
use tributary_finetune::{
    Lora, LoraSpec, TrainParams, batch_loss, example_gradient, example_loss, save_adapter, train,
    windows,
};
use tributary_model::{AdapterWeights, Adapters, Model, Target, Tokenizer};

type B = Autodiff<NdArray>;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tributary-model/tests/fixtures/llama-gqa")
}

fn psalms(count: usize) -> Vec<Vec<u32>> {
    let out = Command::new("bible")
        .arg("ps1:1-ps150:6")
        .output()
        .expect("`bible` (Debian bible-kjv) is missing: run `cargo xtask setup`");
    let text = String::from_utf8(out.stdout).unwrap();
    let tokenizer = Tokenizer::from_file(&fixture().join("tokenizer.json")).unwrap();
    text.lines()
        .filter(|l| l.len() > 60)
        .take(count)
        .flat_map(|l| windows(&tokenizer.encode(l.trim()).unwrap(), 48))
        .collect()
}

fn mean_loss(model: &Model<B>, lora: &Lora<B>, examples: &[Vec<u32>]) -> f32 {
    let dense = lora.dense();
    examples
        .iter()
        .map(|e| example_loss(model, &dense, e).unwrap())
        .sum::<f32>()
        / examples.len() as f32
}

#[test]
fn fine_tuning_lowers_the_loss_reproducibly_and_the_adapter_serves() {
    let device = Default::default();
    let model = Model::<B>::load(&fixture(), &device).unwrap();
    let examples = psalms(40);
    let params = TrainParams {
        epochs: 4,
        ..TrainParams::default()
    };
    let start = Lora::<B>::init(&model.config, &params.lora, params.seed, &device);
    let before = mean_loss(&model, &start, &examples);
    let mut losses = Vec::new();
    let lora = train(&model, &examples, &params, &mut |_, _, l| losses.push(l)).unwrap();
    let after = mean_loss(&model, &lora, &examples);
    eprintln!(
        "mean loss {before:.4} → {after:.4} over {} examples",
        examples.len()
    );
    assert!(after < before * 0.9, "loss {before} → {after}");
    assert_eq!(losses.len(), 4 * examples.len().div_ceil(8));

    // Same inputs, same bits.
    let again = train(&model, &examples, &params, &mut |_, _, _| {}).unwrap();
    let (x, y) = (lora.to_adapter("x"), again.to_adapter("y"));
    for (p, q) in x.pairs.iter().zip(&y.pairs) {
        assert!(
            p.a.iter()
                .zip(&q.a)
                .all(|(u, v)| u.to_bits() == v.to_bits())
        );
        assert!(
            p.b.iter()
                .zip(&q.b)
                .all(|(u, v)| u.to_bits() == v.to_bits())
        );
    }

    // The PEFT files load back, and the serving path (adapter pool, SGMV) computes the same
    // logits as the dense training path.
    let dir = std::env::temp_dir().join(format!("tributary-finetune-{}", std::process::id()));
    save_adapter(&lora.to_adapter("tuned"), &dir).unwrap();
    let loaded = AdapterWeights::open_dir(&dir, &model.config).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let serving = Model::<NdArray>::load(&fixture(), &device).unwrap();
    let adapter = serving.adapter(&loaded).unwrap();
    let tokens = &examples[0];
    let ids = || {
        let v: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
        TensorData::new(v, [1, tokens.len()])
    };
    let served: Vec<f32> = serving
        .forward(
            Tensor::<NdArray, 2, Int>::from_data(ids(), &device),
            &mut serving.new_cache(),
            Adapters::All(&adapter),
        )
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    let trained: Vec<f32> = model
        .forward_dense(
            Tensor::<B, 2, Int>::from_data(ids(), &device),
            &lora.dense(),
        )
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    let worst = served
        .iter()
        .zip(&trained)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-4,
        "serving and training logits differ by {worst}"
    );
}

/// The autodiff gradient against central finite differences of the loss (in f64 steps over the
/// f32 model), on a random adapter so both factors carry gradient.
#[test]
fn example_gradients_match_finite_differences() {
    let device = Default::default();
    let model = Model::<B>::load(&fixture(), &device).unwrap();
    let spec = LoraSpec {
        rank: 4,
        alpha: 8.0,
        targets: vec![Target::Q, Target::V, Target::Down],
    };
    let weights = AdapterWeights::random(
        &model.config,
        "random",
        (spec.rank, spec.alpha),
        &spec.targets,
        0.2,
        7,
    );
    let lora = Lora::<B>::from_adapter(&weights, &model.config, &device);
    let example = &psalms(1)[0];
    let grad: Vec<f32> = example_gradient(&model, &lora, example)
        .unwrap()
        .into_data()
        .to_vec()
        .unwrap();
    assert_eq!(grad.len(), lora.num_params());
    // Flattened order: per pair, A then B. Perturb a spread of coordinates in both.
    let mut offsets = Vec::new();
    let mut at = 0;
    for p in &weights.pairs {
        offsets.push((at, p.a.len(), p.b.len()));
        at += p.a.len() + p.b.len();
    }
    let mut checked = 0;
    for (pair, &(start, na, nb)) in offsets.iter().enumerate() {
        for (which, index) in [(0, na / 3), (1, nb / 2), (0, na - 1)] {
            let flat = start + if which == 0 { index } else { na + index };
            let h = 1e-2f32;
            let loss_at = |delta: f32| {
                let mut w = weights.clone();
                let v = if which == 0 {
                    &mut w.pairs[pair].a[index]
                } else {
                    &mut w.pairs[pair].b[index]
                };
                *v += delta;
                let l = Lora::<B>::from_adapter(&w, &model.config, &device);
                let loss = batch_loss(&model, &l.dense(), &[example.as_slice()]).unwrap();
                f64::from(loss.into_data().to_vec::<f32>().unwrap()[0])
            };
            let numeric = (loss_at(h) - loss_at(-h)) / (2.0 * f64::from(h));
            let analytic = f64::from(grad[flat]);
            let tolerance = 2e-3 + 0.05 * numeric.abs().max(analytic.abs());
            assert!(
                (numeric - analytic).abs() < tolerance,
                "pair {pair} {} [{index}]: autodiff {analytic}, finite difference {numeric}",
                if which == 0 { "A" } else { "B" }
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * weights.pairs.len());
}
