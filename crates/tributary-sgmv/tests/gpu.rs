//! The WGSL matvec against its CPU reference on a real wgpu device (lavapipe in CI).

use rand::{Rng, SeedableRng, rngs::StdRng};
use tributary_sgmv::{GpuContext, GpuError, Matvec, matvec};

fn random(len: usize, rng: &mut StdRng) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn context() -> GpuContext {
    let ctx = pollster::block_on(GpuContext::new()).expect("a wgpu adapter (lavapipe in CI)");
    eprintln!("adapter: {} ({:?})", ctx.info.name, ctx.info.backend);
    ctx
}

#[test]
fn matvec_matches_cpu_reference_on_odd_shapes() {
    let ctx = context();
    let kernel = Matvec::new(&ctx);
    let mut rng = StdRng::seed_from_u64(0x7b1b);
    // Odd sizes on purpose: partial tiles, partial row groups, one row, one column, and enough
    // rows (> 65,535 × 4) that the grid needs its second dimension.
    for (rows, cols) in [(1, 2049), (67, 129), (5, 1), (257, 300), (262_147, 3)] {
        let w = random(rows * cols, &mut rng);
        let x = random(cols, &mut rng);
        let y = pollster::block_on(kernel.run(&ctx, &w, &x, rows, cols)).unwrap();
        let err = matvec::max_relative_error(&y, &w, &x, rows, cols).unwrap();
        assert!(err <= 1e-5, "{rows}×{cols}: max relative error {err:e}");
    }
}

#[test]
fn same_inputs_give_identical_bits() {
    let ctx = context();
    let kernel = Matvec::new(&ctx);
    let mut rng = StdRng::seed_from_u64(7);
    let (rows, cols) = (67, 2049);
    let w = random(rows * cols, &mut rng);
    let x = random(cols, &mut rng);
    let first = pollster::block_on(kernel.run(&ctx, &w, &x, rows, cols)).unwrap();
    let second = pollster::block_on(kernel.run(&ctx, &w, &x, rows, cols)).unwrap();
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&first), bits(&second));
}

#[test]
fn device_is_opened_with_the_adapters_real_limits() {
    let ctx = context();
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle().with_env());
    let adapter = pollster::block_on(wgpu::util::initialize_adapter_from_env_or_default(
        &instance, None,
    ))
    .unwrap();
    assert_eq!(adapter.get_info().name, ctx.info.name);
    assert_eq!(ctx.limits, adapter.limits());
    // And they are not wgpu's conservative defaults, which cap e.g. buffers at 256 MiB.
    assert!(ctx.limits.max_buffer_size > wgpu::Limits::default().max_buffer_size);
}

#[test]
fn bad_shapes_are_rejected_before_dispatch() {
    let ctx = context();
    let kernel = Matvec::new(&ctx);
    let err = pollster::block_on(kernel.run(&ctx, &[0.0; 10], &[0.0; 4], 3, 4)).unwrap_err();
    assert!(
        matches!(
            err,
            GpuError::Shape {
                argument: "w",
                expected: 12,
                got: 10
            }
        ),
        "{err}"
    );
}
