//! The CPU kernel: each output row's dot product decoded block by block from the quantized
//! bytes, never from an f32 copy of the matrix.
//!
//! Decode (`x` of one to three rows) fuses dequantization into the dot product: for a Q4_1
//! block, `Σ (d·q + m)·x = d·Σ q·x + m·Σ x`, with `Σ x` per block computed once per input row and
//! shared by every output row. Prefill (more rows) dequantizes each weight row once into a small
//! scratch buffer and dots it with every input row, so the decoding cost is paid once per
//! weight row instead of once per token.
//!
//! The loops are written over fixed-width lanes so LLVM vectorizes them; natively the same code
//! is compiled a second time with AVX2 and FMA enabled and picked at run time (the baseline
//! x86-64 build has neither), and on wasm32 the `simd128` target feature vectorizes it. Output
//! rows are split over rayon's pool natively. Each output value is computed by one thread in a
//! fixed order, so results are bit-identical from run to run and for any thread count; they
//! differ in the last bits between a machine with FMA and one without.

use half::f16;
#[cfg(not(target_arch = "wasm32"))]
use rayon::prelude::*;

use crate::{GgmlType, QMatrix, QuantError};

/// Accumulator width: one AVX2 register of f32, two of `simd128`.
const LANES: usize = 8;

/// Up to this many input rows, dequantization is fused into each dot product.
const FUSED_MAX_ROWS: usize = 3;

/// `y = x·Wᵀ`: `x` is `[m, w.cols()]`, `y` `[m, w.rows()]`, both row-major. Uses rayon's current
/// pool natively (run it inside `ThreadPool::install` to choose the thread count).
pub fn matmul(x: &[f32], w: &QMatrix, y: &mut [f32]) -> Result<(), QuantError> {
    let m = w.check(x, y)?;
    let sums = block_sums(w.ty, x);
    if m == 1 {
        rows(x, &sums, 1, w, y);
        return Ok(());
    }
    // Output rows are computed into `[rows, m]` so each task owns a contiguous piece, then
    // transposed into `y`.
    let mut yt = vec![0f32; y.len()];
    rows(x, &sums, m, w, &mut yt);
    for (r, col) in yt.chunks_exact(m).enumerate() {
        for (i, &v) in col.iter().enumerate() {
            y[i * w.rows + r] = v;
        }
    }
    Ok(())
}

/// [`matmul`] on a new pool of `threads` threads natively (for comparing thread counts; the
/// model uses [`matmul`] on the global pool); on wasm32 the same as [`matmul`].
pub fn matmul_threads(
    x: &[f32],
    w: &QMatrix,
    y: &mut [f32],
    threads: usize,
) -> Result<(), QuantError> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .map_err(|e| QuantError::Shape {
                what: w.name.clone(),
                reason: format!("cannot start {threads} threads: {e}"),
            })?;
        pool.install(|| matmul(x, w, y))
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = threads;
        matmul(x, w, y)
    }
}

/// `Σ x` over each 32-element block of each input row, for the types with an offset term.
fn block_sums(ty: GgmlType, x: &[f32]) -> Vec<f32> {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 => x.chunks_exact(32).map(|b| hsum(lanes_sum(b))).collect(),
        _ => Vec::new(),
    }
}

fn lanes_sum(b: &[f32]) -> [f32; LANES] {
    let mut acc = [0f32; LANES];
    for chunk in b.chunks_exact(LANES) {
        for l in 0..LANES {
            acc[l] += chunk[l];
        }
    }
    acc
}

/// Computes every output row into `out` (`[rows, m]`), splitting them over threads.
fn rows(x: &[f32], sums: &[f32], m: usize, w: &QMatrix, out: &mut [f32]) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let n = out.len() / m;
        let threads = rayon::current_num_threads();
        // A few tasks per thread for balance, but whole rows of work each.
        let per_task = n.div_ceil(threads * 4).max(16);
        if threads > 1 && n > per_task {
            out.par_chunks_mut(per_task * m)
                .enumerate()
                .for_each(|(t, chunk)| dispatch(x, sums, m, w, chunk, t * per_task));
            return;
        }
    }
    dispatch(x, sums, m, w, out, 0);
}

/// Output rows `first..` into `out`, on this thread.
fn dispatch(x: &[f32], sums: &[f32], m: usize, w: &QMatrix, out: &mut [f32], first: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the two features the function is compiled for were detected on this CPU.
        #[allow(unsafe_code)]
        unsafe {
            rows_avx2(x, sums, m, w, out, first)
        };
        return;
    }
    #[cfg(target_arch = "wasm32")]
    rows_simd128(x, sums, m, w, out, first);
    #[cfg(not(target_arch = "wasm32"))]
    rows_with::<Plain>(x, sums, m, w, out, first);
}

