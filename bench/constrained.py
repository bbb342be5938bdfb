"""What constrained decoding costs: the grammar's work per token, and a forced tool call end to end.

    python bench/constrained.py            # both parts
    python bench/constrained.py --mask     # per-token mask cost only (no server)

Part 1 drives `GrammarConstraint` with random logits over the property-test schemas (tests/test_tools_property.py)
and reports milliseconds per token for `mask_logits` + `advance` (median and worst step). Part 2 starts the
emulator (`bench.common.Emulator`) and compares seconds per output token of a forced Converse tool call with a
plain text answer of the same length.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def mask_cost() -> None:
    from transformers import AutoTokenizer

    from emulator.catalog import Catalog
    from emulator.engine import constrained, sources
    from test_tools_property import SCHEMAS

    spec = Catalog.load(None).spec.local_models["smollm2-135m-instruct"]
    folder = sources.resolve(spec.package, spec.path, sources.default_cache_dir())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    started = time.perf_counter()
    grammars = constrained.grammar_tokenizer(tokenizer)
    print(f"grammar tokenizer built in {time.perf_counter() - started:.2f}s (once per model)")
    rng = np.random.default_rng(0)
    for name, schema in SCHEMAS.items():
        started = time.perf_counter()
        grammar = constrained.json_schema_grammar(schema)
        compiled_ms = (time.perf_counter() - started) * 1000
        constraint = constrained.GrammarConstraint(grammars, grammar, 120)
        steps = []
        while not constraint.is_complete() and len(steps) < 120:
            logits = torch.from_numpy(rng.standard_normal(grammars.vocab_size).astype(np.float32))
            started = time.perf_counter()
            masked = constraint.mask_logits(logits)
            masked_at = time.perf_counter()
            token = int(torch.multinomial(torch.softmax(masked, -1), 1))  # sampling is not the grammar's cost
            advance_at = time.perf_counter()
            constraint.advance(token)
            steps.append((masked_at - started + time.perf_counter() - advance_at) * 1000)
        print(f"{name:22} compile {compiled_ms:6.1f} ms  {len(steps):3d} tokens  "
              f"median {statistics.median(steps):.3f} ms/token  worst {max(steps):.2f} ms")


def end_to_end(rounds: int = 5) -> None:
    import boto3
    from botocore.config import Config

    from common import MODEL_ID, Emulator

    emulator = Emulator(threads=2)
    try:
        emulator.wait_healthy()
        client = boto3.client("bedrock-runtime", endpoint_url=emulator.url, region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="x",
                              config=Config(retries={"total_max_attempts": 1}, read_timeout=600))
        schema = {"type": "object", "properties": {"story": {"type": "string"}}, "required": ["story"]}
        tool = {"tools": [{"toolSpec": {"name": "tell", "inputSchema": {"json": schema}}}],
                "toolChoice": {"tool": {"name": "tell"}}}
        ask = [{"role": "user", "content": [{"text": "Write a long story about a dragon who learns to cook."}]}]
        for label, extra in (("plain text", {}), ("forced tool call", {"toolConfig": tool})):
            per_token = []
            for _ in range(rounds):
                started = time.perf_counter()
                reply = client.converse(modelId=MODEL_ID, messages=ask, inferenceConfig={"maxTokens": 96, "temperature": 0},
                                        **extra)
                per_token.append((time.perf_counter() - started) / reply["usage"]["outputTokens"] * 1000)
            print(f"{label:17} {statistics.median(per_token):6.1f} ms per output token (median of {rounds}, "
                  f"{reply['usage']['outputTokens']} tokens)")
    finally:
        emulator.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mask", action="store_true", help="only the per-token mask cost (no server)")
    args = parser.parse_args()
    mask_cost()
    if not args.mask:
        end_to_end()
