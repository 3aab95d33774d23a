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
#[ignore = "needs a wgpu device: the lavapipe suite of `cargo xtask test` runs it"]
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
#[ignore = "needs a wgpu device: the lavapipe suite of `cargo xtask test` runs it"]
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
#[ignore = "needs a wgpu device: the lavapipe suite of `cargo xtask test` runs it"]
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
#[ignore = "needs a wgpu device: the lavapipe suite of `cargo xtask test` runs it"]
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

// ---- SGMV on burn's Wgpu backend ------------------------------------------------------------

mod sgmv {
    use burn::backend::Wgpu;
    use burn::backend::wgpu::WgpuDevice;
    use burn::tensor::{Tensor, TensorData};
    use tributary_sgmv::cases::{Case, CaseSpec, Popularity};
    use tributary_sgmv::{AdapterId, AdapterPool, PoolOptions, SgmvBackend, WgpuPool};

    const RANKS: [usize; 5] = [1, 8, 16, 64, 128];

    fn tensor(v: &[f32], shape: [usize; 2], device: &WgpuDevice) -> Tensor<Wgpu, 2> {
        Tensor::from_data(TensorData::new(v.to_vec(), shape), device)
    }

    fn upload(pool: &WgpuPool, case: &Case) -> Vec<AdapterId> {
        case.adapters
            .iter()
            .map(|a| pool.insert(a).unwrap())
            .collect()
    }

    /// The case's x and base y on the device.
    fn inputs(case: &Case, device: &WgpuDevice) -> (Tensor<Wgpu, 2>, Tensor<Wgpu, 2>) {
        (
            tensor(&case.x, [case.rows, case.fan_in], device),
            tensor(&case.y0, [case.rows, case.fan_out], device),
        )
    }

    /// Uploads the case's adapters, runs SGMV once, reads y back; leaves the pool as it was.
    fn run(pool: &WgpuPool, case: &Case, device: &WgpuDevice) -> Vec<f32> {
        let ids = upload(pool, case);
        let (x, y) = inputs(case, device);
        let y = Wgpu::sgmv(pool, x, y, &case.segments(&ids), Case::KEY).unwrap();
        let out = y.into_data().to_vec::<f32>().unwrap();
        for id in ids {
            assert!(pool.remove(id));
        }
        out
    }

    fn spec(rows: usize, (fan_in, fan_out): (usize, usize), popularity: Popularity) -> CaseSpec {
        CaseSpec {
            rows,
            fan_in,
            fan_out,
            ranks: RANKS.to_vec(),
            popularity,
            base_only_every: Some(5),
            seed: (rows * 7919 + fan_in) as u64,
        }
    }

    #[test]
    #[ignore = "needs a wgpu device: the lavapipe suite of `cargo xtask test` runs it"]
    fn kernels_match_the_cpu_reference_over_the_matrix() {
        let device = WgpuDevice::default();
        let pool = Wgpu::new_pool(&device, PoolOptions::default()).unwrap();
        let mut worst = 0.0f64;
        for rows in [1, 3, 32, 67] {
            for dims in [(64, 64), (2049, 2049), (64, 2049)] {
                for popularity in Popularity::ALL {
                    let case = Case::new(&spec(rows, dims, popularity));
                    let err = case.error(&run(&pool, &case, &device)).unwrap();
                    assert!(
                        err <= 1e-4,
                        "{rows} rows, {dims:?}, {popularity:?}: relative error {err:e}"
                    );
                    worst = worst.max(err);
                }
            }
        }
        eprintln!("worst relative error over the matrix: {worst:e}");
        assert_eq!(pool.resident_bytes(), 0);
    }

    #[test]
    #[ignore = "needs a wgpu device: the lavapipe suite of `cargo xtask test` runs it"]
    fn rows_without_an_adapter_keep_the_base_output_bit_for_bit() {
        let device = WgpuDevice::default();
        let pool = Wgpu::new_pool(&device, PoolOptions::default()).unwrap();
        let case = Case::new(&spec(32, (64, 2049), Popularity::Uniform));
        let got = run(&pool, &case, &device);
        for (row, adapter) in case.row_adapter.iter().enumerate() {
            if adapter.is_none() {
                let at = row * case.fan_out..(row + 1) * case.fan_out;
                assert_eq!(&got[at.clone()], &case.y0[at], "row {row}");
            }
        }
    }

