// Shared by the quantized-weight kernels (prepended to each): the weight matrix as the GGUF
// stores it, one row after another, each row a run of whole blocks, read as bytes out of u32
// words (a Q8_0 block is 34 bytes, so blocks do not start on word boundaries), and `dequant`,
// the value of one element, following ggml's block layouts as `tributary-gguf`'s CPU dequantizer
// (the reference) does. Every f16 sits at an even byte offset in every layout.
//
// Every buffer is declared read_write: burn's allocator may place two of a dispatch's buffers in
// one wgpu buffer, and read-only and writable views of one buffer may not meet in a dispatch.

@group(0) @binding(0) var<storage, read_write> w: array<u32>;
// [ggml type id, rows, cols, bytes per row, m (input rows, ids or chunk rows), workgroups along
//  x, first row (of a chunk)]
@group(0) @binding(1) var<storage, read_write> params: array<u32>;

struct Params {
    ty: u32,
    rows: u32,
    cols: u32,
    row_bytes: u32,
    m: u32,
    groups_x: u32,
    first: u32,
}

// Values read from storage are not uniform to WGSL; one invocation reads the parameters and
// workgroupUniformLoad hands them to all, so loops with barriers may depend on them.
var<workgroup> shared_params: Params;

fn uniform_params(lid: u32) -> Params {
    if (lid == 0u) {
        shared_params = Params(params[0], params[1], params[2], params[3], params[4], params[5],
                               params[6]);
    }
    return workgroupUniformLoad(&shared_params);
}

fn byte_at(o: u32) -> u32 {
    return (w[o >> 2u] >> ((o & 3u) * 8u)) & 0xffu;
}

fn half_at(o: u32) -> f32 {
    return unpack2x16float(w[o >> 2u])[(o >> 1u) & 1u];
}

fn signed_byte(b: u32) -> f32 {
    return f32(bitcast<i32>(b << 24u) >> 24u);
}

// The 6-bit scale (x) and min (y) of sub-block j of a Q4_K super-block whose 12 scale bytes
// start at s.
fn q4_k_scale_min(s: u32, j: u32) -> vec2<u32> {
    if (j < 4u) {
        return vec2<u32>(byte_at(s + j) & 63u, byte_at(s + j + 4u) & 63u);
    }
    return vec2<u32>(
        (byte_at(s + j + 4u) & 15u) | ((byte_at(s + j - 4u) >> 6u) << 4u),
        (byte_at(s + j + 4u) >> 4u) | ((byte_at(s + j) >> 6u) << 4u),
    );
}

// Element k of the row starting at byte `row`. Type ids are ggml's.
fn dequant(ty: u32, row: u32, k: u32) -> f32 {
    switch ty {
        case 0u: { // F32
            return bitcast<f32>(w[(row >> 2u) + k]);
        }
        case 1u: { // F16
            return half_at(row + 2u * k);
        }
        case 30u: { // BF16: the high half of an f32
            let o = row + 2u * k;
            return bitcast<f32>(((w[o >> 2u] >> (((o >> 1u) & 1u) * 16u)) & 0xffffu) << 16u);
        }
        case 8u: { // Q8_0 {f16 d; i8 qs[32]}: d·q
            let o = row + (k / 32u) * 34u;
            return signed_byte(byte_at(o + 2u + k % 32u)) * half_at(o);
        }
        case 2u: { // Q4_0 {f16 d; u8 qs[16]}: d·(q − 8), byte j: element j low, j + 16 high
            let o = row + (k / 32u) * 18u;
            let j = k % 32u;
            let q = (byte_at(o + 2u + j % 16u) >> ((j / 16u) * 4u)) & 15u;
            return half_at(o) * f32(i32(q) - 8);
        }
        case 3u: { // Q4_1 {f16 d; f16 m; u8 qs[16]}: d·q + m, nibbles as Q4_0
            let o = row + (k / 32u) * 20u;
            let j = k % 32u;
            let q = (byte_at(o + 4u + j % 16u) >> ((j / 16u) * 4u)) & 15u;
            return half_at(o) * f32(q) + half_at(o + 2u);
        }
        case 12u: { // Q4_K {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}: (d·sc)·q − dmin·m
            let o = row + (k / 256u) * 144u;
            let j = k % 256u;
            let g = j / 64u;
            let within = j % 64u;
            let sm = q4_k_scale_min(o + 4u, 2u * g + within / 32u);
            let q = (byte_at(o + 16u + g * 32u + within % 32u) >> ((within / 32u) * 4u)) & 15u;
            let d = half_at(o) * f32(sm.x);
            let m = half_at(o + 2u) * f32(sm.y);
            return d * f32(q) - m;
        }
        case 14u: { // Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: (d·sc)·(q − 32)
            let o = row + (k / 256u) * 210u;
            let j = k % 256u;
            let half = j / 128u;
            let quarter = (j % 128u) / 32u;
            let l = j % 32u;
            let ql = byte_at(o + half * 64u + (quarter & 1u) * 32u + l);
            let qh = byte_at(o + 128u + half * 32u + l);
            let q = ((ql >> ((quarter >> 1u) * 4u)) & 15u) | (((qh >> (2u * quarter)) & 3u) << 4u);
            let scale = half_at(o + 208u) * signed_byte(byte_at(o + 192u + half * 8u + l / 16u + 2u * quarter));
            return scale * f32(i32(q) - 32);
        }
        default: {
            return 0.0;
        }
    }
}

// A flat workgroup index from a 2-D grid: one grid dimension is capped at 65,535 workgroups.
fn group_index(wid: vec3<u32>, groups_x: u32) -> u32 {
    return wid.x + wid.y * groups_x;
}
