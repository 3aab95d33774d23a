//! Criterion timings of the SGMV scenarios (see `tributary_bench::sgmv`) on the default wgpu
//! adapter — lavapipe here with `VK_ICD_FILENAMES` pointed at it, a real GPU elsewhere.
//! `cargo xtask bench sgmv` prints the same scenarios as a report with ratios.

use criterion::{Criterion, criterion_group, criterion_main};

fn sgmv(c: &mut Criterion) {
    let device = burn::backend::wgpu::WgpuDevice::default();
    let mut group = c.benchmark_group("sgmv h2048 r16");
    group.sample_size(20);
    for scenario in tributary_bench::sgmv::all(&device) {
        scenario.run(); // compile the pipelines outside the measurement
        group.bench_function(&scenario.name, |b| b.iter(|| scenario.run()));
    }
    group.finish();
}

criterion_group!(benches, sgmv);
criterion_main!(benches);
