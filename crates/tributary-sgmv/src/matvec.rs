//! y = W·x, the first kernel: the smallest complete GPU path (upload, dispatch within the device's
//! grid limits, asynchronous readback) that the SGMV shrink/expand kernels build on.

use wgpu::util::DeviceExt;

use crate::{GpuContext, GpuError};

const SHADER: &str = include_str!("matvec.wgsl");
/// Must match `ROWS_PER_GROUP` and `@workgroup_size` in `matvec.wgsl`.
const ROWS_PER_GROUP: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    groups_x: u32,
    _pad: u32,
}

/// The compiled matvec pipeline; build once per device and reuse.
#[derive(Debug)]
pub struct Matvec {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

impl Matvec {
    pub fn new(ctx: &GpuContext) -> Self {
        let module = ctx
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("matvec.wgsl"),
                source: wgpu::ShaderSource::Wgsl(SHADER.into()),
            });
        let pipeline = ctx
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("matvec"),
                layout: None,
                module: &module,
                entry_point: Some("matvec"),
                compilation_options: Default::default(),
                cache: None,
            });
        let layout = pipeline.get_bind_group_layout(0);
        Self { pipeline, layout }
    }

    /// Computes y = W·x on the GPU. `w` is row-major, `rows × cols`.
    pub async fn run(
        &self,
        ctx: &GpuContext,
        w: &[f32],
        x: &[f32],
        rows: usize,
        cols: usize,
    ) -> Result<Vec<f32>, GpuError> {
        check_shapes(w, x, rows, cols)?;
        let max_binding = ctx.limits.max_storage_buffer_binding_size;
        let w_bytes = std::mem::size_of_val(w) as u64;
        if w_bytes > max_binding {
            return Err(GpuError::TooLarge {
                argument: "w",
                bytes: w_bytes,
                limit: max_binding,
            });
        }
        let (groups_x, groups_y) = grid(rows, ctx.limits.max_compute_workgroups_per_dimension)?;
        let params = Params {
            rows: rows as u32,
            cols: cols as u32,
            groups_x,
            _pad: 0,
        };

        let device = &ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let storage = |label, contents: &[f32]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(contents),
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        let w_buf = storage("matvec.w", w);
        let x_buf = storage("matvec.x", x);
        let params_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("matvec.params"),
            contents: bytemuck::bytes_of(&params),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let y_bytes = (rows * size_of::<f32>()) as u64;
        let y_buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("matvec.y"),
            size: y_bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("matvec.readback"),
            size: y_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("matvec"),
            layout: &self.layout,
            entries: &[
                entry(0, &params_buf),
                entry(1, &w_buf),
                entry(2, &x_buf),
                entry(3, &y_buf),
            ],
        });

        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(groups_x, groups_y, 1);
        }
        encoder.copy_buffer_to_buffer(&y_buf, 0, &readback, 0, y_bytes);
        ctx.queue.submit([encoder.finish()]);
        if let Some(error) = scope.pop().await {
            return Err(GpuError::Device(error.to_string()));
        }
        ctx.read_f32(&readback).await
    }
}

fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}

fn check_shapes(w: &[f32], x: &[f32], rows: usize, cols: usize) -> Result<(), GpuError> {
    if rows == 0 {
        return Err(GpuError::Empty { argument: "rows" });
    }
    if cols == 0 {
        return Err(GpuError::Empty { argument: "cols" });
    }
    if x.len() != cols {
        return Err(GpuError::Shape {
            argument: "x",
            expected: cols,
            got: x.len(),
        });
    }
    let expected = rows.checked_mul(cols).ok_or(GpuError::TooLarge {
        argument: "w",
        bytes: u64::MAX,
        limit: u64::from(u32::MAX),
    })?;
    if w.len() != expected {
        return Err(GpuError::Shape {
            argument: "w",
            expected,
            got: w.len(),
        });
    }
    Ok(())
}

