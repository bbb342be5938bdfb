"""One real emulator per test session, reached over HTTP by real clients.

The server runs on a background thread with its own event loop, so synchronous boto3 calls in tests never block
it. Models come from the shared cache (BEDROCK_EMULATOR_CACHE, else ~/.cache/bedrock-emulator).
"""

from __future__ import annotations

import http.client
import urllib.parse
from dataclasses import dataclass

import boto3
import pytest
from botocore.config import Config


@pytest.fixture(scope="session")
def server():
    # Imported here, not at the top: the unit layer (tests/unit) shares this conftest and starts no server.
    from emulator.server import BackgroundServer

    srv = BackgroundServer().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def bedrock_emulator_server(server):
    """Our own pytest plugin's fixtures (`bedrock_emulator`, `bedrock_client`) reuse the session's server."""
    return server.url


def make_client(url: str, **config):
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=120, **config),
    )


@pytest.fixture(scope="session")
def client(server):
    """boto3 with retries off, so each error test sees exactly one response."""
    return make_client(server.url)


HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


def user(text: str) -> dict:
    return {"role": "user", "content": [{"text": text}]}


def default_engine(server):
    """The server's engine for the default text model: tests read its counters, never call it."""
    from emulator.service import SERVICE

    service = server.app[SERVICE]
    return service.pool.text[service.catalog.lookup(HAIKU).local]


@pytest.fixture(scope="session")
def tokenizer(server):
    """The default text model's tokenizer, loaded on its own from the model's folder (independent of the server's)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_engine(server).model.tokenizer.name_or_path)


@dataclass
class RawReply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def raw_request(url: str, path: str, body: bytes = b"", method: str = "POST", headers: dict | None = None) -> RawReply:
    """One HTTP request with exact control of path and body bytes (what no SDK would send)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        reply = conn.getresponse()
        return RawReply(reply.status, reply.headers, reply.read())
    finally:
        conn.close()


@pytest.fixture(scope="session")
def claude(server):
    """The Anthropic SDK's Bedrock client pointed at the emulator (SigV4 with dummy keys, retries off)."""
    from anthropic import AnthropicBedrock

    return AnthropicBedrock(base_url=server.url, aws_access_key="AKIDEXAMPLE", aws_secret_key="secret",
                            aws_region="us-east-1", max_retries=0, timeout=120)
