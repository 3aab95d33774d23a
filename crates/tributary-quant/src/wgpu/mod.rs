//! Quantized weights on burn's wgpu device: the GGUF bytes uploaded as they are (never expanded
//! to f32), and WGSL kernels that dequantize inside the product, launched through cubecl's
//! client so they queue in order with burn's tensor work and read its tensors in place.
//!
//! A GEMV kernel serves decode (up to [`GEMV_MAX_ROWS`] input rows: each weight element is
//! decoded once and used for every row). Prefill decodes the matrix in chunks of rows into a
//! transient f32 scratch of at most [`SCRATCH_BYTES`] and multiplies each with burn's tuned
//! matmul (cubecl's tiled GEMM): the weights at rest stay quantized, and the scratch is freed
//! chunk by chunk. A gather kernel serves embedding lookups. Their CPU reference is
//! [`crate::reference`].

use burn::backend::Wgpu;
use burn::backend::wgpu::{
    CubeDim, CubeTensor, KernelSource, SourceKernel, SourceTemplate, WgpuDevice, WgpuRuntime,
    into_contiguous,
};
use burn::cubecl::client::ComputeClient;
use burn::cubecl::prelude::KernelId;
use burn::cubecl::server::{Handle, KernelArguments};
use burn::cubecl::{CubeCount, Runtime};
use burn::tensor::{DType, Int, Shape, Tensor, TensorPrimitive};
use std::sync::Arc;

use crate::{QMatrix, QuantBackend, QuantError, QuantLinear};

const QUANT_WGSL: &str = include_str!("quant.wgsl");
const WORKGROUP: u32 = 256;
/// Input rows up to which the GEMV kernel runs (its accumulators are an array of this size).
pub const GEMV_MAX_ROWS: usize = 8;
/// Output rows per GEMV workgroup (256 invocations, 32 lanes per row).
const GEMV_ROWS_PER_GROUP: usize = 8;
/// Largest f32 chunk of a matrix that prefill decodes at once (one `[576, 7281]` chunk of
/// SmolLM2's 49,152-row lm_head, the whole of any other matrix of it).
pub const SCRATCH_BYTES: usize = 16 << 20;

macro_rules! wgsl_kernel {
    ($name:ident, $file:literal) => {
        #[derive(Debug)]
        struct $name;

        impl KernelSource for $name {
            fn source(&self) -> SourceTemplate {
                SourceTemplate::new(QUANT_WGSL).add_template(include_str!($file))
            }

            fn id(&self) -> KernelId {
                KernelId::new::<Self>().cube_dim(CubeDim::new_1d(WORKGROUP))
            }
        }
    };
}

wgsl_kernel!(GemvKernel, "gemv.wgsl");
wgsl_kernel!(DequantKernel, "dequant.wgsl");
wgsl_kernel!(GatherKernel, "gather.wgsl");

/// Every kernel's complete source as cubecl compiles it, by name: for compilers other than
/// naga's test below (the browser suite compiles them with Chrome's Tint, which is stricter),
/// because cubecl only logs a kernel that fails to compile and its launches then do nothing.
pub fn wgsl_kernels() -> Vec<(&'static str, String)> {
    vec![
        ("gemv", GemvKernel.source().complete()),
        ("dequant", DequantKernel.source().complete()),
        ("gather", GatherKernel.source().complete()),
    ]
}

/// A quantized matrix in one device buffer.
struct DeviceMatrix {
    name: String,
    ty: crate::GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    buffer_bytes: usize,
    weights: Handle,
    client: ComputeClient<WgpuRuntime>,
    device: WgpuDevice,
    max_per_dim: u32,
}

impl std::fmt::Debug for DeviceMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceMatrix")
            .field("name", &self.name)
            .field("ty", &self.ty)
            .field("rows", &self.rows)
            .field("cols", &self.cols)
            .field("buffer_bytes", &self.buffer_bytes)
            .finish()
    }
}

impl DeviceMatrix {
    fn upload(w: &QMatrix, device: &WgpuDevice) -> Result<Self, QuantError> {
        let too_large = |what: &str| QuantError::Shape {
            what: w.name().to_owned(),
            reason: format!("{what} does not fit the kernels' 32-bit indices"),
        };
        let bytes = w.bytes();
        if u32::try_from(bytes.len()).is_err() {
            return Err(too_large("the matrix's byte size"));
        }
        if u32::try_from(w.rows()).is_err() || u32::try_from(w.cols()).is_err() {
            return Err(too_large("the matrix's shape"));
        }
        // The kernels read words: pad the bytes to a whole number of them.
        let mut padded;
        let words = if bytes.len().is_multiple_of(4) {
            bytes
        } else {
            padded = Vec::with_capacity(bytes.len().next_multiple_of(4));
            padded.extend_from_slice(bytes);
            padded.resize(bytes.len().next_multiple_of(4), 0);
            &padded[..]
        };
        let client = WgpuRuntime::client(device);
        let max_per_dim = client.properties().hardware.max_cube_count.0;
        Ok(Self {
            name: w.name().to_owned(),
            ty: w.ggml_type(),
            rows: w.rows(),
            cols: w.cols(),
            row_bytes: w.row_bytes(),
            buffer_bytes: words.len(),
            weights: client.create_from_slice(words),
            client,
            device: device.clone(),
            max_per_dim,
        })
    }

