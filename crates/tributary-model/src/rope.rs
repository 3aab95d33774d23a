//! Rotary position embeddings, computed on the CPU for the positions of each step and uploaded as
//! small cos/sin tables; including Llama-3's frequency-dependent rescaling.

use std::f64::consts::PI;

use burn::tensor::{Tensor, TensorData, backend::Backend};

use crate::config::ModelConfig;

#[derive(Debug, Clone)]
pub(crate) struct Rope {
    /// One inverse frequency per pair of head dimensions.
    inv_freq: Vec<f32>,
}

impl Rope {
    pub(crate) fn new(config: &ModelConfig) -> Self {
        let d = config.head_dim;
        let mut inv_freq: Vec<f64> = (0..d / 2)
            .map(|i| 1.0 / config.rope_theta.powf((2 * i) as f64 / d as f64))
            .collect();
        if let Some(s) = &config.rope_scaling {
            // Wavelengths longer than the original context are slowed down by `factor`, short
            // ones kept, and the band between interpolated (transformers' llama3 rule).
            let low_freq_wavelen = s.original_max_position_embeddings / s.low_freq_factor;
            let high_freq_wavelen = s.original_max_position_embeddings / s.high_freq_factor;
            for f in &mut inv_freq {
                let wavelen = 2.0 * PI / *f;
                if wavelen > low_freq_wavelen {
                    *f /= s.factor;
                } else if wavelen >= high_freq_wavelen {
                    let smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor)
                        / (s.high_freq_factor - s.low_freq_factor);
                    *f = (1.0 - smooth) * *f / s.factor + smooth * *f;
                }
            }
        }
        Self {
            inv_freq: inv_freq.into_iter().map(|f| f as f32).collect(),
        }
    }

    /// cos and sin for positions `offset..offset + seq`, shaped [1, 1, seq, head_dim] with the
    /// frequencies repeated over both halves of the head.
    pub(crate) fn tables<B: Backend>(
        &self,
        offset: usize,
        seq: usize,
        device: &B::Device,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let d = self.inv_freq.len() * 2;
        let mut cos = Vec::with_capacity(seq * d);
        let mut sin = Vec::with_capacity(seq * d);
        for pos in offset..offset + seq {
            for _half in 0..2 {
                for &f in &self.inv_freq {
                    // f32 product as transformers computes it, then cos/sin of that angle.
                    let angle = pos as f32 * f;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
        let table = |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [1, 1, seq, d]), device);
        (table(cos), table(sin))
    }
}