/// WebAssembly SIMD, which every engine the tab and the edge run on has; an engine without it
/// refuses the whole module when it is loaded (wasm has no run-time feature detection), so only
/// the modules that contain these kernels need it: the wallet verifier stays plain wasm32.
#[cfg(target_arch = "wasm32")]
#[target_feature(enable = "simd128")]
fn rows_simd128(x: &[f32], sums: &[f32], m: usize, w: &QMatrix, out: &mut [f32], first: usize) {
    rows_with::<Plain>(x, sums, m, w, out, first);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn rows_avx2(x: &[f32], sums: &[f32], m: usize, w: &QMatrix, out: &mut [f32], first: usize) {
    rows_with::<Fused>(x, sums, m, w, out, first);
}

/// `a·b + c`, rounded once where the CPU has FMA and twice where it has not (a software fused
/// multiply-add would be slower than both).
trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

struct Plain;
impl MulAdd for Plain {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

#[cfg(target_arch = "x86_64")]
struct Fused;
#[cfg(target_arch = "x86_64")]
impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

#[inline(always)]
fn rows_with<F: MulAdd>(
    x: &[f32],
    sums: &[f32],
    m: usize,
    w: &QMatrix,
    out: &mut [f32],
    first: usize,
) {
    let cols = w.cols;
    let fused =
        m <= FUSED_MAX_ROWS && matches!(w.ty, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0);
    if fused {
        let per_row = cols / 32;
        for (k, o) in out.chunks_exact_mut(m).enumerate() {
            let row = w.row(first + k);
            for (i, o) in o.iter_mut().enumerate() {
                let xi = &x[i * cols..(i + 1) * cols];
                let si = sums.get(i * per_row..(i + 1) * per_row).unwrap_or(&[]);
                *o = match w.ty {
                    // Q4_1 `{f16 d; f16 m; u8 qs[16]}`: x = d·q + m.
                    GgmlType::Q4_1 => dot_q4::<F, 20>(row, xi, si, |b, _| f16_at(b, 2)),
                    // Q4_0 `{f16 d; u8 qs[16]}`: x = d·(q − 8) = d·q − 8·d.
                    GgmlType::Q4_0 => dot_q4::<F, 18>(row, xi, si, |_, d| -8.0 * d),
                    _ => dot_q8_0::<F>(row, xi),
                };
            }
        }
        return;
    }
    let mut scratch = vec![0f32; cols];
    for (k, o) in out.chunks_exact_mut(m).enumerate() {
        // Cannot fail: the matrix's type, row length and byte count were checked in `new`.
        tributary_gguf::dequantize_into(w.ty, w.row(first + k), &mut scratch)
            .expect("QMatrix rows are whole blocks");
        for (i, o) in o.iter_mut().enumerate() {
            *o = dot_f32::<F>(&scratch, &x[i * cols..(i + 1) * cols]);
        }
    }
}

/// Pairwise, in a fixed order.
#[inline(always)]
fn hsum(a: [f32; LANES]) -> f32 {
    ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
}

#[inline(always)]
fn dot_f32<F: MulAdd>(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    for (a, b) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] = F::mul_add(a[l], b[l], acc[l]);
        }
    }
    let tail = a.len() / LANES * LANES;
    let mut s = hsum(acc);
    for (a, b) in a[tail..].iter().zip(&b[tail..]) {
        s = F::mul_add(*a, *b, s);
    }
    s
}

#[inline(always)]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// `Σ_k q_k·x_k` of one block's sixteen nibble bytes: element j is byte j's low nibble, element
/// j + 16 its high nibble (ggml's order), accumulated per lane.
#[inline(always)]
fn nibbles_dot<F: MulAdd>(qs: &[u8], x: &[f32]) -> [f32; LANES] {
    let mut s = [0f32; LANES];
    for k in 0..2 {
        for l in 0..LANES {
            let q = qs[k * LANES + l];
            s[l] = F::mul_add(f32::from(q & 0x0F), x[k * LANES + l], s[l]);
            s[l] = F::mul_add(f32::from(q >> 4), x[16 + k * LANES + l], s[l]);
        }
    }
    s
}

/// The 4-bit types, blocks of `BLOCK` bytes ending in sixteen nibble bytes after their f16
/// fields: `Σ (d·q + o)·x = d·Σ q·x + o·Σ x`, with each block's offset `o` given by `offset(block,
/// d)` and `Σ x` per block precomputed in `sums`.
#[inline(always)]
fn dot_q4<F: MulAdd, const BLOCK: usize>(
    row: &[u8],
    x: &[f32],
    sums: &[f32],
    offset: impl Fn(&[u8], f32) -> f32,
) -> f32 {
    let mut total = [0f32; LANES];
    let mut offsets = 0f32;
    for ((b, xb), &sx) in row.chunks_exact(BLOCK).zip(x.chunks_exact(32)).zip(sums) {
        let s = nibbles_dot::<F>(&b[BLOCK - 16..], xb);
        let d = f16_at(b, 0);
        for l in 0..LANES {
            total[l] = F::mul_add(d, s[l], total[l]);
        }
        offsets = F::mul_add(offset(b, d), sx, offsets);
    }
    hsum(total) + offsets
}

/// Q8_0 `{f16 d; i8 qs[32]}`: `Σ d·q·x`.
#[inline(always)]
fn dot_q8_0<F: MulAdd>(row: &[u8], x: &[f32]) -> f32 {
    let mut total = [0f32; LANES];
    for (b, xb) in row.chunks_exact(34).zip(x.chunks_exact(32)) {
        let mut s = [0f32; LANES];
        for k in 0..4 {
            for l in 0..LANES {
                let q = b[2 + k * LANES + l] as i8;
                s[l] = F::mul_add(f32::from(q), xb[k * LANES + l], s[l]);
            }
        }
        let d = f16_at(b, 0);
        for l in 0..LANES {
            total[l] = F::mul_add(d, s[l], total[l]);
        }
    }
    hsum(total)
}
