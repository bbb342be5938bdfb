"""llama.cpp baseline worker: `llama_worker.py GGUF THREADS`, then one JSON request per stdin line.

Each request {"ids": [...], "n": N} decodes N tokens greedily after the prompt (end-of-text ignored, so both sides
decode the same count) and answers {"tokens", "ttft_s", "decode_tok_s"}: the decode rate is measured between the
first and the last token, as for the emulator's stream.
"""

from __future__ import annotations

import json
import sys
import time

from llama_cpp import Llama


def main() -> None:
    gguf, threads = sys.argv[1], int(sys.argv[2])
    llm = Llama(model_path=gguf, n_threads=threads, n_threads_batch=threads, n_ctx=2048, verbose=False)
    import llama_cpp

    print(json.dumps({"llama_cpp_python": llama_cpp.__version__, "threads": threads}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        n = request["n"]
        llm.reset()
        started = time.perf_counter()
        times, tokens = [], []
        for token in llm.generate(request["ids"], temp=0.0, top_k=1, reset=True):
            times.append(time.perf_counter())
            tokens.append(int(token))
            if len(tokens) == n:
                break
        print(json.dumps({
            "tokens": tokens,
            "ttft_s": times[0] - started,
            "decode_tok_s": (n - 1) / (times[-1] - times[0]),
        }), flush=True)


if __name__ == "__main__":
    main()
