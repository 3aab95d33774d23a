// The adapter pool, shared by the SGMV kernels (prepended to each). Up to four storage buffers,
// each within the device's maxStorageBufferBindingSize, cut into PAGE-float pages; page id p lives
// in chunk p / pages_per_chunk at float offset (p % pages_per_chunk) · PAGE. WGSL has no arrays of
// buffers, so the chunk is chosen with a switch; it is the same for a whole page, so lanes that
// read one page together take the same branch.
//
// Every buffer is declared read_write: burn's allocator may place two of a dispatch's buffers in
// one wgpu buffer, and read-only and writable views of one buffer may not meet in a dispatch.

const PAGE: u32 = 256u;

@group(0) @binding(0) var<storage, read_write> pool0: array<f32>;
@group(0) @binding(1) var<storage, read_write> pool1: array<f32>;
@group(0) @binding(2) var<storage, read_write> pool2: array<f32>;
@group(0) @binding(3) var<storage, read_write> pool3: array<f32>;

fn pool_load(page: u32, pages_per_chunk: u32, i: u32) -> f32 {
    let at = (page % pages_per_chunk) * PAGE + i;
    switch page / pages_per_chunk {
        case 0u: { return pool0[at]; }
        case 1u: { return pool1[at]; }
        case 2u: { return pool2[at]; }
        default: { return pool3[at]; }
    }
}

fn pool_store(page: u32, pages_per_chunk: u32, i: u32, value: f32) {
    let at = (page % pages_per_chunk) * PAGE + i;
    switch page / pages_per_chunk {
        case 0u: { pool0[at] = value; }
        case 1u: { pool1[at] = value; }
        case 2u: { pool2[at] = value; }
        default: { pool3[at] = value; }
    }
}

// A flat work-item index from a 2-D grid: one grid dimension is capped at 65,535 workgroups.
fn item_index(wid: vec3<u32>, groups_x: u32) -> u32 {
    return wid.x + wid.y * groups_x;
}
