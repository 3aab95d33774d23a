//! The WGSL kernels of `tributary-sgmv` (matvec), against the same CPU references the native
//! tests use.

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
