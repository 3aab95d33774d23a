#!/usr/bin/env python3
"""Writes the GGUF fixtures of tributary-gguf's tests with llama.cpp's own Python package.

The Rust reader is checked against these files, so they must come from the reference
implementation and not from our code: gguf-py's GGUFWriter lays out the files, gguf.quants
quantizes what it can, and gguf.quants.dequantize gives the expected values.

gguf 0.19.0 cannot *quantize* Q4_K or Q6_K (it only dequantizes them), so those tensors are
random super-blocks with finite f16 scales; that exercises every bit of the packed 6-bit scales,
which real quantized data would not.

    python3 -m venv /tmp/gguf-venv
    /tmp/gguf-venv/bin/pip install -r crates/tributary-gguf/reference/requirements.txt
    /tmp/gguf-venv/bin/python crates/tributary-gguf/reference/make_fixtures.py

Deterministic: the same versions write the same bytes.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
ROWS, COLS = 2, 256


def exact(x) -> float:
    """A float32 as the double that equals it, so JSON carries it without rounding."""
    return float(np.float32(x))


def write(path: Path, writer: gguf.GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"{path.name}: {path.stat().st_size} bytes")


def record_offsets(path: Path, tensors: list[dict]) -> None:
    """Where gguf-py's own reader finds each tensor's data: the reference for our layout."""
    reader = gguf.GGUFReader(path)
    found = {t.name: int(t.data_offset) for t in reader.tensors}
    for t in tensors:
        t["file_offset"] = found[t["name"]]


def random_k_blocks(rng: np.random.Generator, qtype: Q, n_blocks: int) -> np.ndarray:
    """Random Q4_K / Q6_K super-blocks whose f16 fields are finite, moderate scales."""
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    if qtype == Q.Q4_K:
        # {f16 d, f16 dmin, u8 scales[12], u8 qs[128]}
        d = rng.uniform(0.001, 0.05, size=n_blocks).astype(np.float16)
        dmin = rng.uniform(0.001, 0.05, size=n_blocks).astype(np.float16)
        blocks[:, 0:2] = d.view(np.uint8).reshape(n_blocks, 2)
        blocks[:, 2:4] = dmin.view(np.uint8).reshape(n_blocks, 2)
    elif qtype == Q.Q6_K:
        # {u8 ql[128], u8 qh[64], i8 scales[16], f16 d}
        d = rng.uniform(0.0005, 0.01, size=n_blocks).astype(np.float16)
        blocks[:, 208:210] = d.view(np.uint8).reshape(n_blocks, 2)
    else:
        raise ValueError(qtype)
    return blocks


def tensors_fixture(expected: dict) -> None:
    """Every supported tensor type, and metadata of every value type."""
    path = OUT / "tensors.gguf"
    w = gguf.GGUFWriter(path, "tributary-test")
    meta: dict[str, dict] = {"general.architecture": {"type": "STRING", "value": "tributary-test"}}

    def kv(key: str, value, vtype: V, sub_type: V | None = None, expect=None) -> None:
        w.add_key_value(key, value, vtype, sub_type)
        entry = {"type": vtype.name, "value": value if expect is None else expect}
        if sub_type is not None:
            entry["element_type"] = sub_type.name
        meta[key] = entry

    kv("test.u8", 200, V.UINT8)
    kv("test.i8", -100, V.INT8)
    kv("test.u16", 60000, V.UINT16)
    kv("test.i16", -30000, V.INT16)
    kv("test.u32", 4_000_000_000, V.UINT32)
    kv("test.i32", -2_000_000_000, V.INT32)
    kv("test.u64", 18_000_000_000_000_000_000, V.UINT64)
    kv("test.i64", -9_000_000_000_000_000_000, V.INT64)
    kv("test.f32", 0.1, V.FLOAT32, expect=exact(0.1))
    kv("test.f64", 0.1, V.FLOAT64)
    kv("test.bool_true", True, V.BOOL)
    kv("test.bool_false", False, V.BOOL)
    kv("test.string", "Grüße, 世界 🦀", V.STRING)
    kv("test.empty_string", "", V.STRING)
    kv("test.array.u8", [0, 1, 255], V.ARRAY, V.UINT8)
    kv("test.array.i8", [-128, 0, 127], V.ARRAY, V.INT8)
    kv("test.array.u16", [0, 65535], V.ARRAY, V.UINT16)
    kv("test.array.i16", [-32768, 32767], V.ARRAY, V.INT16)
    kv("test.array.u32", [0, 4_294_967_295], V.ARRAY, V.UINT32)
    kv("test.array.i32", [-2_147_483_648, 2_147_483_647], V.ARRAY, V.INT32)
    kv("test.array.u64", [0, 18_446_744_073_709_551_615], V.ARRAY, V.UINT64)
    kv("test.array.i64", [-9_223_372_036_854_775_808, 9_223_372_036_854_775_807], V.ARRAY, V.INT64)
    kv("test.array.f32", [1.5, -0.1, 3.0e38], V.ARRAY, V.FLOAT32,
       expect=[exact(1.5), exact(-0.1), exact(3.0e38)])
    kv("test.array.f64", [1.5, -0.1, 1.0e300], V.ARRAY, V.FLOAT64)
    kv("test.array.bool", [True, False, True], V.ARRAY, V.BOOL)
    kv("test.array.string", ["a", "", "ü"], V.ARRAY, V.STRING)
    # Arrays of arrays: gguf-py infers the inner element type from the first item (str -> STRING).
    kv("test.array.nested", [["x", "y"], ["z"]], V.ARRAY, V.ARRAY,
       expect=[{"element_type": "STRING", "value": ["x", "y"]},
               {"element_type": "STRING", "value": ["z"]}])

    rng = np.random.default_rng(20240601)
    tensors = []

    def add(name: str, qtype: Q, data: np.ndarray | None = None, raw: np.ndarray | None = None) -> None:
        if raw is None:
            raw = gguf.quants.quantize(data, qtype)
        if qtype in (Q.F32, Q.F16):
            w.add_tensor(name, raw)
        else:
            w.add_tensor(name, raw, raw_dtype=qtype)
        values = gguf.quants.dequantize(raw, qtype).astype(np.float32)
        shape = values.shape
        tensors.append({
            "name": name,
            "type": qtype.name,
            # GGUF lists dimensions innermost first: ne0 is numpy's last axis.
            "ne": list(reversed(shape)),
            "values": [exact(v) for v in values.reshape(-1)],
        })

    data = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    add("f32", Q.F32, data[:, :64].copy())
    add("f16", Q.F16, data[:, :64].copy())
    add("bf16", Q.BF16, data[:, :64].copy())
    add("q8_0", Q.Q8_0, data)
    add("q4_0", Q.Q4_0, data)
    # An offset so that Q4_1's minimum is not symmetric around zero.
    add("q4_1", Q.Q4_1, data + np.float32(0.75))
    add("q4_k", Q.Q4_K, raw=random_k_blocks(rng, Q.Q4_K, ROWS).reshape(ROWS, -1))
    add("q6_k", Q.Q6_K, raw=random_k_blocks(rng, Q.Q6_K, ROWS).reshape(ROWS, -1))
    # A 1-D and a 3-D tensor, for the order of dimensions.
    add("norm", Q.F32, rng.standard_normal(64).astype(np.float32))
    add("cube", Q.F32, rng.standard_normal((2, 3, 32)).astype(np.float32))

    write(path, w)
    record_offsets(path, tensors)
    expected[path.name] = {"version": 3, "alignment": 32, "metadata": meta, "tensors": tensors}


def aligned_fixture(expected: dict) -> None:
    """A custom general.alignment: tensor data starts on 256-byte boundaries."""
    path = OUT / "aligned256.gguf"
    w = gguf.GGUFWriter(path, "tributary-test")
    w.add_custom_alignment(256)
    rng = np.random.default_rng(7)
    tensors = []
    for name, n in (("a", 3), ("b", 40), ("c", 64)):
        data = rng.standard_normal(n).astype(np.float32)
        w.add_tensor(name, data)
        tensors.append({"name": name, "type": "F32", "ne": [n], "values": [exact(v) for v in data]})
    write(path, w)
    record_offsets(path, tensors)
    expected[path.name] = {"version": 3, "alignment": 256, "tensors": tensors}


def model_fixture(expected: dict, arch: str, tied: bool) -> None:
    """A tiny model file with the metadata llama.cpp writes for the Llama family."""
    path = OUT / f"{arch}.gguf"
    w = gguf.GGUFWriter(path, arch)
    cfg = {
        "block_count": 2,
        "embedding_length": 64,
        "feed_forward_length": 160,
        "head_count": 4,
        "head_count_kv": 2,
        "rope_freq_base": 100000.0,
        "rms_norm_eps": exact(1e-5),
        "context_length": 8192,
        "rope_dimension_count": 16,
        "vocab_size": 12,
        "tied_embeddings": tied,
    }
    w.add_block_count(cfg["block_count"])
    w.add_embedding_length(cfg["embedding_length"])
    w.add_feed_forward_length(cfg["feed_forward_length"])
    w.add_head_count(cfg["head_count"])
    w.add_head_count_kv(cfg["head_count_kv"])
    w.add_rope_freq_base(cfg["rope_freq_base"])
    w.add_layer_norm_rms_eps(1e-5)
    w.add_context_length(cfg["context_length"])
    w.add_rope_dimension_count(cfg["rope_dimension_count"])
    tokens = ["<|im_start|>", "<|im_end|>"] + [chr(c) for c in range(ord("a"), ord("a") + 10)]
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([1] * len(tokens))
    rng = np.random.default_rng(11)
    emb = rng.standard_normal((len(tokens), cfg["embedding_length"])).astype(np.float32)
    w.add_tensor("token_embd.weight", gguf.quants.quantize(emb, Q.Q8_0), raw_dtype=Q.Q8_0)
    w.add_tensor("output_norm.weight", np.ones(cfg["embedding_length"], dtype=np.float32))
    if not tied:
        w.add_tensor("output.weight", gguf.quants.quantize(emb, Q.Q8_0), raw_dtype=Q.Q8_0)
    write(path, w)
    cfg["architecture"] = arch
    expected[path.name] = {"config": cfg}


def qk_permutation(expected: dict) -> None:
    """Where llama.cpp's converter puts each Hugging Face row of q_proj / k_proj.

    convert_hf_to_gguf.py's LlamaModel.permute reshapes the rows to (n_head, 2, head_dim/2),
    swaps the last two axes and flattens; applying the same to row numbers gives, for each GGUF
    row, the HF row it holds.
    """
    cases = []
    for n_head, head_dim in ((3, 64), (2, 8)):
        rows = np.arange(n_head * head_dim)
        hf_row_at_gguf_row = rows.reshape(n_head, 2, head_dim // 2).swapaxes(1, 2).reshape(-1)
        cases.append({"n_head": n_head, "head_dim": head_dim,
                      "hf_row_at_gguf_row": [int(r) for r in hf_row_at_gguf_row]})
    expected["qk_permutation"] = cases


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    expected: dict = {"gguf_version": version("gguf"), "numpy_version": np.__version__}
    tensors_fixture(expected)
    aligned_fixture(expected)
    model_fixture(expected, "llama", tied=True)
    model_fixture(expected, "qwen2", tied=False)
    qk_permutation(expected)
    with open(OUT / "expected.json", "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"expected.json: {(OUT / 'expected.json').stat().st_size} bytes")


if __name__ == "__main__":
    main()
