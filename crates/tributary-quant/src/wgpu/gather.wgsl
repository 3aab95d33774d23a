// out[i, k] = W[ids[i], k]: an embedding lookup, one element per invocation. An id outside the
// matrix reads as NaN (the host checks ids before launching; this only keeps a bad read from
// touching memory past the matrix). The NaN is made at run time: WGSL makes a constant
// expression that evaluates to NaN a shader-creation error, which Chrome's Tint enforces (naga
// does not), and cubecl only logs a kernel that fails to compile — every embedding read as 0.

@group(0) @binding(2) var<storage, read_write> ids: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let p = uniform_params(lid);
    let e = group_index(wid, p.groups_x) * 256u + lid;
    if (e < p.m * p.cols) {
        let id = ids[e / p.cols];
        var nan_bits = 0x7fc00000u;
        var v = bitcast<f32>(nan_bits);
        if (id >= 0 && u32(id) < p.rows) {
            v = dequant(p.ty, u32(id) * p.row_bytes, e % p.cols);
        }
        out[e] = v;
    }
}
