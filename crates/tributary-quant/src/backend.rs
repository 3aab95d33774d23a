//! Quantized weights on a burn backend's device, behind one object-safe trait, so a model can
//! hold quantized and dense layers side by side without its type naming how each backend stores
//! them.

use std::fmt::Debug;
use std::sync::Arc;

use burn::tensor::{Int, Tensor, backend::Backend};

use crate::{QMatrix, QuantError};

/// A `[rows, cols]` quantized matrix resident on one device.
pub trait QuantLinear<B: Backend>: Debug + Send + Sync {
    /// `x·Wᵀ`: `x` `[m, cols]` → `[m, rows]`.
    fn forward(&self, x: Tensor<B, 2>) -> Result<Tensor<B, 2>, QuantError>;
    /// Rows `ids` of `W`, dequantized: an embedding lookup, `[ids, cols]`.
    fn gather(&self, ids: Tensor<B, 1, Int>) -> Result<Tensor<B, 2>, QuantError>;
    /// Bytes the weights occupy where this backend keeps them (host memory or a device
    /// buffer), for the model's memory accounting.
    fn stored_bytes(&self) -> u64;
}

/// A burn backend that can keep weights quantized.
pub trait QuantBackend: Backend {
    fn quant_linear(
        w: QMatrix,
        device: &Self::Device,
    ) -> Result<Arc<dyn QuantLinear<Self>>, QuantError>;
}

#[cfg(feature = "ndarray")]
mod ndarray {
    use burn::backend::NdArray;
    use burn::backend::ndarray::NdArrayDevice;
    use burn::tensor::TensorData;

    use super::*;

    /// The host matrix itself: NdArray's tensors live in host memory, so reading `x` is a copy,
    /// not a device round trip.
    #[derive(Debug)]
    struct Host {
        w: QMatrix,
        device: NdArrayDevice,
    }

    fn readback<T: burn::tensor::Element>(
        what: &str,
        data: TensorData,
    ) -> Result<Vec<T>, QuantError> {
        data.to_vec::<T>().map_err(|e| QuantError::Shape {
            what: what.to_owned(),
            reason: format!("reading the input: {e:?}"),
        })
    }

    impl QuantLinear<NdArray> for Host {
        fn forward(&self, x: Tensor<NdArray, 2>) -> Result<Tensor<NdArray, 2>, QuantError> {
            let [m, _] = x.dims();
            let x: Vec<f32> = readback(self.w.name(), x.into_data())?;
            let mut y = vec![0f32; m * self.w.rows()];
            crate::matmul(&x, &self.w, &mut y)?;
            Ok(Tensor::from_data(
                TensorData::new(y, [m, self.w.rows()]),
                &self.device,
            ))
        }

        fn gather(&self, ids: Tensor<NdArray, 1, Int>) -> Result<Tensor<NdArray, 2>, QuantError> {
            let ids: Vec<i64> = readback(self.w.name(), ids.into_data().convert::<i64>())?;
            let cols = self.w.cols();
            let mut out = vec![0f32; ids.len() * cols];
            for (&id, row) in ids.iter().zip(out.chunks_exact_mut(cols)) {
                self.w.dequantize_row(id, row)?;
            }
            Ok(Tensor::from_data(
                TensorData::new(out, [ids.len(), cols]),
                &self.device,
            ))
        }

        fn stored_bytes(&self) -> u64 {
            self.w.bytes().len() as u64
        }
    }

    impl QuantBackend for NdArray {
        fn quant_linear(
            w: QMatrix,
            device: &NdArrayDevice,
        ) -> Result<Arc<dyn QuantLinear<Self>>, QuantError> {
            Ok(Arc::new(Host { w, device: *device }))
        }
    }
}
