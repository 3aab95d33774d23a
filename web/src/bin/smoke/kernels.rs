//! The WGSL kernels of `tributary-sgmv` (matvec), against the same CPU references the native
//! tests use; and the complete source of every kernel that cubecl launches, for the browser's own
//! WGSL compiler to check.

use std::rc::Rc;

use js_sys::{Float32Array, Promise};
use tributary_sgmv::{GpuContext, Matvec, matvec};
use wasm_bindgen::prelude::*;

struct Kernels {
    ctx: GpuContext,
    matvec: Matvec,
}

/// A WebGPU device with the kernels compiled on it.
#[wasm_bindgen]
pub struct Gpu {
    // Rc because each returned Promise owns a handle to the device while it runs.
    kernels: Rc<Kernels>,
}

#[wasm_bindgen]
impl Gpu {
    /// Opens the browser's WebGPU adapter with its real limits and compiles the kernels.
    pub async fn create() -> Result<Gpu, JsError> {
        let ctx = GpuContext::new().await?;
        let matvec = Matvec::new(&ctx);
        Ok(Gpu {
            kernels: Rc::new(Kernels { ctx, matvec }),
        })
    }

    /// The adapter's description (browsers may leave parts of it empty for privacy).
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        let info = &self.kernels.ctx.info;
        format!("{} {} ({:?})", info.vendor, info.name, info.backend)
    }

    #[wasm_bindgen(getter, js_name = maxStorageBufferBindingSize)]
    pub fn max_storage_buffer_binding_size(&self) -> f64 {
        self.kernels.ctx.limits.max_storage_buffer_binding_size as f64
    }

    /// y = W·x on the GPU (W row-major, rows × cols); resolves to a Float32Array.
    pub fn matvec(&self, w: Vec<f32>, x: Vec<f32>, rows: usize, cols: usize) -> Promise {
        let kernels = Rc::clone(&self.kernels);
        wasm_bindgen_futures::future_to_promise(async move {
            let y = kernels
                .matvec
                .run(&kernels.ctx, &w, &x, rows, cols)
                .await
                .map_err(|e| JsError::new(&e.to_string()))?;
            Ok(Float32Array::from(y.as_slice()).into())
        })
    }
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.adapter())
            .finish()
    }
}

/// The CPU reference of `matvec`, the same Rust the native tests compare against.
#[wasm_bindgen(js_name = matvecReference)]
pub fn matvec_reference(
    w: &[f32],
    x: &[f32],
    rows: usize,
    cols: usize,
) -> Result<Vec<f32>, JsError> {
    Ok(matvec::reference(w, x, rows, cols)?)
}

/// Largest per-row error of `got` against the reference, scaled by Σ|w_ij·x_j|.
#[wasm_bindgen(js_name = maxRelativeError)]
pub fn max_relative_error(
    got: &[f32],
    w: &[f32],
    x: &[f32],
    rows: usize,
    cols: usize,
) -> Result<f64, JsError> {
    Ok(matvec::max_relative_error(got, w, x, rows, cols)?)
}

/// `[[name, source], …]` of every kernel tributary-sgmv and tributary-quant launch through
/// cubecl. cubecl only logs a kernel that fails to compile, after which its launches do nothing;
/// Chrome's Tint rejects some WGSL that naga (the native suites' check) accepts — a constant NaN
/// made every embedding in the tab read as zero — so the browser suite compiles each here.
#[wasm_bindgen(js_name = wgslKernels)]
pub fn wgsl_kernels() -> js_sys::Array {
    let named = |crate_name: &'static str| {
        move |(kernel, source): (&str, String)| {
            let pair = js_sys::Array::of2(&format!("{crate_name}/{kernel}").into(), &source.into());
            JsValue::from(pair)
        }
    };
    tributary_sgmv::wgsl_kernels()
        .into_iter()
        .map(named("tributary-sgmv"))
        .chain(
            tributary_quant::wgsl_kernels()
                .into_iter()
                .map(named("tributary-quant")),
        )
        .collect()
}
