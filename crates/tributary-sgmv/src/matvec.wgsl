// Tiled matrix–vector product y = W·x in f32, W row-major (rows × cols).
//
// A workgroup owns ROWS_PER_GROUP rows and LANES invocations per row. Each step stages a tile of x
// in workgroup memory (one load per invocation, shared by all rows), every lane accumulates a
// strided slice of its row, and a fixed-shape tree reduction combines the lanes. The summation
// order depends only on the shape, never on scheduling, so the same inputs give the same bits.
//
// Rows are addressed through a 2-D grid (group = id.x + id.y · groups_x) because one dimension is
// capped at 65,535 workgroups; invocations past the last row still take part in every barrier.

struct Params {
    rows: u32,
    cols: u32,
    groups_x: u32,
    _pad: u32,
}

const TILE: u32 = 256u;
const LANES: u32 = 64u;
const ROWS_PER_GROUP: u32 = 4u; // TILE / LANES: one staged x value per invocation

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> x_tile: array<f32, TILE>;
var<workgroup> partial: array<f32, TILE>;

@compute @workgroup_size(256)
fn matvec(
    @builtin(workgroup_id) group_id: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let group = group_id.x + group_id.y * params.groups_x;
    let local_row = lid / LANES;
    let lane = lid % LANES;
    let row = group * ROWS_PER_GROUP + local_row;
    let row_in_range = row < params.rows;
    let row_start = row * params.cols;

    var acc = 0.0;
    for (var base = 0u; base < params.cols; base += TILE) {
        let c = base + lid;
        var staged = 0.0;
        if (c < params.cols) {
            staged = x[c];
        }
        x_tile[lid] = staged;
        workgroupBarrier();
        if (row_in_range) {
            let tile_len = min(TILE, params.cols - base);
            for (var k = lane; k < tile_len; k += LANES) {
                acc += w[row_start + base + k] * x_tile[k];
            }
        }
        workgroupBarrier();
    }

    partial[lid] = acc;
    workgroupBarrier();
    for (var stride = LANES / 2u; stride > 0u; stride = stride / 2u) {
        if (lane < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (row_in_range && lane == 0u) {
        y[row] = partial[lid];
    }
}
