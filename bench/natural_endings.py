"""How long answers run when a request sets no token limit (issue 9: natural endings).

Sends 50 varied prompts, one at a time, through Converse with no `inferenceConfig` (the model's default
sampling, as pydantic-ai, the JS SDK or strands send them) to a Claude 4.5 id, and prints the distribution of
output tokens and seconds per answer plus the stop reasons. The loop guard (emulator/engine/loopguard.py) and the
fallback budget (BEDROCK_EMULATOR_NATURAL_BUDGET, 1024 tokens by default) are what end them.

    .venv/bin/python bench/natural_endings.py            # starts its own emulator on a free port
    .venv/bin/python bench/natural_endings.py --url http://127.0.0.1:9100

Seconds depend on the machine's load: say so when quoting them.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

MODEL_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
PROMPTS = [
    "What is the capital of France?",
    "Who are you?",
    "Say hello.",
    "What is 2 + 2?",
    "Name three primary colors.",
    "Write a haiku about the sea.",
    "Explain photosynthesis in one paragraph.",
    "Give me a recipe for pancakes.",
    "What is the tallest mountain in the world?",
    "Translate 'good morning' into Spanish.",
    "List five fruits.",
    "Why is the sky blue?",
    "Write a short poem about autumn leaves.",
    "What does HTTP stand for?",
    "How many days are in a leap year?",
    "Tell me a joke.",
    "Summarize the plot of Romeo and Juliet.",
    "What is the boiling point of water in Celsius?",
    "Write a Python function that adds two numbers.",
    "What is machine learning?",
    "Describe a cat in three sentences.",
    "What are the planets of the solar system?",
    "How do I make a cup of tea?",
    "What is the difference between weather and climate?",
    "Give me three tips for better sleep.",
    "Who wrote Hamlet?",
    "What is the square root of 81?",
    "Write a limerick about a programmer.",
    "Explain what a black hole is to a child.",
    "What is the largest ocean on Earth?",
    "Suggest a name for a pet dog.",
    "What are the benefits of exercise?",
    "Write a thank-you note to a teacher.",
    "What is the chemical symbol for gold?",
    "How does a rainbow form?",
    "Write a story about a robot who wants to paint.",
    "What is the meaning of the word 'ephemeral'?",
    "List the days of the week.",
    "Explain recursion with an example.",
    "What should I pack for a beach holiday?",
    "Who painted the Mona Lisa?",
    "Describe the water cycle.",
    "Write an email asking for a meeting next week.",
    "What is the speed of light?",
    "Give me a motivational quote.",
    "How do airplanes fly?",
    "Count from one to ten.",
    "What is JSON?",
    "Compare cats and dogs as pets.",
    "Write a product description for a reusable water bottle.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an emulator already running (default: start one)")
    parser.add_argument("--port", type=int, default=0, help="port for the emulator it starts (default: a free one)")
    parser.add_argument("--model", default=MODEL_ID)
    args = parser.parse_args()
    server = None
    url = args.url
    if url is None:
        from emulator.server import BackgroundServer

        server = BackgroundServer(port=args.port).start()
        url = server.url
    client = boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test",
                          config=Config(retries={"total_max_attempts": 1}, read_timeout=600))
    tokens, seconds, reasons = [], [], collections.Counter()
    try:
        for prompt in PROMPTS:
            started = time.monotonic()
            reply = client.converse(modelId=args.model, messages=[{"role": "user", "content": [{"text": prompt}]}])
            seconds.append(time.monotonic() - started)
            tokens.append(reply["usage"]["outputTokens"])
            reasons[reply["stopReason"]] += 1
            print(f"{tokens[-1]:5d} tok {seconds[-1]:6.2f} s {reply['stopReason']:10s} {prompt}", flush=True)
    finally:
        if server is not None:
            server.stop()
    print(f"\n{len(PROMPTS)} prompts, Converse without inferenceConfig, model {args.model}")
    print(f"output tokens: median {statistics.median(tokens):.0f}, p90 {sorted(tokens)[int(0.9 * len(tokens))]}, "
          f"max {max(tokens)}")
    print(f"seconds:       median {statistics.median(seconds):.2f}, p90 {sorted(seconds)[int(0.9 * len(seconds))]:.2f}, "
          f"max {max(seconds):.2f}")
    print("stop reasons:  " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()))


if __name__ == "__main__":
    main()
