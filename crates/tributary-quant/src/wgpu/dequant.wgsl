// Rows first..first + n of W dequantized into a transposed f32 chunk, out[k, j] = W[first + j, k]
// (`[cols, n]`, what a matmul x·chunk takes as is): prefill multiplies many input rows with each
// weight, so decoding a chunk once and handing it to burn's tuned matmul beats decoding inside
// a hand-written GEMM (measured on lavapipe, 45 rows × the 49,152×576 Q4_1 lm_head: 22.4 s with a
// fused 16×16-tile GEMM, 4.2 s this way, of which 2.2 s is the f32 matmul). One element per
// invocation, no barriers.

@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let p = uniform_params(lid);
    let e = group_index(wid, p.groups_x) * 256u + lid;
    if (e < p.m * p.cols) {
        let j = e % p.m;
        out[e] = dequant(p.ty, (p.first + j) * p.row_bytes, e / p.m);
    }
}
