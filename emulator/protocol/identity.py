"""Who and where a request is for: the region from its SigV4 scope, and the stand-in account id in ARNs."""

from __future__ import annotations

import re

from aiohttp import web

ACCOUNT_ID = "000000000000"  # stand-in account id, as other AWS emulators use
DEFAULT_REGION = "us-east-1"
_REGION = re.compile(r"Credential=[^/,]+/\d{8}/([^/,]+)/")


def request_region(request: web.Request) -> str:
    """The region the client signed for (`Credential=AKID/20261121/<region>/bedrock/aws4_request`)."""
    found = _REGION.search(request.headers.get("Authorization", ""))
    return found.group(1) if found else DEFAULT_REGION
