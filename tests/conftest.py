"""One real emulator per test session, reached over HTTP by real clients.

The server runs on a background thread with its own event loop, so synchronous boto3 calls in tests never block
it. Models come from the shared cache (BEDROCK_EMULATOR_CACHE, else ~/.cache/bedrock-emulator).
"""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config

from emulator.server import BackgroundServer


@pytest.fixture(scope="session")
def server():
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
