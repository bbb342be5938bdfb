"""How far the serving path's greedy output is from transformers' float32 reference on the same weights.

For a fixed prompt set, transformers' `generate` (float32, greedy) gives the reference tokens; the emulator's
decoder (the default packed weights) decodes greedily along the same prompt. Reported per prompt: how many leading
tokens are identical (a strict measure: after the first different token the texts usually still read alike, but
nothing after it counts). llama.cpp on the same GGUF is measured the same way, for scale. Also the embedding
encoder's largest difference from transformers' BertModel.
"""

from __future__ import annotations

import json

import torch

PROMPTS = [
    "What is the capital of France?",
    "Translate 'good morning' into Japanese.",
    "Tell me a story.",
    "Write a haiku about the sea.",
    "Explain what a CPU cache is.",
    "List three prime numbers.",
    "What is 17 times 23?",
    "Give me a recipe for pancakes.",
    "Who wrote Pride and Prejudice?",
    "Summarize the theory of relativity in two sentences.",
    "Write a Python function that reverses a string.",
    "What are the colors of the rainbow?",
    "Describe a sunset to someone who cannot see.",
    "What is the boiling point of water in Fahrenheit?",
    "Suggest a name for a pet turtle.",
    "Why is the sky blue?",
]


def _prefix(got: list[int], want: list[int]) -> int:
    same = 0
    for a, b in zip(got, want):
        if a != b:
            break
        same += 1
    return same


def measure(tokens: int, threads: int = 1, llama_python: str | None = None) -> dict:
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    from bench.common import LlamaCpp, converted_folder
    from emulator.engine import decoder, encoder, sources, text_model

    folder = converted_folder()
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(folder)
    reference = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    weights = text_model.weight_format(torch.device("cpu"))
    config = json.loads((folder / "config.json").read_text())
    # the server's decoder: the native step unless BEDROCK_EMULATOR_NATIVE=0 (then torch's)
    fast = decoder.Decoder(config, decoder.load_packed(folder, weights), weights, torch.device("cpu"),
                           native_cache=sources.default_cache_dir())
    print(f"  agreement: {'native' if fast.native is not None else 'torch'} decode step", flush=True)
    eos = reference.generation_config.eos_token_id
    per_prompt = []
    try:
        llama = LlamaCpp(threads, llama_python)
    except Exception as exc:  # llama-cpp-python not installed (`pip install -e '.[bench]'`): the emulator's figure alone
        print(f"  agreement: llama.cpp baseline unavailable ({type(exc).__name__}); measuring the emulator only")
        llama = None
    with torch.inference_mode():
        for prompt in PROMPTS:
            text = text_model.render_chat(tok, [{"role": "user", "content": prompt}])  # what the emulator renders
            ids = tok(text, add_special_tokens=False)["input_ids"]
            ref = reference.generate(torch.tensor([ids]), max_new_tokens=tokens, do_sample=False,
                                     attention_mask=torch.ones(1, len(ids), dtype=torch.long))[0, len(ids):].tolist()
            logits = fast.prefill(0, ids)
            same = 0
            for step, want in enumerate(ref):
                got = int(logits.argmax())
                if got != want:
                    break
                same += 1
                if got == eos:
                    break
                logits = fast.decode([got], [len(ids) + step])[0]
            base = _prefix(llama.generate(ids, len(ref))["tokens"], ref) if llama else None
            per_prompt.append({"prompt": prompt, "reference_tokens": len(ref), "identical_prefix": same,
                               "llama_identical_prefix": base})
            print(f"  agreement: {same}/{len(ref)} identical (llama.cpp {base})  {prompt!r}", flush=True)
    if llama:
        llama.stop()
    total = sum(p["reference_tokens"] for p in per_prompt)
    identical = sum(p["identical_prefix"] for p in per_prompt)
    return {
        "weights": weights,
        "prompts": len(PROMPTS),
        "tokens": tokens,
        "identical_prompts": sum(p["identical_prefix"] == p["reference_tokens"] for p in per_prompt),
        "token_agreement": identical / total,
        "llama_identical_prompts": sum(p["llama_identical_prefix"] == p["reference_tokens"] for p in per_prompt)
        if llama else None,
        "llama_token_agreement": sum(p["llama_identical_prefix"] for p in per_prompt) / total if llama else None,
        "per_prompt": per_prompt,
        "embedding_max_abs_diff": _embedding_diff(AutoModel, AutoTokenizer, encoder),
    }


def _embedding_diff(auto_model, auto_tokenizer, encoder) -> float:
    from emulator.catalog import Catalog
    from emulator.engine import sources

    spec = Catalog.load().spec.local_models["all-minilm-l6-v2"]
    folder = sources.resolve(spec.package, spec.path, sources.default_cache_dir())
    tok = auto_tokenizer.from_pretrained(folder)
    batch = tok(PROMPTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        ref = auto_model.from_pretrained(folder).eval()(**batch).last_hidden_state
        lean = encoder.BertEncoder(folder, torch.device("cpu"))(**batch).last_hidden_state
    mask = batch["attention_mask"].bool()
    return float((ref - lean)[mask].abs().max())
