// Upload: copies staged pages into their places in the pool, one page per workgroup.
//
// plan: [pages, pages_per_chunk, groups_x, 0, destination page ids…]

@group(0) @binding(4) var<storage, read_write> plan: array<u32>;
@group(0) @binding(5) var<storage, read_write> staging: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let item = item_index(wid, plan[2]);
    if (item >= plan[0]) {
        return;
    }
    pool_store(plan[4u + item], plan[1], lid, staging[item * PAGE + lid]);
}
