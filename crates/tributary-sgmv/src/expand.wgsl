// SGMV expand: y += scale · Bᵀ-rows · v, for every row of every segment that has an adapter.
//
// One workgroup per work item: up to 4 rows of one segment × one page-wide tile of outputs,
// one invocation per output column. For each rank index j an invocation reads its column's value
// in page j of Bᵀ (contiguous across the invocations) and the rows' rank values (the same address
// for all, served by the cache) and feeds every row; no workgroup memory, no barriers. Each y
// element is owned by exactly one invocation, which sums over j in order: no atomics, the same
// bits on every run. Rows of segments without an adapter are not touched.
//
// plan: see shrink.wgsl; expand item (4): [segment, first row in segment, rows, output tile];
//   Bᵀ table: rank × pages_out page ids.

@group(0) @binding(4) var<storage, read_write> plan: array<u32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let item = item_index(wid, plan[8]);
    if (item >= plan[6]) {
        return;
    }
    let it = plan[10] + item * 4u;
    let seg = plan[11] + plan[it] * 8u;
    let out_dim = plan[1];
    let tile = plan[it + 3u];
    let o = tile * PAGE + lid;
    if (o >= out_dim) {
        return;
    }
    let pages_out = plan[3];
    let pages_per_chunk = plan[4];
    let rank = plan[seg + 2u];
    let rows = plan[it + 2u];
    let row0 = plan[it + 1u];
    let y_row = plan[seg] + row0;
    let v_base = plan[seg + 3u] + row0 * rank;
    let bt_table = plan[seg + 6u];
    let scale = bitcast<f32>(plan[seg + 4u]);

    // Rows as the lanes of a vec4, rows past the tile repeating its last (see shrink.wgsl).
    let last = rows - 1u;
    let v1 = v_base + min(1u, last) * rank;
    let v2 = v_base + min(2u, last) * rank;
    let v3 = v_base + min(3u, last) * rank;
    var acc = vec4<f32>(0.0);
    if (rows == 1u) {
        for (var j = 0u; j < rank; j++) {
            let page = plan[bt_table + j * pages_out + tile];
            acc.x += v[v_base + j] * pool_load(page, pages_per_chunk, lid);
        }
    } else {
        for (var j = 0u; j < rank; j++) {
            let page = plan[bt_table + j * pages_out + tile];
            let vs = vec4<f32>(v[v_base + j], v[v1 + j], v[v2 + j], v[v3 + j]);
            acc += vs * pool_load(page, pages_per_chunk, lid);
        }
    }
    let at = y_row * out_dim + o;
    y[at] = y[at] + scale * acc.x;
    if (rows > 1u) { y[at + out_dim] = y[at + out_dim] + scale * acc.y; }
    if (rows > 2u) { y[at + 2u * out_dim] = y[at + 2u * out_dim] + scale * acc.z; }
    if (rows > 3u) { y[at + 3u * out_dim] = y[at + 3u * out_dim] + scale * acc.w; }
}
