//! Each way a file can be wrong gives the error that names it. The broken files are the gguf-py
//! fixtures with one field changed, or hand-written where no tool would write such a file.

use crate::common::*;
use tributary_gguf::{Error, Gguf, LlamaConfig};

fn parse_err(bytes: Vec<u8>) -> Error {
    match Gguf::parse(bytes) {
        Ok(g) => panic!("parsed: {g:?}"),
        Err(e) => e,
    }
}

fn config_err(bytes: Vec<u8>) -> Error {
    let g = Gguf::parse(bytes).expect("the file itself is fine");
    LlamaConfig::from_gguf(&g).expect_err("config must be refused")
}

#[test]
fn bad_magic() {
    let mut bytes = fixture("tensors.gguf");
    bytes[..4].copy_from_slice(b"GGJT");
    let e = parse_err(bytes);
    assert!(
        matches!(&e, Error::BadMagic { found } if found == b"GGJT"),
        "{e}"
    );
    assert!(e.to_string().contains("not a GGUF file"), "{e}");
    assert!(matches!(
        parse_err(b"PK\x03\x04rest".to_vec()),
        Error::BadMagic { .. }
    ));
    // A prefix of the magic is a truncated file, not a wrong one.
    assert!(matches!(parse_err(b"GG".to_vec()), Error::Truncated { .. }));
    assert!(matches!(parse_err(vec![]), Error::Truncated { .. }));
}

#[test]
fn versions_1_and_4_are_refused_by_number() {
    for v in [1, 4, 0, 0xFFFF_FFFF] {
        let mut bytes = fixture("tensors.gguf");
        put_u32(&mut bytes, 4, v);
        let e = parse_err(bytes);
        assert!(
            matches!(e, Error::UnsupportedVersion { version } if version == v),
            "{e}"
        );
        assert!(e.to_string().contains(&format!("version {v}")), "{e}");
    }
    let mut bytes = fixture("tensors.gguf");
    put_u32(&mut bytes, 4, 1);
    assert!(parse_err(bytes).to_string().contains("32-bit"));
}

#[test]
fn big_endian_files_are_named_as_such() {
    let mut bytes = fixture("tensors.gguf");
    bytes[4..8].copy_from_slice(&3u32.to_be_bytes());
    let e = parse_err(bytes);
    assert!(matches!(e, Error::BigEndian { version: 3 }), "{e}");
}

#[test]
fn truncation_in_the_header_names_the_field_and_offsets() {
    let bytes = fixture("tensors.gguf");
    let e = parse_err(bytes[..10].to_vec());
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            Error::Truncated {
                offset: 8,
                needed: 8,
                len: 10,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("tensor count"), "{msg}");

    // Cut inside the value of a known key: the message names the key.
    let at = find(&bytes, b"test.string").unwrap();
    let e = parse_err(bytes[..at + 20].to_vec());
    assert!(e.to_string().contains("`test.string`"), "{e}");

    // Cut inside a tensor info: the message names the tensor.
    let fields = tensor_info_fields(&bytes, "q4_1");
    let e = parse_err(bytes[..fields.ty + 2].to_vec());
    assert!(e.to_string().contains("tensor `q4_1`"), "{e}");
}