    fn error(&self, reason: String) -> QuantError {
        QuantError::Shape {
            what: self.name.clone(),
            reason,
        }
    }

    /// The kernels' parameter block (see quant.wgsl) for `m` input rows, ids or chunk rows.
    fn params(&self, m: usize, groups_x: u32, first: usize) -> Handle {
        let p = [
            self.ty.id(),
            self.rows as u32,
            self.cols as u32,
            self.row_bytes as u32,
            m as u32,
            groups_x,
            first as u32,
        ];
        self.client.create_from_slice(bytemuck::cast_slice(&p))
    }

    /// Launches `kernel` over `groups` workgroups with the weights, parameters (`m`, `first`),
    /// `input` if any and a new `[out_rows, out_cols]` f32 output, returned as a burn tensor.
    fn launch<K: KernelSource>(
        &self,
        kernel: K,
        groups: usize,
        (m, first): (usize, usize),
        input: Option<Handle>,
        [out_rows, out_cols]: [usize; 2],
    ) -> Result<Tensor<Wgpu, 2>, QuantError> {
        let (gx, gy) = tributary_wgsl::fold_grid(groups, self.max_per_dim).ok_or_else(|| {
            self.error(format!("{groups} workgroups do not fit the device's grid"))
        })?;
        let out_len = out_rows
            .checked_mul(out_cols)
            .filter(|&n| u32::try_from(n).is_ok())
            .ok_or_else(|| self.error(format!("a {out_rows}×{out_cols} output is too large")))?;
        let out = self.client.empty(out_len.max(1) * size_of::<f32>());
        let buffers = [self.weights.clone(), self.params(m, gx, first)]
            .into_iter()
            .chain(input)
            .chain([out.clone()]);
        self.client.launch(
            Box::new(SourceKernel::new(kernel, CubeDim::new_1d(WORKGROUP))),
            CubeCount::Static(gx, gy, 1),
            KernelArguments::new().with_buffers(buffers.map(Handle::binding).collect()),
        );
        let out = CubeTensor::new_contiguous(
            self.client.clone(),
            self.device.clone(),
            Shape::new([out_rows, out_cols]),
            out,
            DType::F32,
        );
        Ok(Tensor::from_primitive(TensorPrimitive::Float(out)))
    }
}

impl QuantLinear<Wgpu> for DeviceMatrix {
    fn forward(&self, x: Tensor<Wgpu, 2>) -> Result<Tensor<Wgpu, 2>, QuantError> {
        let [m, cols] = x.dims();
        if cols != self.cols {
            return Err(self.error(format!(
                "x has rows of {cols} values, the matrix has {} columns",
                self.cols
            )));
        }
        let x = into_contiguous(x.into_primitive().tensor());
        if x.dtype != DType::F32 {
            return Err(self.error(format!("x is {:?}, the kernels read f32", x.dtype)));
        }
        if m == 0 {
            return Ok(Tensor::empty([0, self.rows], &self.device));
        }
        if m <= GEMV_MAX_ROWS {
            let groups = self.rows.div_ceil(GEMV_ROWS_PER_GROUP);
            return self.launch(GemvKernel, groups, (m, 0), Some(x.handle), [m, self.rows]);
        }
        let x = Tensor::<Wgpu, 2>::from_primitive(TensorPrimitive::Float(x));
        let chunk = (SCRATCH_BYTES / (self.cols * size_of::<f32>())).clamp(1, self.rows);
        let mut parts = Vec::with_capacity(self.rows.div_ceil(chunk));
        for first in (0..self.rows).step_by(chunk) {
            let n = chunk.min(self.rows - first);
            let groups = (n * self.cols).div_ceil(WORKGROUP as usize);
            let wt = self.launch(DequantKernel, groups, (n, first), None, [self.cols, n])?;
            parts.push(x.clone().matmul(wt));
        }
        Ok(Tensor::cat(parts, 1))
    }

    fn gather(&self, ids: Tensor<Wgpu, 1, Int>) -> Result<Tensor<Wgpu, 2>, QuantError> {
        let [n] = ids.dims();
        let ids = into_contiguous(ids.into_primitive());
        if ids.dtype != DType::I32 {
            return Err(self.error(format!("ids are {:?}, the kernel reads i32", ids.dtype)));
        }
        if n == 0 {
            return Ok(Tensor::empty([0, self.cols], &self.device));
        }
        let groups = (n * self.cols).div_ceil(WORKGROUP as usize);
        self.launch(
            GatherKernel,
            groups,
            (n, 0),
            Some(ids.handle),
            [n, self.cols],
        )
    }

    fn stored_bytes(&self) -> u64 {
        self.buffer_bytes as u64
    }
}

impl QuantBackend for Wgpu {
    fn quant_linear(
        w: QMatrix,
        device: &WgpuDevice,
    ) -> Result<Arc<dyn QuantLinear<Self>>, QuantError> {
        Ok(Arc::new(DeviceMatrix::upload(&w, device)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_is_valid_wgsl() {
        for (name, source) in wgsl_kernels() {
            tributary_wgsl::assert_valid_kernel(name, &source);
        }
    }
}
