"""Scripted responses through InvokeModel and InvokeModelWithResponseStream, in every text family's native shape.

The family table (bodies, where each reply keeps its text, stop reasons) is the one the InvokeModel tests use.
"""

from __future__ import annotations

import pytest
from native_calls import invoke, metrics_only_last, stream, token_headers
from test_invoke_text import FAMILIES, STOPPING

SCRIPTED = "Scripted native answer, word by word."
USAGE = {"input_tokens": 8, "output_tokens": 4}


@pytest.mark.parametrize("name", FAMILIES)
def test_invoke_model_answers_in_the_familys_shape(client, bedrock_emulator, name):
    family = FAMILIES[name]
    bedrock_emulator.script(SCRIPTED, stop_reason="max_tokens", usage=USAGE, operation="InvokeModel")
    reply, headers = invoke(client, family.model, family.body(50, None))
    assert family.text(reply) == SCRIPTED
    assert family.reason(reply) == family.length  # the scripted reason in the family's own words
    assert token_headers(headers) == (8, 4)
    if family.counts is not None:
        assert family.counts(reply) == (8, 4)


@pytest.mark.parametrize("name", [name for name in FAMILIES if FAMILIES[name].streams])
def test_invoke_model_stream_chunks_carry_the_scripted_text(client, bedrock_emulator, name):
    family = FAMILIES[name]
    bedrock_emulator.script(SCRIPTED, usage=USAGE, operation="InvokeModelWithResponseStream")
    chunks, _ = stream(client, family.model, family.body(50, None))
    assert "".join(family.chunk_text(chunk) for chunk in chunks) == SCRIPTED
    metrics = metrics_only_last(chunks)
    assert (metrics["inputTokenCount"], metrics["outputTokenCount"]) == (8, 4)


@pytest.mark.parametrize("name", STOPPING)
def test_a_scripted_stop_sequence_uses_the_familys_reason(client, bedrock_emulator, name):
    family = FAMILIES[name]
    bedrock_emulator.script(SCRIPTED, stop_reason="stop_sequence", stop_sequence="END")
    reply, _ = invoke(client, family.model, family.body(50, ["END"]))
    assert family.reason(reply) == family.stop