/// Row groups laid out within the device's per-dimension grid limit (65,535 on WebGPU).
fn grid(rows: usize, max_per_dim: u32) -> Result<(u32, u32), GpuError> {
    tributary_wgsl::fold_grid(rows.div_ceil(ROWS_PER_GROUP as usize), max_per_dim).ok_or(
        GpuError::TooLarge {
            argument: "rows",
            bytes: rows as u64,
            limit: u64::from(max_per_dim).pow(2) * u64::from(ROWS_PER_GROUP),
        },
    )
}

/// CPU reference: each dot product accumulated in f64, then rounded once to f32, so it is more
/// accurate than any f32 kernel and the comparison measures the kernel's error alone.
pub fn reference(w: &[f32], x: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>, GpuError> {
    check_shapes(w, x, rows, cols)?;
    Ok(w.chunks_exact(cols)
        .map(|row| {
            row.iter()
                .zip(x)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum::<f64>() as f32
        })
        .collect())
}

/// Largest error of `got` against the reference, each row's error divided by Σ|w_ij·x_j|.
///
/// That sum is the natural scale of a dot product's rounding error (a rounding bound is
/// proportional to it), so rows whose exact value happens to be near zero are not penalised.
pub fn max_relative_error(
    got: &[f32],
    w: &[f32],
    x: &[f32],
    rows: usize,
    cols: usize,
) -> Result<f64, GpuError> {
    let want = reference(w, x, rows, cols)?;
    if got.len() != rows {
        return Err(GpuError::Shape {
            argument: "got",
            expected: rows,
            got: got.len(),
        });
    }
    let scales = w.chunks_exact(cols).map(|row| {
        row.iter()
            .zip(x)
            .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
            .sum::<f64>()
    });
    Ok(crate::reference::worst_scaled_error(
        got.iter()
            .zip(&want)
            .zip(scales)
            .map(|((&g, &r), s)| (g, r, s)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_matches_hand_computed_product() {
        // [[1 2 3], [4 5 6]] · [1, 0, -1] = [-2, -2]
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let y = reference(&w, &[1.0, 0.0, -1.0], 2, 3).unwrap();
        assert_eq!(y, vec![-2.0, -2.0]);
    }

    #[test]
    fn shapes_are_checked_and_named() {
        let err = reference(&[1.0; 5], &[1.0; 3], 2, 3).unwrap_err();
        assert!(matches!(
            err,
            GpuError::Shape {
                argument: "w",
                expected: 6,
                got: 5
            }
        ));
        let err = reference(&[1.0; 6], &[1.0; 2], 2, 3).unwrap_err();
        assert!(matches!(
            err,
            GpuError::Shape {
                argument: "x",
                expected: 3,
                got: 2
            }
        ));
        let err = reference(&[], &[], 0, 3).unwrap_err();
        assert!(matches!(err, GpuError::Empty { argument: "rows" }));
    }

    #[test]
    fn grid_respects_the_per_dimension_limit() {
        assert_eq!(grid(1, 65_535).unwrap(), (1, 1));
        assert_eq!(grid(67, 65_535).unwrap(), (17, 1));
        // 262,147 rows → 65,537 groups: two rows of the grid.
        assert_eq!(grid(262_147, 65_535).unwrap(), (65_535, 2));
        assert!(grid(usize::MAX / 2, 16).is_err());
    }

    #[test]
    fn relative_error_flags_wrong_and_nan_rows() {
        let w = [1.0, 2.0, 3.0, 4.0];
        let x = [1.0, 1.0];
        assert_eq!(max_relative_error(&[3.0, 7.0], &w, &x, 2, 2).unwrap(), 0.0);
        assert!(max_relative_error(&[3.0, 0.0], &w, &x, 2, 2).unwrap() > 0.9);
        assert!(
            max_relative_error(&[f32::NAN, 7.0], &w, &x, 2, 2)
                .unwrap()
                .is_infinite()
        );
    }
}
