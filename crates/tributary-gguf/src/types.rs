use std::fmt;

/// The tensor types this crate can read.
///
/// Only what published Llama-family GGUFs use: the float types for norms, Q8_0/Q4_0/Q4_1 for
/// the older "legacy" quantizations (the embedded SmolLM2 file is Q4_1 with a Q8_0 embedding),
/// and Q4_K/Q6_K, which most `Q4_K_M` files mix. Every other ggml type is refused by name when
/// the file is parsed, so a caller never holds a tensor it cannot dequantize.
// ggml's own names (Q4_K, not Q4K), so that code, messages and llama.cpp's tools read alike.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q4_K,
    Q6_K,
}

/// Elements in a K-quant super-block (ggml's `QK_K`).
pub(crate) const QK_K: usize = 256;

impl GgmlType {
    /// Every supported type, in ggml id order.
    pub const ALL: [GgmlType; 8] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::BF16,
    ];

    /// The id ggml and the GGUF tensor info use for this type.
    pub const fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q8_0 => 8,
            GgmlType::Q4_K => 12,
            GgmlType::Q6_K => 14,
            GgmlType::BF16 => 30,
        }
    }

    /// The supported type with this ggml id; `None` for ids this crate does not read (see
    /// [`ggml_type_name`] to name them).
    pub fn from_id(id: u32) -> Option<GgmlType> {
        GgmlType::ALL.into_iter().find(|t| t.id() == id)
    }

    /// ggml's name for the type, as llama.cpp and gguf-py print it.
    pub const fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::BF16 => "BF16",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q4_K => "Q4_K",
            GgmlType::Q6_K => "Q6_K",
        }
    }

    /// Elements per block: quantized types store a block's elements together with its scales,
    /// so a row must hold whole blocks.
    pub const fn block_size(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1 => 32,
            GgmlType::Q4_K | GgmlType::Q6_K => QK_K,
        }
    }

    /// Bytes per block (ggml's `type_size`).
    pub const fn type_size(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            // {f16 d; i8 qs[32]}
            GgmlType::Q8_0 => 2 + 32,
            // {f16 d; u8 qs[16]}
            GgmlType::Q4_0 => 2 + 16,
            // {f16 d; f16 m; u8 qs[16]}
            GgmlType::Q4_1 => 2 + 2 + 16,
            // {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}
            GgmlType::Q4_K => 2 + 2 + 12 + QK_K / 2,
            // {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}
            GgmlType::Q6_K => QK_K / 2 + QK_K / 4 + QK_K / 16 + 2,
        }
    }

    /// Bytes that `n_elements` of this type take, or `None` when they are not whole blocks or
    /// the size overflows.
    pub fn bytes_for(self, n_elements: u64) -> Option<u64> {
        let block = self.block_size() as u64;
        if !n_elements.is_multiple_of(block) {
            return None;
        }
        (n_elements / block).checked_mul(self.type_size() as u64)
    }

    pub(crate) fn supported_names() -> String {
        let names: Vec<&str> = GgmlType::ALL.iter().map(|t| t.name()).collect();
        names.join(", ")
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// ggml's name for any type id it has ever assigned, supported here or not, so a refusal can
/// say "Q5_K" rather than "12"; `None` for ids ggml never used.
pub fn ggml_type_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        // 4 and 5 were Q4_2 and Q4_3, removed before GGUF existed.
        4 => "Q4_2",
        5 => "Q4_3",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        30 => "BF16",
        // 31..=33 and 36..=38 were the repacked Q4_0_4_4 / IQ4_NL_4_4 family, since removed.
        31 => "Q4_0_4_4",
        32 => "Q4_0_4_8",
        33 => "Q4_0_8_8",
        34 => "TQ1_0",
        35 => "TQ2_0",
        36 => "IQ4_NL_4_4",
        37 => "IQ4_NL_4_8",
        38 => "IQ4_NL_8_8",
        39 => "MXFP4",
        40 => "NVFP4",
        41 => "Q1_0",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_agree_with_the_name_table() {
        for ty in GgmlType::ALL {
            assert_eq!(ggml_type_name(ty.id()), Some(ty.name()));
            assert_eq!(GgmlType::from_id(ty.id()), Some(ty));
        }
        assert_eq!(GgmlType::from_id(13), None);
        assert_eq!(ggml_type_name(13), Some("Q5_K"));
        assert_eq!(ggml_type_name(999), None);
    }

    #[test]
    fn bytes_for_refuses_partial_blocks_and_overflow() {
        assert_eq!(GgmlType::Q4_1.bytes_for(64), Some(40));
        assert_eq!(GgmlType::Q4_1.bytes_for(33), None);
        assert_eq!(GgmlType::F32.bytes_for(u64::MAX), None);
        assert_eq!(GgmlType::Q6_K.bytes_for(512), Some(420));
    }
}
