// y = x·Wᵀ for a few input rows (decode): m ≤ MAX_M rows of x, one output row per LANES
// invocations, ROWS output rows per workgroup. Each lane walks every LANES-th element of its
// weight row, dequantizing each once and multiplying it with all m input rows; a fixed-shape
// tree sums the lanes. No atomics, and every sum's order depends only on the shapes: the same
// inputs give the same bits.

@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const LANES: u32 = 32u;
const ROWS: u32 = 8u; // 256 / LANES
const MAX_M: u32 = 8u;

var<workgroup> partial: array<array<f32, 8>, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let p = uniform_params(lid);
    let r = group_index(wid, p.groups_x) * ROWS + lid / LANES;
    let lane = lid % LANES;
    let m = min(p.m, MAX_M);
    var acc: array<f32, 8>;
    if (r < p.rows) {
        let row = r * p.row_bytes;
        for (var k = lane; k < p.cols; k += LANES) {
            let v = dequant(p.ty, row, k);
            for (var i = 0u; i < m; i++) {
                acc[i] += v * x[i * p.cols + k];
            }
        }
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s = s >> 1u) {
        if (lane < s) {
            for (var i = 0u; i < MAX_M; i++) {
                partial[lid][i] += partial[lid + s][i];
            }
        }
        workgroupBarrier();
    }
    if (lane == 0u && r < p.rows) {
        for (var i = 0u; i < m; i++) {
            y[i * p.rows + r] = partial[lid][i];
        }
    }
}
