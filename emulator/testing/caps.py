"""Caps on what tests may load into the emulator at run time, so no admin request can make every call slow.

Each cap is far above what a test suite uses; past one, the admin request is refused whole with a 400 that names
the cap (and nothing from it is kept).
"""

from __future__ import annotations

from ..protocol.errors import BedrockError

MAX_RULES = 1000  # run-time scripted rules held at once
MAX_FAULTS = 1000  # active faults
MAX_LIMITS = 100  # rate-limit entries (each is checked on every inference call)
MAX_TEXT = 1_000_000  # characters in one scripted text or `contains` string
MAX_ADMIN_BODY = 2 * 1024 * 1024  # bytes in one admin request body (refused from Content-Length, unread)


def cap_error(what: str, cap: int, held: int | None = None) -> BedrockError:
    now = "" if held is None else f" ({held} held now)"
    return BedrockError("ValidationException", f"The emulator holds at most {cap} {what}{now}; "
                        "remove some (or reset) first.")
