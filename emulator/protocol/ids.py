"""Cheap random ids for every request (request ids, message ids): one PRNG seeded once from the OS.

`uuid.uuid4()` and `secrets` make a getrandom() system call per id, which showed up as 4-7% of the scripted
Converse path (bench/RESULTS.md). These ids are correlation handles, not secrets, so a Mersenne Twister seeded
from `os.urandom` at import is enough; ids that guard something (tokens, keys) keep using `secrets`.
"""

from __future__ import annotations

import os
import random

_RANDOM = random.Random(os.urandom(32))


def request_id() -> str:
    """A random UUID (version 4, RFC 4122 variant) in its usual 8-4-4-4-12 form, as AWS request ids look."""
    value = (_RANDOM.getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48)) | (0x4000 << 64) | (0x8000 << 48)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def random_bytes(n: int) -> bytes:
    return _RANDOM.randbytes(n)
