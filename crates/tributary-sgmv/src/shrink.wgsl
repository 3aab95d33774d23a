// SGMV shrink: v = A·x for every row of every segment that has an adapter (f32 out).
//
// One workgroup per work item: up to ROWS rows of one segment × SLOTS rank indices, LANES
// invocations per rank index. The host lists ceil(rank / SLOTS) items per row tile, so a rank-1
// segment costs one item and a rank-128 segment eight: mixed ranks with no padding to the
// largest. Each lane walks a strided slice of its A row page by page and multiplies it with every
// row of the tile; x is read straight from storage (all slots read the same values, which the
// cache serves), so the main loop has no barriers. A fixed-shape tree sums the lanes at the end.
// No atomics, and the order of every sum depends only on the shapes: the same inputs give the
// same bits.
//
// plan (u32): header [in, out, pages_in, pages_out, pages_per_chunk, shrink items, expand items,
//   shrink groups_x, expand groups_x, shrink list, expand list, segment list, …]
//   segment (8): [first row, rows, rank, v offset, scale bits, A table, Bᵀ table, 0]
//   shrink item (4): [segment, first row in segment, rows (1..=ROWS), first rank index]
//   A table: rank × pages_in page ids (row j of A, page p at j · pages_in + p)

@group(0) @binding(4) var<storage, read_write> plan: array<u32>;
@group(0) @binding(5) var<storage, read_write> x: array<f32>;
@group(0) @binding(6) var<storage, read_write> v: array<f32>;

const LANES: u32 = 16u;
const ROWS: u32 = 4u;

struct Work {
    valid: u32,
    in_dim: u32,
    pages_in: u32,
    pages_per_chunk: u32,
    rank: u32,
    rows: u32,
    x_row: u32,
    v_base: u32,
    j0: u32,
    a_table: u32,
}

var<workgroup> work: Work;
var<workgroup> partial: array<f32, 1024>; // ROWS × 256 invocations

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    // Values read from storage are not uniform to WGSL; one invocation decodes the item and
    // workgroupUniformLoad hands it to all, so the barriers of the reduction stay uniform.
    if (lid == 0u) {
        var w: Work;
        let item = item_index(wid, plan[7]);
        if (item < plan[5]) {
            let it = plan[9] + item * 4u;
            let seg = plan[11] + plan[it] * 8u;
            let row0 = plan[it + 1u];
            w.valid = 1u;
            w.in_dim = plan[0];
            w.pages_in = plan[2];
            w.pages_per_chunk = plan[4];
            w.rank = plan[seg + 2u];
            w.rows = plan[it + 2u];
            w.x_row = plan[seg] + row0;
            w.v_base = plan[seg + 3u] + row0 * w.rank;
            w.j0 = plan[it + 3u];
            w.a_table = plan[seg + 5u];
        }
        work = w;
    }
    let w = workgroupUniformLoad(&work);
    if (w.valid == 0u) {
        return;
    }

    let slot = lid / LANES;
    let lane = lid % LANES;
    let j = w.j0 + slot;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    if (j < w.rank) {
        for (var p = 0u; p < w.pages_in; p++) {
            let page = plan[w.a_table + j * w.pages_in + p];
            let base = p * PAGE;
            let len = min(PAGE, w.in_dim - base);
            for (var k = lane; k < len; k += LANES) {
                let a = pool_load(page, w.pages_per_chunk, k);
                for (var t = 0u; t < w.rows; t++) {
                    acc[t] += a * x[(w.x_row + t) * w.in_dim + base + k];
                }
            }
        }
    }

    for (var t = 0u; t < ROWS; t++) {
        partial[t * 256u + lid] = acc[t];
    }
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride = stride / 2u) {
        if (lane < stride) {
            for (var t = 0u; t < w.rows; t++) {
                partial[t * 256u + lid] += partial[t * 256u + lid + stride];
            }
        }
        workgroupBarrier();
    }
    if (j < w.rank && lane == 0u) {
        for (var t = 0u; t < w.rows; t++) {
            v[w.v_base + t * w.rank + j] = partial[t * 256u + lid];
        }
    }
}
