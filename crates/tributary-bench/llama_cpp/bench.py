"""Prefill and decode speed of llama.cpp (through llama-cpp-python) on a GGUF, as the one JSON line
that tributary-bench's `bench-model` prints for the other engines: the same prompt ids, one pass
over the prompt, then greedy steps one token at a time, medians of a few runs, and the process's
peak resident memory.

    python bench.py --model FILE.gguf --threads N [--prefill 128] [--decode 64] [--reps 3]
"""

import argparse
import json
import resource
import statistics
import time

import llama_cpp
import numpy as np
from llama_cpp import Llama


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--prefill", type=int, default=128)
    p.add_argument("--decode", type=int, default=64)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    llm = Llama(
        model_path=a.model,
        n_ctx=a.prefill + a.decode + 16,
        n_batch=a.prefill,
        n_threads=a.threads,
        n_threads_batch=a.threads,
        verbose=False,
    )
    vocab = llm.n_vocab()
    # The ids bench-model uses: spread over the vocabulary, the same for every engine.
    prompt = [(i * 7919 + 17) % vocab for i in range(a.prefill)]

    def last_argmax():
        # Without logits_all, llama-cpp-python keeps no copy of the logits: read llama.cpp's own
        # buffer for the last position of the last batch, as its sampler does.
        logits = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(logits, shape=(vocab,))))

    def run(prefill_ids, steps):
        llm.reset()
        t = time.perf_counter()
        llm.eval(prefill_ids)
        token = last_argmax()
        prefill = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(steps):
            llm.eval([token])
            token = last_argmax()
        return prefill, time.perf_counter() - t

    run(prompt[:8], 2)  # warm-up, untimed
    times = [run(prompt, a.decode) for _ in range(a.reps)]
    print(
        json.dumps(
            {
                "engine": "llama.cpp",
                "threads": a.threads,
                "prefill_tokens_per_s": a.prefill / statistics.median(t[0] for t in times),
                "decode_tokens_per_s": a.decode / statistics.median(t[1] for t in times),
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