#[test]
fn tensor_past_the_end() {
    let bytes = fixture("tensors.gguf");
    let g = Gguf::parse(bytes.clone()).unwrap();
    let last = g.tensors().iter().max_by_key(|t| t.offset()).unwrap();
    let end = (g.data_offset() + last.offset() + last.n_bytes()) as usize;
    let e = parse_err(bytes[..end - 1].to_vec());
    match &e {
        Error::TensorPastEnd {
            tensor,
            end: e_end,
            len,
            ..
        } => {
            assert_eq!(tensor, last.name());
            assert_eq!(*e_end as usize, end);
            assert_eq!(*len as usize, end - 1);
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains(&format!("`{}`", last.name())), "{e}");

    // An offset far past the end, and one whose sum overflows u64.
    for offset in [1 << 20, u64::MAX - 31] {
        let mut bytes = fixture("tensors.gguf");
        let fields = tensor_info_fields(&bytes, "q8_0");
        put_u64(&mut bytes, fields.offset, offset);
        let e = parse_err(bytes);
        assert!(
            matches!(&e, Error::TensorPastEnd { tensor, .. } if tensor == "q8_0"),
            "{e}"
        );
    }
}

#[test]
fn misaligned_tensor_offset() {
    let mut bytes = fixture("tensors.gguf");
    let fields = tensor_info_fields(&bytes, "q4_0");
    let offset = u64::from_le_bytes(bytes[fields.offset..fields.offset + 8].try_into().unwrap());
    put_u64(&mut bytes, fields.offset, offset + 4);
    let e = parse_err(bytes);
    assert!(
        matches!(&e, Error::MisalignedTensor { tensor, alignment: 32, .. } if tensor == "q4_0"),
        "{e}"
    );
}

#[test]
fn unsupported_tensor_types_are_refused_by_name() {
    for (id, name) in [
        (6, "Q5_0"),
        (7, "Q5_1"),
        (10, "Q2_K"),
        (11, "Q3_K"),
        (13, "Q5_K"),
        (16, "IQ2_XXS"),
        (23, "IQ4_XS"),
    ] {
        let mut bytes = fixture("tensors.gguf");
        let fields = tensor_info_fields(&bytes, "q4_k");
        put_u32(&mut bytes, fields.ty, id);
        let e = parse_err(bytes);
        assert!(
            matches!(&e, Error::UnsupportedType { tensor, name: n, type_id } if tensor == "q4_k" && *n == name && *type_id == id),
            "{e}"
        );
        let msg = e.to_string();
        assert!(msg.contains(name) && msg.contains("`q4_k`"), "{msg}");
    }
}

#[test]
fn unknown_tensor_type_ids_are_refused_by_number() {
    let mut bytes = fixture("tensors.gguf");
    let fields = tensor_info_fields(&bytes, "f16");
    put_u32(&mut bytes, fields.ty, 99);
    let e = parse_err(bytes);
    assert!(
        matches!(&e, Error::UnknownType { tensor, type_id: 99 } if tensor == "f16"),
        "{e}"
    );
    assert!(e.to_string().contains("99"));
}

#[test]
fn rows_that_are_not_whole_blocks_are_refused() {
    let mut bytes = fixture("tensors.gguf");
    let fields = tensor_info_fields(&bytes, "q4_1");
    // ne0 = 250, not a multiple of 32.
    put_u64(&mut bytes, fields.dims, 250);
    let e = parse_err(bytes);
    assert!(matches!(&e, Error::NotBlockAligned { ne0: 250, .. }), "{e}");
    assert!(e.to_string().contains("`q4_1`"), "{e}");
}

#[test]
fn dimension_overflow_and_too_many_dimensions() {
    let mut bytes = fixture("tensors.gguf");
    let fields = tensor_info_fields(&bytes, "cube");
    put_u64(&mut bytes, fields.dims, 1 << 32);
    put_u64(&mut bytes, fields.dims + 8, 1 << 32);
    let e = parse_err(bytes);
    assert!(
        matches!(&e, Error::DimsOverflow { tensor, .. } if tensor == "cube"),
        "{e}"
    );

    let mut bytes = fixture("tensors.gguf");
    let fields = tensor_info_fields(&bytes, "cube");
    put_u32(&mut bytes, fields.n_dims, 5);
    let e = parse_err(bytes);
    assert!(
        matches!(
            &e,
            Error::TooManyDims {
                n_dims: 5,
                max: 4,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn bad_metadata_is_named_by_key() {
    // Unknown value type.
    let mut w = Writer::new();
    w.kv_raw("a.key", 13, &[0; 8]);
    let e = parse_err(w.finish());
    assert!(
        matches!(&e, Error::UnknownValueType { key, type_id: 13, .. } if key == "a.key"),
        "{e}"
    );

    // A bool that is neither 0 nor 1.
    let mut w = Writer::new();
    w.kv_raw("flag", 7, &[2]);
    assert!(matches!(
        parse_err(w.finish()),
        Error::InvalidBool { value: 2, .. }
    ));

    // Invalid UTF-8 in a string value.
    let mut w = Writer::new();
    let mut v = 2u64.to_le_bytes().to_vec();
    v.extend_from_slice(&[0xC3, 0x28]);
    w.kv_raw("name", 8, &v);
    let e = parse_err(w.finish());
    assert!(
        matches!(&e, Error::InvalidUtf8 { what, .. } if what.contains("`name`")),
        "{e}"
    );

    // The same key twice.
    let mut w = Writer::new();
    w.kv_u32("k", 1).kv_u32("k", 2);
    assert!(matches!(parse_err(w.finish()), Error::DuplicateKey { key } if key == "k"));

    // general.alignment that is not a power of two, or not a u32.
    let mut w = Writer::new();
    w.kv_u32("general.alignment", 48);
    assert!(matches!(parse_err(w.finish()), Error::BadAlignment { .. }));
    let mut w = Writer::new();
    w.kv_str("general.alignment", "32");
    assert!(matches!(parse_err(w.finish()), Error::BadAlignment { .. }));
}

#[test]
fn huge_counts_are_refused_without_allocating() {
    // A billion-element array in a 60-byte file: refused as truncated, nothing reserved.
    for elem in [0u32, 8, 9, 10] {
        let mut v = elem.to_le_bytes().to_vec();
        v.extend_from_slice(&(1u64 << 60).to_le_bytes());
        let mut w = Writer::new();
        w.kv_raw("big", 9, &v);
        let e = parse_err(w.finish());
        assert!(
            matches!(&e, Error::Truncated { what, .. } if what.contains("`big`")),
            "{e}"
        );
    }
    // Billions of metadata entries or tensors.
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(parse_err(bytes), Error::Truncated { .. }));
    // A string claiming u64::MAX bytes.
    let mut w = Writer::new();
    w.kv_raw("s", 8, &u64::MAX.to_le_bytes());
    assert!(matches!(
        parse_err(w.finish()),
        Error::Truncated {
            needed: u64::MAX,
            ..
        }
    ));
}

#[test]
fn deeply_nested_arrays_are_refused() {
    // 100 levels of one-element arrays of arrays.
    let mut v = vec![];
    for _ in 0..100 {
        v.extend_from_slice(&9u32.to_le_bytes());
        v.extend_from_slice(&1u64.to_le_bytes());
    }
    let mut w = Writer::new();
    w.kv_raw("deep", 9, &v);
    let e = parse_err(w.finish());
    assert!(
        matches!(&e, Error::NestingTooDeep { key, .. } if key == "deep"),
        "{e}"
    );
}

#[test]
fn duplicate_tensor_names() {
    let mut w = Writer::new();
    w.tensor("t", &[8], 0, 0).tensor("t", &[8], 0, 32);
    w.data = vec![0; 64];
    assert!(matches!(parse_err(w.finish()), Error::DuplicateTensor { name } if name == "t"));
}

#[test]
fn missing_config_key_is_named() {
    let mut bytes = fixture("llama.gguf");
    replace_bytes(&mut bytes, b"llama.block_count", b"llama.block_cuont");
    let e = config_err(bytes);
    assert!(
        matches!(&e, Error::MissingKey { key } if key == "llama.block_count"),
        "{e}"
    );
    assert!(e.to_string().contains("`llama.block_count`"), "{e}");

    let mut bytes = fixture("llama.gguf");
    replace_bytes(
        &mut bytes,
        b"tokenizer.ggml.tokens",
        b"tokenizer.ggml.tokenz",
    );
    let e = config_err(bytes);
    assert!(
        matches!(&e, Error::MissingKey { key } if key == "tokenizer.ggml.tokens"),
        "{e}"
    );
}

#[test]
fn unsupported_architecture_is_named() {
    let mut bytes = fixture("llama.gguf");
    // general.architecture is the string "llama" (length 5), the same length as "bloom".
    let mut from = 5u64.to_le_bytes().to_vec();
    from.extend_from_slice(b"llama");
    let mut to = 5u64.to_le_bytes().to_vec();
    to.extend_from_slice(b"bloom");
    replace_bytes(&mut bytes, &from, &to);
    let e = config_err(bytes);
    assert!(
        matches!(&e, Error::UnsupportedArchitecture { arch } if arch == "bloom"),
        "{e}"
    );
    assert!(e.to_string().contains("bloom is not supported"), "{e}");

    // The architecture decides the key prefix: a llama file relabelled qwen2 lacks qwen2 keys.
    let mut bytes = fixture("llama.gguf");
    let mut to = 5u64.to_le_bytes().to_vec();
    to.extend_from_slice(b"qwen2");
    replace_bytes(&mut bytes, &from, &to);
    let e = config_err(bytes);
    assert!(
        matches!(&e, Error::MissingKey { key } if key.starts_with("qwen2.")),
        "{e}"
    );
}

#[test]
fn wrong_config_value_types_and_values() {
    let mut w = Writer::new();
    w.kv_str("general.architecture", "llama")
        .kv_str("llama.block_count", "thirty");
    let e = config_err(w.finish());
    assert!(
        matches!(&e, Error::WrongValueType { key, .. } if key == "llama.block_count"),
        "{e}"
    );

    let mut bytes = fixture("llama.gguf");
    // head_count_kv = 3 does not divide head_count = 4. Find the key's u32 value after it.
    let at = find(&bytes, b"llama.attention.head_count_kv").unwrap()
        + "llama.attention.head_count_kv".len();
    assert_eq!(
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()),
        4,
        "UINT32 type tag"
    );
    put_u32(&mut bytes, at + 4, 3);
    let e = config_err(bytes);
    assert!(
        matches!(&e, Error::InvalidConfig { key, .. } if key == "llama.attention.head_count_kv"),
        "{e}"
    );
}

#[test]
fn errors_from_open_name_the_path() {
    let missing = fixture_path("no-such-file.gguf");
    let e = Gguf::open(&missing).unwrap_err();
    assert!(matches!(e, Error::Io { .. }));
    assert!(e.to_string().contains("no-such-file.gguf"), "{e}");

    let dir = std::env::temp_dir().join(format!("tributary-gguf-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.gguf");
    let mut bytes = fixture("llama.gguf");
    put_u32(&mut bytes, 4, 1);
    std::fs::write(&bad, &bytes).unwrap();
    let e = Gguf::open(&bad).unwrap_err();
    assert!(e.to_string().starts_with(&bad.display().to_string()), "{e}");
    assert!(
        matches!(e.root(), Error::UnsupportedVersion { version: 1 }),
        "{e}"
    );

    let empty = dir.join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    let e = Gguf::open(&empty).unwrap_err();
    assert!(
        matches!(e.root(), Error::Truncated { .. } | Error::Io { .. }),
        "{e}"
    );

    // A config error on an opened file names the file too.
    let renamed = dir.join("bloom.gguf");
    let mut bytes = fixture("llama.gguf");
    replace_bytes(&mut bytes, b"llama.block_count", b"llama.block_cuont");
    std::fs::write(&renamed, &bytes).unwrap();
    let g = Gguf::open(&renamed).unwrap();
    let e = LlamaConfig::from_gguf(&g).unwrap_err();
    assert!(
        e.to_string().contains("bloom.gguf") && e.to_string().contains("llama.block_count"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