    #[test]
    #[ignore = "needs a wgpu device: the lavapipe suite of `cargo xtask test` runs it"]
    fn the_same_batch_gives_identical_bits() {
        let device = WgpuDevice::default();
        let pool = Wgpu::new_pool(&device, PoolOptions::default()).unwrap();
        let case = Case::new(&spec(67, (2049, 2049), Popularity::Zipf));
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let first = bits(run(&pool, &case, &device));
        let second = bits(run(&pool, &case, &device));
        assert!(first == second, "two runs of one batch differ");
    }

    #[test]
    #[ignore = "needs a wgpu device: the lavapipe suite of `cargo xtask test` runs it"]
    fn a_pool_over_the_binding_limit_is_split_across_bindings() {
        let device = WgpuDevice::default();
        // 2 MiB bindings, 8 MiB of pool: four chunks. 32 adapters of ranks 1, 8 and 16 over
        // 2049-wide vectors (9 pages each way) take ~4.7 MiB of pages: three chunks.
        let options = PoolOptions {
            capacity_bytes: 8 << 20,
            max_binding_bytes: Some(2 << 20),
            ..PoolOptions::default()
        };
        let pool = Wgpu::new_pool(&device, options).unwrap();
        let mut s = spec(32, (2049, 2049), Popularity::Distinct);
        s.ranks = vec![1, 8, 16];
        let case = Case::new(&s);
        let ids = upload(&pool, &case);
        let (geometry, in_use) = pool.geometry();
        assert_eq!(geometry.chunk_bytes(), 2 << 20);
        assert!(in_use >= 3, "only {in_use} chunk(s) in use");
        let (x, y) = inputs(&case, &device);
        let y = Wgpu::sgmv(&pool, x, y, &case.segments(&ids), Case::KEY).unwrap();
        let err = case.error(&y.into_data().to_vec::<f32>().unwrap()).unwrap();
        assert!(
            err <= 1e-4,
            "relative error {err:e} across {in_use} bindings"
        );
        // And a pool that cannot take more says so instead of failing on the device.
        let mut s = spec(1, (2049, 2049), Popularity::Identical);
        s.ranks = vec![128];
        let big = Case::new(&s);
        let mut refused = None;
        for _ in 0..8 {
            if let Err(e) = pool.insert(&big.adapters[0]) {
                refused = Some(e);
                break;
            }
        }
        assert!(
            matches!(refused, Some(tributary_sgmv::SgmvError::PoolFull { .. })),
            "{refused:?}"
        );
    }

    #[test]
    #[ignore = "needs a wgpu device: the lavapipe suite of `cargo xtask test` runs it"]
    fn work_beyond_one_grid_row_folds_into_the_second_dimension() {
        let device = WgpuDevice::default();
        // At most 7 workgroups per dimension: 3 rows × 9 output tiles = 27 expand items need a
        // 7 × 4 grid.
        let options = PoolOptions {
            max_workgroups_per_dim: Some(7),
            ..PoolOptions::default()
        };
        let pool = Wgpu::new_pool(&device, options).unwrap();
        let case = Case::new(&spec(3, (64, 2049), Popularity::Distinct));
        let err = case.error(&run(&pool, &case, &device)).unwrap();
        assert!(err <= 1e-4, "relative error {err:e} on a folded grid");
        // 67 rows need 603 expand items, over 7 × 7: refused before anything is launched.
        let case = Case::new(&spec(67, (64, 2049), Popularity::Distinct));
        let ids = upload(&pool, &case);
        let (x, y) = inputs(&case, &device);
        let err = Wgpu::sgmv(&pool, x, y, &case.segments(&ids), Case::KEY).unwrap_err();
        assert!(err.to_string().contains("grid"), "{err}");
    }

    #[test]
    #[ignore = "needs a wgpu device: the lavapipe suite of `cargo xtask test` runs it"]
    fn a_shared_y_is_not_written_through() {
        let device = WgpuDevice::default();
        let pool = Wgpu::new_pool(&device, PoolOptions::default()).unwrap();
        let case = Case::new(&spec(3, (64, 64), Popularity::Identical));
        let ids = upload(&pool, &case);
        let (x, y) = inputs(&case, &device);
        let kept = y.clone();
        let _ = Wgpu::sgmv(&pool, x, y, &case.segments(&ids), Case::KEY).unwrap();
        assert_eq!(kept.into_data().to_vec::<f32>().unwrap(), case.y0);
    }
}
