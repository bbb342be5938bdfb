"""The event loop never waits on the model, and a client that goes away stops its generation.

Timing is relative, never absolute: a short request must finish while a long one is still generating, whatever
the machine's speed. Whether a generation really stopped is read from the server's own scheduler counters
(`active_sequences`, `steps_taken`), which tests only read.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse

import aiohttp
from botocore.eventstream import EventStreamBuffer
from conftest import HAIKU, default_engine, user

# Greedy output for this prompt loops on and on: it never ends on its own before maxTokens.
LONG_TOKENS = 1000
LONG = {
    "messages": [user("Write a very long essay about the history of Rome.")],
    "inferenceConfig": {"temperature": 0, "maxTokens": LONG_TOKENS},
}
QUOTED = urllib.parse.quote(HAIKU, safe="")


class FrameReader:
    """Decodes a ConverseStream body frame by frame as it arrives."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._buffer = EventStreamBuffer()
        self.types: list[str] = []

    @property
    def deltas(self) -> int:
        return self.types.count("contentBlockDelta")

    async def until(self, done) -> None:
        while not done():
            chunk = await self._response.content.readany()
            assert chunk, f"the stream ended early: {self.types}"
            self._buffer.add_data(chunk)
            self.types.extend(message.headers[":event-type"] for message in self._buffer)


async def wait_until_idle(engine, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while engine.active_sequences:
        assert time.monotonic() < deadline, "the abandoned generation is still running"
        await asyncio.sleep(0.05)


async def test_long_stream_blocks_neither_health_nor_a_short_converse_and_stops_when_abandoned(server, client):
    engine = default_engine(server)
    await wait_until_idle(engine)
    steps_at_start = engine.steps_taken
    async with aiohttp.ClientSession() as session:
        long = await session.post(f"{server.url}/model/{QUOTED}/converse-stream", json=LONG)
        assert long.status == 200
        stream = FrameReader(long)
        await stream.until(lambda: stream.deltas >= 1)

        async with session.get(f"{server.url}/_emulator/health") as health:
            assert health.status == 200
        short = await asyncio.to_thread(
            client.converse, modelId=HAIKU, messages=[user("Hi")], inferenceConfig={"temperature": 0, "maxTokens": 3}
        )
        assert short["usage"]["outputTokens"] == 3

        # Both answered while the long generation was still under way: the server is still advancing it, and it
        # goes on producing afterwards (it never reaches its end: see the step count below).
        assert engine.active_sequences >= 1
        seen = stream.deltas
        await stream.until(lambda: stream.deltas > seen)
        assert "messageStop" not in stream.types
        long.close()  # the client goes away mid-stream

    await wait_until_idle(engine)
    stopped_at = engine.steps_taken
    await asyncio.sleep(0.5)
    assert engine.steps_taken == stopped_at  # nothing is generating any more
    # The long generation (plus the short one's 3 tokens) was cut off early, not run to its end, so it was still
    # running when health and the short Converse answered.
    assert stopped_at - steps_at_start < LONG_TOKENS // 2


async def test_abandoned_converse_stops_its_generation(server):
    engine = default_engine(server)
    await wait_until_idle(engine)
    steps_at_start = engine.steps_taken
    async with aiohttp.ClientSession() as session:
        request = asyncio.create_task(session.post(f"{server.url}/model/{QUOTED}/converse", json=LONG))
        while engine.steps_taken < steps_at_start + 3:  # generating
            assert not request.done()
            await asyncio.sleep(0.05)
        request.cancel()  # the client gives up waiting and drops the connection
    await wait_until_idle(engine)
    stopped_at = engine.steps_taken
    await asyncio.sleep(0.5)
    assert engine.steps_taken == stopped_at
    assert stopped_at - steps_at_start < LONG_TOKENS // 2


async def test_health_answers_while_many_requests_wait(server):
    """Requests queue on the generation thread, never on the event loop."""
    engine = default_engine(server)
    await wait_until_idle(engine)
    body = json.dumps({"messages": [user("Hi")], "inferenceConfig": {"temperature": 0, "maxTokens": 4}})
    async with aiohttp.ClientSession() as session:
        url = f"{server.url}/model/{QUOTED}/converse"
        pending = [
            asyncio.create_task(session.post(url, data=body, headers={"Content-Type": "application/json"}))
            for _ in range(4)
        ]
        while not engine.active_sequences:
            await asyncio.sleep(0.02)
        async with session.get(f"{server.url}/_emulator/health") as health:
            assert health.status == 200
        answered_health_while_generating = not all(task.done() for task in pending)
        replies = await asyncio.gather(*pending)
        assert [reply.status for reply in replies] == [200] * 4
        texts = {(await reply.json())["output"]["message"]["content"][0]["text"] for reply in replies}
    assert answered_health_while_generating
    assert len(texts) == 1  # interleaved greedy sequences do not disturb each other


async def test_answers_that_end_at_their_first_token_do_not_disturb_the_rows_read_with_them(server):
    """Prompts that arrive together are read in one forward; one that ends at its first token (maxTokens 1) frees
    its cache row at once, and the rows read after it move up. The long answers are the ones each gives alone."""
    engine = default_engine(server)
    await wait_until_idle(engine)
    url = f"{server.url}/model/{QUOTED}/converse"

    def body(text: str, max_tokens: int) -> str:
        return json.dumps({"messages": [user(text)], "inferenceConfig": {"temperature": 0, "maxTokens": max_tokens}})

    prompts = ["Name a colour.", "Count to five.", "Say hello in French.", "Name a fruit."]
    async with aiohttp.ClientSession() as session:

        async def text(data: str) -> str:
            async with session.post(url, data=data, headers={"Content-Type": "application/json"}) as reply:
                assert reply.status == 200
                return (await reply.json())["output"]["message"]["content"][0]["text"]

        alone = [await text(body(p, 24)) for p in prompts]
        mixed = await asyncio.gather(*(text(body(p, n)) for p in prompts for n in (1, 24)))
    assert mixed[1::2] == alone
    assert all(len(short) < len(long) for short, long in zip(mixed[0::2], alone))
