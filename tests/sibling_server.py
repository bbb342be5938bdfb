"""A second emulator with its own settings that reuses the session server's loaded models (no second load).

Tests of start-up options (access rules, keys files) need servers of their own; loading the models again for
each would cost seconds and hundreds of MB on a shared machine.
"""

from __future__ import annotations

import contextlib

import pytest

from emulator import app as app_module
from emulator.app import Settings
from emulator.server import BackgroundServer
from emulator.service import SERVICE


class _SharedPool:
    """The session server's model pool, already loaded: start-up loading is a no-op."""

    def __init__(self, pool) -> None:
        self._pool = pool

    def load_all(self) -> None:
        pass

    def __getattr__(self, name: str):
        return getattr(self._pool, name)


@contextlib.contextmanager
def sibling(server: BackgroundServer, settings: Settings):
    pool = _SharedPool(server.app[SERVICE].pool)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(app_module, "ModelPool", lambda *args, **kwargs: pool)
        srv = BackgroundServer(settings).start(wait_ready=None)
    try:
        yield srv
    finally:
        srv.stop()
