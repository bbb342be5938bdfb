"""The reply-block state machine: generation events -> ConverseStream block events and the whole message content."""

from __future__ import annotations

import json

from emulator.engine.types import END_TURN, Finished, TextDelta, ToolInputDelta, ToolUse, ToolUseStart
from emulator.tools.blocks import Closed, Delta, Opened, ReplyBlocks, converse_events


def run(events) -> tuple[list[tuple[str, dict]], list[dict]]:
    blocks = ReplyBlocks()
    out = [pair for event in events for pair in converse_events(blocks.on(event))]
    return out + converse_events(blocks.finish()), blocks.content


def delta(index: int, text: str) -> tuple[str, dict]:
    return ("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": text}})


def input_delta(index: int, fragment: str) -> tuple[str, dict]:
    return ("contentBlockDelta", {"contentBlockIndex": index, "delta": {"toolUse": {"input": fragment}}})


def start(index: int, use_id: str, name: str) -> tuple[str, dict]:
    return ("contentBlockStart", {"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": use_id, "name": name}}})


def stop(index: int) -> tuple[str, dict]:
    return ("contentBlockStop", {"contentBlockIndex": index})


WEATHER = [
    TextDelta("Let me check."),
    TextDelta(" One moment."),
    ToolUseStart("tooluse_1", "get_weather"),
    ToolInputDelta('{"city": '),
    ToolInputDelta('"Paris"}'),
    ToolUse("tooluse_1", "get_weather", {"city": "Paris"}),
    Finished(END_TURN, None, 10, 5, "Let me check. One moment."),
]


def test_text_then_a_streamed_tool_call():
    events, content = run(WEATHER)
    assert events == [
        delta(0, "Let me check."),
        delta(0, " One moment."),
        stop(0),
        start(1, "tooluse_1", "get_weather"),
        input_delta(1, '{"city": '),
        input_delta(1, '"Paris"}'),
        stop(1),
    ]
    assert content == [
        {"text": "Let me check. One moment."},
        {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}},
    ]


def test_text_alone_is_one_block_closed_at_the_end_without_a_start_event():
    events, content = run([TextDelta("Hi"), TextDelta(" there")])
    assert events == [delta(0, "Hi"), delta(0, " there"), stop(0)]
    assert content == [{"text": "Hi there"}]


def test_an_empty_generation_has_no_block_at_all():
    assert run([Finished(END_TURN, None, 3, 0, "")]) == ([], [])


def test_a_complete_call_on_its_own_opens_sends_its_whole_input_and_closes():
    events, content = run([ToolUse("tooluse_9", "lookup", {"q": "café", "n": 2})])
    assert events == [
        start(0, "tooluse_9", "lookup"),
        input_delta(0, json.dumps({"q": "café", "n": 2}, ensure_ascii=False)),
        stop(0),
    ]
    assert '"café"' in events[1][1]["delta"]["toolUse"]["input"]  # not escaped to \u00e9
    assert content == [{"toolUse": {"toolUseId": "tooluse_9", "name": "lookup", "input": {"q": "café", "n": 2}}}]


def test_two_calls_and_text_after_them_number_their_blocks_in_order():
    events, content = run([
        ToolUse("a", "one", {}),
        ToolUseStart("b", "two"),
        ToolInputDelta("{}"),
        ToolUse("b", "two", {}),
        TextDelta("Done."),
    ])
    assert events == [
        start(0, "a", "one"), input_delta(0, "{}"), stop(0),
        start(1, "b", "two"), input_delta(1, "{}"), stop(1),
        delta(2, "Done."), stop(2),
    ]
    assert [next(iter(block)) for block in content] == ["toolUse", "toolUse", "text"]


def test_a_new_call_start_closes_an_unfinished_one():
    events, _ = run([ToolUseStart("a", "one"), ToolInputDelta("{"), ToolUseStart("b", "two")])
    assert events == [start(0, "a", "one"), input_delta(0, "{"), stop(0), start(1, "b", "two"), stop(1)]


def test_a_complete_call_with_another_id_than_the_open_one_is_a_block_of_its_own():
    events, content = run([ToolUseStart("a", "one"), ToolUse("b", "two", {"x": 1})])
    assert events == [start(0, "a", "one"), stop(0), start(1, "b", "two"), input_delta(1, '{"x": 1}'), stop(1)]
    assert content[1]["toolUse"]["input"] == {"x": 1}


def test_finish_after_everything_closed_adds_nothing():
    blocks = ReplyBlocks()
    blocks.on(ToolUse("a", "one", {}))
    assert blocks.finish() == []
    assert blocks.finish() == []


def test_at_least_one_gives_an_empty_generation_one_empty_text_block():
    blocks = ReplyBlocks()  # Claude's and Nova's streams: a text block that opens (no Converse start event) and closes
    assert converse_events(blocks.finish(at_least_one=True)) == [stop(0)]
    assert blocks.content == [{"text": ""}]


def test_the_changes_every_encoder_renders():
    blocks = ReplyBlocks()
    changes = [change for event in WEATHER for change in blocks.on(event)] + blocks.finish()
    assert changes == [
        Opened(0, "text"), Delta(0, "text", "Let me check."), Delta(0, "text", " One moment."), Closed(0),
        Opened(1, "tool", "tooluse_1", "get_weather"), Delta(1, "tool", '{"city": '), Delta(1, "tool", '"Paris"}'),
        Closed(1),
    ]
    assert ReplyBlocks().finish(at_least_one=True) == [Opened(0, "text"), Closed(0)]
