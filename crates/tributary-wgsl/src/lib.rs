//! The pieces that tributary-sgmv's and tributary-quant's WGSL kernels share: how a count of
//! workgroups is laid out within the device's per-dimension limit, and (feature `check`) the
//! test every kernel gets, because cubecl reports a kernel that fails to compile in its log, not
//! to the caller, and the launch then does nothing. (A first SGMV kernel named a buffer `meta`, a
//! WGSL reserved word, and silently computed nothing.)

/// Lays `groups` workgroups out as a 2-D grid whose x extent stays within `max_per_dim`
/// (65,535 on WebGPU); `None` if even a square grid cannot hold them. The kernels flatten it
/// back with `wid.x + wid.y * groups_x`.
pub fn fold_grid(groups: usize, max_per_dim: u32) -> Option<(u32, u32)> {
    let max = max_per_dim as usize;
    let x = groups.clamp(1, max);
    let y = groups.div_ceil(x).max(1);
    (y <= max).then_some((x as u32, y as u32))
}

/// Panics, with naga's report pointing into `source`, unless the kernel `name` (its complete
/// source, as cubecl will build it) parses, validates and has the entry point `main` that
/// cubecl's `SourceKernel` launches.
///
/// `unpack2x16float` is core WGSL; naga files it under `SHADER_FLOAT16_IN_FLOAT32`, which every
/// wgpu backend but DX11's has, so that capability is granted.
#[cfg(feature = "check")]
pub fn assert_valid_kernel(name: &str, source: &str) {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32,
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    assert!(
        module.entry_points.iter().any(|e| e.name == "main"),
        "{name}: SourceKernel launches the entry point `main`"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_fold_into_the_second_dimension() {
        assert_eq!(fold_grid(0, 65_535), Some((1, 1)));
        assert_eq!(fold_grid(17, 65_535), Some((17, 1)));
        assert_eq!(fold_grid(65_535, 65_535), Some((65_535, 1)));
        assert_eq!(fold_grid(65_537, 65_535), Some((65_535, 2)));
        assert_eq!(fold_grid(17 * 17 + 1, 16), None);
    }
}
