// SGMV shrink: v = A·x for every row of every segment that has an adapter (f32 out).
//
// One workgroup per work item: up to 4 rows of one segment × 16 rank indices (slots), LANES
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
//   shrink item (4): [segment, first row in segment, rows (1..=4), first rank index]
//   A table: rank × pages_in page ids (row j of A, page p at j · pages_in + p)

@group(0) @binding(4) var<storage, read_write> plan: array<u32>;
@group(0) @binding(5) var<storage, read_write> x: array<f32>;
@group(0) @binding(6) var<storage, read_write> v: array<f32>;

const LANES: u32 = 16u;

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
var<workgroup> partial: array<vec4<f32>, 256>; // one sum per tile row, per invocation

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
    // The tile's rows as four lanes of a vec4 (a private array indexed by a loop variable is
    // kept in memory by CPU drivers such as lavapipe). Rows past the tile repeat its last row;
    // their sums are never written.
    let last = w.rows - 1u;
    let x0 = w.x_row * w.in_dim;
    let x1 = (w.x_row + min(1u, last)) * w.in_dim;
    let x2 = (w.x_row + min(2u, last)) * w.in_dim;
    let x3 = (w.x_row + min(3u, last)) * w.in_dim;
    var acc = vec4<f32>(0.0);
    if (j < w.rank) {
        for (var p = 0u; p < w.pages_in; p++) {
            let page = plan[w.a_table + j * w.pages_in + p];
            let base = p * PAGE;
            let len = min(PAGE, w.in_dim - base);
            if (w.rows == 1u) {
                // One row (a segment of one decode step): no lanes to waste on the others.
                for (var k = lane; k < len; k += LANES) {
                    acc.x += pool_load(page, w.pages_per_chunk, k) * x[x0 + base + k];
                }
            } else {
                for (var k = lane; k < len; k += LANES) {
                    let c = base + k;
                    let xs = vec4<f32>(x[x0 + c], x[x1 + c], x[x2 + c], x[x3 + c]);
                    acc += pool_load(page, w.pages_per_chunk, k) * xs;
                }
            }
        }
    }

    partial[lid] = acc;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride = stride / 2u) {
        if (lane < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (j < w.rank && lane == 0u) {
        let sum = partial[lid];
        let at = w.v_base + j;
        v[at] = sum.x;
        if (w.rows > 1u) { v[at + w.rank] = sum.y; }
        if (w.rows > 2u) { v[at + 2u * w.rank] = sum.z; }
        if (w.rows > 3u) { v[at + 3u * w.rank] = sum.w; }
    }
}
