"""Expected chat-template renderings, from Hugging Face transformers' `apply_chat_template`, for
tributary-model's chat-template tests; and the tokenizer_config.json + chat_template.jinja that
transformers saves, for the llama-gqa fixture the server tests chat with.

Needs transformers but not torch (tokenizers only). Run by `cargo xtask fixtures` after
make_fixtures.py, which recreates the fixture folders.

The templates are written in the styles that published models ship (ChatML as in Qwen2, Llama 3,
the Mistral/Llama 2 `[INST]` style with `raise_exception` and `.strip()`, and a `tojson` one), so
the test covers trim_blocks/lstrip_blocks, Python string methods, loop variables, namespaces,
errors raised from a template and JSON the way Python's json.dumps writes it.
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"

CHATML = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA3 = (
    "{% set loop_messages = messages %}"
    "{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

INST = """{{ bos_token }}
{% if messages[0]['role'] == 'system' %}
    {% set ns = namespace(system=messages[0]['content'].strip() + '\\n\\n') %}
    {% set loop_messages = messages[1:] %}
{% else %}
    {% set ns = namespace(system='') %}
    {% set loop_messages = messages %}
{% endif %}
{% for message in loop_messages %}
    {% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {% endif %}
    {% if message['role'] == 'user' %}
        {% if loop.first %}
{{ '[INST] ' + ns.system + message['content'].strip() + ' [/INST]' }}
        {% else %}
{{ '[INST] ' + message['content'].strip() + ' [/INST]' }}
        {% endif %}
    {% elif message['role'] == 'assistant' %}
{{ ' ' + message['content'].strip() + eos_token }}
    {% endif %}
{% endfor %}
"""

TOJSON = (
    "{% for message in messages %}"
    "{{ message | tojson }}\n"
    "{% if message.content.startswith('Hi') %}greeting{% endif %}"
    "{{ message.content.upper() | length }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}>{% endif %}"
)

CONVERSATIONS = [
    [{"role": "user", "content": "What is a datanet?"}],
    [
        {"role": "system", "content": "  You answer briefly.  "},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": " Hello! "},
        {"role": "user", "content": "Who wrote \"this\" — and why? ünïcödé"},
    ],
    [
        {"role": "user", "content": "one"},
        {"role": "user", "content": "two in a row"},
    ],
]

TEMPLATES = {"chatml": CHATML, "llama3": LLAMA3, "inst": INST, "tojson": TOJSON}
BOS, EOS = "<s>", "</s>"


def render(tok, conversation, add_generation_prompt):
    try:
        text = tok.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        return {"expected": text}
    except Exception as e:  # the template raised: only the message is compared
        return {"error": str(e)}


def main():
    tokenizer = Tokenizer.from_file(str(FIXTURES / "llama-gqa" / "tokenizer.json"))
    cases = []
    for name, template in TEMPLATES.items():
        tok = PreTrainedTokenizerFast(
            tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, chat_template=template
        )
        for conversation in CONVERSATIONS:
            for add in (True, False):
                cases.append(
                    {
                        "template": name,
                        "add_generation_prompt": add,
                        "messages": conversation,
                        **render(tok, conversation, add),
                    }
                )
    out = FIXTURES / "chat"
    out.mkdir(exist_ok=True)
    doc = {"bos_token": BOS, "eos_token": EOS, "templates": TEMPLATES, "cases": cases}
    (out / "cases.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")

    # The server fixture: ChatML over the fixture's own end-of-text token, saved the way
    # transformers saves a tokenizer (tokenizer_config.json + chat_template.jinja).
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        chat_template=CHATML,
    )
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        for file in ("tokenizer_config.json", "chat_template.jinja"):
            shutil.copy(Path(tmp) / file, FIXTURES / "llama-gqa" / file)
    print(f"wrote {out / 'cases.json'} and llama-gqa's chat template", file=sys.stderr)


if __name__ == "__main__":
    main()
