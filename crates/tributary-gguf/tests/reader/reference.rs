//! The reader against the reference implementation: fixtures written by gguf-py's GGUFWriter,
//! expected values from gguf-py's `gguf.quants.dequantize` and GGUFReader
//! (reference/make_fixtures.py, versions pinned in reference/requirements.txt).

use crate::common::*;
use serde_json::Value as Json;
use tributary_gguf::{
    Architecture, Array, GgmlType, Gguf, LlamaConfig, Value, dequantize, dequantize_row,
    unpermute_qk_row,
};

fn parse_fixture(name: &str) -> Gguf {
    Gguf::parse(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn type_by_name(name: &str) -> GgmlType {
    GgmlType::ALL
        .into_iter()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("type {name} in expected.json is not supported"))
}

/// gguf-py's values within 1e-6 relative (in practice they are bit-identical).
fn assert_close(what: &str, got: &[f32], want: &[Json]) {
    assert_eq!(got.len(), want.len(), "{what}: element count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let w = json_f32(w);
        let ok = (g - w).abs() <= 1e-6 * w.abs() || (g.is_nan() && w.is_nan());
        assert!(ok, "{what}[{i}]: got {g}, gguf-py {w}");
    }
}

fn check_tensors(file: &str) {
    let g = parse_fixture(file);
    let exp = &expected()[file];
    assert_eq!(u64::from(g.version()), exp["version"].as_u64().unwrap());
    assert_eq!(g.alignment(), exp["alignment"].as_u64().unwrap());
    let want = exp["tensors"].as_array().unwrap();
    assert_eq!(g.tensors().len(), want.len(), "{file}: tensor count");
    for w in want {
        let name = w["name"].as_str().unwrap();
        let t = g
            .tensor(name)
            .unwrap_or_else(|| panic!("{file}: no tensor {name}"));
        assert_eq!(
            t.ggml_type(),
            type_by_name(w["type"].as_str().unwrap()),
            "{name}"
        );
        let ne: Vec<u64> = w["ne"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(t.dims(), &ne[..], "{name}: dims, innermost first");
        assert_eq!(
            g.data_offset() + t.offset(),
            w["file_offset"].as_u64().unwrap(),
            "{name}: where GGUFReader finds the data"
        );
        let values = g.dequantize(t).unwrap();
        assert_close(name, &values, w["values"].as_array().unwrap());

        // The free function on the raw bytes, and row by row, agree with the whole tensor.
        let bytes = g.tensor_bytes(t).unwrap();
        assert_eq!(
            dequantize(t.ggml_type(), bytes, values.len()).unwrap(),
            values
        );
        let row_len = t.row_len() as usize;
        for r in 0..t.n_rows() {
            let row = g.dequantize_row(t, r).unwrap();
            let from = r as usize * row_len;
            assert_eq!(row, &values[from..from + row_len], "{name}: row {r}");
            assert_eq!(
                dequantize_row(t.ggml_type(), bytes, t.row_len(), r).unwrap(),
                row
            );
        }
    }
}

#[test]
fn every_tensor_type_dequantizes_like_gguf_py() {
    check_tensors("tensors.gguf");
    // Every supported type is in the fixture, so none is untested.
    let g = parse_fixture("tensors.gguf");
    for ty in GgmlType::ALL {
        assert!(
            g.tensors().iter().any(|t| t.ggml_type() == ty),
            "{ty} has no fixture"
        );
    }
}

#[test]
fn custom_alignment_places_tensors_where_gguf_py_does() {
    check_tensors("aligned256.gguf");
    let g = parse_fixture("aligned256.gguf");
    assert_eq!(g.data_offset() % 256, 0);
    for t in g.tensors() {
        assert_eq!(t.offset() % 256, 0);
    }
}

/// serde_json (without its `float_roundtrip` feature) may parse a decimal one f64 ulp off; the
/// JSON holds f32 values written exactly, so rounding to f32 recovers them.
fn json_f32(v: &Json) -> f32 {
    v.as_f64().expect("number") as f32
}

fn assert_f64(key: &str, got: f64, want: &Json) {
    let want = want.as_f64().expect("number");
    assert!(
        (got - want).abs() <= 4.0 * f64::EPSILON * want.abs(),
        "{key}: {got} vs {want}"
    );
}

fn check_array(key: &str, got: &Array, elem: &str, want: &[Json]) {
    assert_eq!(got.element_type().name(), elem, "{key}: element type");
    assert_eq!(got.len(), want.len(), "{key}: length");
    let ints = |v: &[i128]| {
        let w: Vec<i128> = want
            .iter()
            .map(|x| {
                x.as_i64()
                    .map(i128::from)
                    .or(x.as_u64().map(i128::from))
                    .unwrap()
            })
            .collect();
        assert_eq!(v, &w[..], "{key}");
    };
    match got {
        Array::U8(v) => ints(&v.iter().map(|&x| x.into()).collect::<Vec<_>>()),
        Array::I8(v) => ints(&v.iter().map(|&x| x.into()).collect::<Vec<_>>()),
        Array::U16(v) => ints(&v.iter().map(|&x| x.into()).collect::<Vec<_>>()),
        Array::I16(v) => ints(&v.iter().map(|&x| x.into()).collect::<Vec<_>>()),
        Array::U32(v) => ints(&v.iter().map(|&x| x.into()).collect::<Vec<_>>()),
        Array::I32(v) => ints(&v.iter().map(|&x| x.into()).collect::<Vec<_>>()),
        Array::U64(v) => ints(&v.iter().map(|&x| x.into()).collect::<Vec<_>>()),
        Array::I64(v) => ints(&v.iter().map(|&x| x.into()).collect::<Vec<_>>()),
        Array::F32(v) => {
            let w: Vec<f32> = want.iter().map(json_f32).collect();
            assert_eq!(v, &w, "{key}");
        }
        Array::F64(v) => {
            for (x, w) in v.iter().zip(want) {
                assert_f64(key, *x, w);
            }
        }
        Array::Bool(v) => {
            let w: Vec<bool> = want.iter().map(|x| x.as_bool().unwrap()).collect();
            assert_eq!(v, &w, "{key}");
        }
        Array::String(v) => {
            let w: Vec<&str> = want.iter().map(|x| x.as_str().unwrap()).collect();
            assert_eq!(v, &w, "{key}");
        }
        Array::Array(v) => {
            for (inner, w) in v.iter().zip(want) {
                check_array(
                    key,
                    inner,
                    w["element_type"].as_str().unwrap(),
                    w["value"].as_array().unwrap(),
                );
            }
        }
    }
}

#[test]
fn metadata_of_every_value_type_reads_as_written() {
    let g = parse_fixture("tensors.gguf");
    let want = expected()["tensors.gguf"]["metadata"]
        .as_object()
        .unwrap()
        .clone();
    assert_eq!(g.metadata().len(), want.len(), "key count");
    let mut seen = std::collections::BTreeSet::new();
    for (key, w) in &want {
        let got = g.get(key).unwrap_or_else(|| panic!("missing {key}"));
        let ty = w["type"].as_str().unwrap();
        assert_eq!(got.value_type().name(), ty, "{key}: type");
        seen.insert(ty.to_owned());
        let v = &w["value"];
        match got {
            Value::U8(x) => assert_eq!(u64::from(*x), v.as_u64().unwrap(), "{key}"),
            Value::U16(x) => assert_eq!(u64::from(*x), v.as_u64().unwrap(), "{key}"),
            Value::U32(x) => assert_eq!(u64::from(*x), v.as_u64().unwrap(), "{key}"),
            Value::U64(x) => assert_eq!(*x, v.as_u64().unwrap(), "{key}"),
            Value::I8(x) => assert_eq!(i64::from(*x), v.as_i64().unwrap(), "{key}"),
            Value::I16(x) => assert_eq!(i64::from(*x), v.as_i64().unwrap(), "{key}"),
            Value::I32(x) => assert_eq!(i64::from(*x), v.as_i64().unwrap(), "{key}"),
            Value::I64(x) => assert_eq!(*x, v.as_i64().unwrap(), "{key}"),
            Value::F32(x) => assert_eq!(*x, json_f32(v), "{key}"),
            Value::F64(x) => assert_f64(key, *x, v),
            Value::Bool(x) => assert_eq!(*x, v.as_bool().unwrap(), "{key}"),
            Value::String(x) => assert_eq!(x, v.as_str().unwrap(), "{key}"),
            Value::Array(a) => check_array(
                key,
                a,
                w["element_type"].as_str().unwrap(),
                v.as_array().unwrap(),
            ),
        }
    }
    // Every GGUF value type was exercised.
    assert_eq!(seen.len(), 13, "{seen:?}");
    assert_eq!(g.architecture(), Some("tributary-test"));
}

#[test]
fn open_maps_the_same_file_that_parse_reads() {
    let path = fixture_path("tensors.gguf");
    let mapped = Gguf::open(&path).unwrap();
    let read = parse_fixture("tensors.gguf");
    assert_eq!(mapped.path(), Some(path.as_path()));
    assert_eq!(mapped.bytes(), read.bytes());
    assert_eq!(mapped.metadata(), read.metadata());
    assert_eq!(mapped.tensors(), read.tensors());
    for t in mapped.tensors() {
        assert_eq!(
            mapped.tensor_bytes(t).unwrap(),
            read.tensor_bytes(t).unwrap()
        );
    }
}

#[test]
fn version_2_has_the_same_layout_as_version_3() {
    let mut bytes = fixture("tensors.gguf");
    put_u32(&mut bytes, 4, 2);
    let v2 = Gguf::parse(bytes).unwrap();
    let v3 = parse_fixture("tensors.gguf");
    assert_eq!(v2.version(), 2);
    assert_eq!(v2.metadata(), v3.metadata());
    assert_eq!(v2.tensors(), v3.tensors());
}

fn config_matches(file: &str, arch: Architecture) {
    let g = parse_fixture(file);
    let c = LlamaConfig::from_gguf(&g).unwrap();
    let w = &expected()[file]["config"];
    let n = |k: &str| w[k].as_u64().unwrap() as usize;
    assert_eq!(c.architecture, arch);
    assert_eq!(c.architecture.name(), w["architecture"].as_str().unwrap());
    assert_eq!(c.block_count, n("block_count"));
    assert_eq!(c.embedding_length, n("embedding_length"));
    assert_eq!(c.feed_forward_length, n("feed_forward_length"));
    assert_eq!(c.head_count, n("head_count"));
    assert_eq!(c.head_count_kv, n("head_count_kv"));
    assert_eq!(c.head_dim, n("embedding_length") / n("head_count"));
    assert_eq!(c.rope_dimension_count, n("rope_dimension_count"));
    assert_eq!(c.context_length, n("context_length"));
    assert_eq!(c.vocab_size, n("vocab_size"));
    assert_eq!(
        f64::from(c.rope_freq_base),
        w["rope_freq_base"].as_f64().unwrap()
    );
    assert_eq!(
        f64::from(c.rms_norm_eps),
        w["rms_norm_eps"].as_f64().unwrap()
    );
    assert_eq!(c.tied_embeddings, w["tied_embeddings"].as_bool().unwrap());
}

#[test]
fn llama_config_from_converter_metadata() {
    config_matches("llama.gguf", Architecture::Llama);
    assert!(Architecture::Llama.qk_rows_permuted());
}

#[test]
fn qwen2_config_with_separate_output_head() {
    config_matches("qwen2.gguf", Architecture::Qwen2);
    assert!(!Architecture::Qwen2.qk_rows_permuted());
}

#[test]
fn qk_unpermutation_inverts_the_converters_permute() {
    for case in expected()["qk_permutation"].as_array().unwrap() {
        let d = case["head_dim"].as_u64().unwrap() as usize;
        let hf_at_gguf = case["hf_row_at_gguf_row"].as_array().unwrap();
        assert_eq!(
            hf_at_gguf.len(),
            case["n_head"].as_u64().unwrap() as usize * d
        );
        for (gguf_row, hf_row) in hf_at_gguf.iter().enumerate() {
            let hf_row = hf_row.as_u64().unwrap() as usize;
            assert_eq!(
                unpermute_qk_row(hf_row, d),
                Some(gguf_row),
                "head_dim {d}, HF row {hf_row}"
            );
        }
    }
}
