"""Builds the tiny reference checkpoints, PEFT adapters and expected outputs that tributary-model's
tests compare against. Run through `cargo xtask fixtures` (which pins the Python packages in a
virtual environment outside the repo); the output is committed under tests/fixtures/.

Everything here comes from Hugging Face transformers + PEFT, not from our code: the weights are
random, the tokenizer is a small byte-level BPE trained here on the GPL-3 text Debian ships, and the
expected logits and greedy tokens are what transformers computes in float32.
"""

import copy
import json
import zlib
import shutil
import sys
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
CORPUS = Path("/usr/share/common-licenses/GPL-3")
VOCAB = 384
PROMPTS = [
    "This License applies to any program",
    "You may convey verbatim copies of the Program",
]
GREEDY_TOKENS = 32

ATTN = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP = ["gate_proj", "up_proj", "down_proj"]


def train_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train([str(CORPUS)], trainer)
    return tok


def models_to_build():
    common = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        bos_token_id=0,
        eos_token_id=0,
    )
    yield (
        "llama-gqa",
        LlamaForCausalLM,
        LlamaConfig(**common, num_key_value_heads=2, rope_theta=10000.0, tie_word_embeddings=False),
        torch.float32,
        None,
        [("attn-r8", 8, 16, ATTN, False), ("mlp-r4", 4, 8, MLP, True)],
    )
    yield (
        "llama-tied-rope3",
        LlamaForCausalLM,
        LlamaConfig(
            **common,
            num_key_value_heads=4,
            tie_word_embeddings=True,
            rope_theta=500000.0,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 32,
            },
        ),
        torch.bfloat16,
        None,
        [("qv-r2", 2, 4, ["q_proj", "v_proj"], False)],
    )
    yield (
        "qwen2-bias",
        Qwen2ForCausalLM,
        Qwen2Config(**common, num_key_value_heads=1, rope_theta=1000000.0, tie_word_embeddings=False),
        torch.float16,
        "150KB",
        [("all-r6", 6, 12, ATTN + MLP, False)],
    )


def last_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1].tolist()


def greedy(model, ids):
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=GREEDY_TOKENS,
            min_new_tokens=GREEDY_TOKENS,
            do_sample=False,
            pad_token_id=0,
        )
    return out[0, len(ids):].tolist()


def expected(model, prompt_ids):
    return [
        {"prompt_ids": ids, "last_logits": last_logits(model, ids), "greedy": greedy(model, ids)}
        for ids in prompt_ids
    ]


def main():
    torch.manual_seed(20261124)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    tok = train_tokenizer()
    prompt_ids = [tok.encode(p).ids for p in PROMPTS]

    for name, cls, config, dtype, shard, adapters in models_to_build():
        folder = OUT / name
        model = cls(config).eval()
        # Larger-than-init weights so the outputs depend visibly on every parameter.
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.endswith("norm.weight"):
                    p.normal_(1.0, 0.1)
                else:
                    p.normal_(0.0, 0.08)
        # Store in `dtype`; the reference is computed by transformers from the files as saved,
        # loaded back in float32 (converting the model in memory would also round buffers such
        # as RoPE's inverse frequencies, which a fresh load recomputes).
        model.to(dtype).save_pretrained(folder, max_shard_size=shard or "50MB")
        model = cls.from_pretrained(folder, dtype=torch.float32).eval()
        tok.save(str(folder / "tokenizer.json"))

        reference = {"model": name, "prompts": PROMPTS, "base": expected(model, prompt_ids), "adapters": {}}
        for adapter, r, alpha, targets, rslora in adapters:
            torch.manual_seed(zlib.crc32(adapter.encode()))
            peft_config = LoraConfig(
                r=r,
                lora_alpha=alpha,
                target_modules=targets,
                lora_dropout=0.0,
                use_rslora=rslora,
                init_lora_weights=False,  # random, non-zero B
            )
            tuned = get_peft_model(copy.deepcopy(model), peft_config)
            with torch.no_grad():
                for n, p in tuned.named_parameters():
                    if "lora_" in n:
                        p.normal_(0.0, 0.1)
            adapter_dir = folder / "adapters" / adapter
            tuned.save_pretrained(adapter_dir)
            (adapter_dir / "README.md").unlink()  # PEFT's blank model card
            loaded = PeftModel.from_pretrained(copy.deepcopy(model), adapter_dir).eval()
            reference["adapters"][adapter] = expected(loaded, prompt_ids)
        (folder / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
        print(f"wrote {folder}", file=sys.stderr)


if __name__ == "__main__":
    main()
