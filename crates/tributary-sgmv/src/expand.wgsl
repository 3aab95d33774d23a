// SGMV expand: y += scale · Bᵀ-rows · v, for every row of every segment that has an adapter.
//
// One workgroup per work item: up to ROWS rows of one segment × one page-wide tile of outputs,
// one invocation per output column. The rows' rank values are staged in workgroup memory; each
// rank index j reads one page of row j of Bᵀ (contiguous across the invocations) and feeds every
// row. Each y element is owned by exactly one invocation, which sums over j in order: no
// atomics, the same bits on every run. Rows of segments without an adapter are not touched.
//
// plan: see shrink.wgsl; expand item (4): [segment, first row in segment, rows, output tile];
//   Bᵀ table: rank × pages_out page ids.

@group(0) @binding(4) var<storage, read_write> plan: array<u32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;

const ROWS: u32 = 4u;

struct Work {
    valid: u32,
    out_dim: u32,
    pages_out: u32,
    pages_per_chunk: u32,
    rank: u32,
    rows: u32,
    y_row: u32,
    v_base: u32,
    tile: u32,
    bt_table: u32,
    scale: f32,
}

var<workgroup> work: Work;
var<workgroup> v_tile: array<f32, 1024>; // ROWS × PAGE rank values

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    if (lid == 0u) {
        var w: Work;
        let item = item_index(wid, plan[8]);
        if (item < plan[6]) {
            let it = plan[10] + item * 4u;
            let seg = plan[11] + plan[it] * 8u;
            let row0 = plan[it + 1u];
            w.valid = 1u;
            w.out_dim = plan[1];
            w.pages_out = plan[3];
            w.pages_per_chunk = plan[4];
            w.rank = plan[seg + 2u];
            w.rows = plan[it + 2u];
            w.y_row = plan[seg] + row0;
            w.v_base = plan[seg + 3u] + row0 * w.rank;
            w.tile = plan[it + 3u];
            w.bt_table = plan[seg + 6u];
            w.scale = bitcast<f32>(plan[seg + 4u]);
        }
        work = w;
    }
    let w = workgroupUniformLoad(&work);
    if (w.valid == 0u) {
        return;
    }

    let o = w.tile * PAGE + lid;
    let o_ok = o < w.out_dim;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    for (var j0 = 0u; j0 < w.rank; j0 += PAGE) {
        for (var t = 0u; t < ROWS; t++) {
            var value = 0.0;
            if (t < w.rows && j0 + lid < w.rank) {
                value = v[w.v_base + t * w.rank + j0 + lid];
            }
            v_tile[t * PAGE + lid] = value;
        }
        workgroupBarrier();
        if (o_ok) {
            let n = min(PAGE, w.rank - j0);
            for (var jj = 0u; jj < n; jj++) {
                let page = plan[w.bt_table + (j0 + jj) * w.pages_out + w.tile];
                let b = pool_load(page, w.pages_per_chunk, lid);
                for (var t = 0u; t < w.rows; t++) {
                    acc[t] += v_tile[t * PAGE + jj] * b;
                }
            }
        }
        workgroupBarrier();
    }
    if (o_ok) {
        for (var t = 0u; t < w.rows; t++) {
            let at = (w.y_row + t) * w.out_dim + o;
            y[at] = y[at] + w.scale * acc[t];
        }
    }
}
