"""Stop-sequence matching over streamed text.

Text that could still be the start of a stop sequence is held back until the next piece decides it, so a stop
sequence never leaks into a stream even when the model produces it across several tokens.
"""

from __future__ import annotations


class StopMatcher:
    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._pending = ""

    def feed(self, text: str) -> tuple[str, str | None]:
        """Add text; return (text safe to emit, the stop sequence that matched or None)."""
        if not self._stops:
            return text, None
        self._pending += text
        # The stop completed first (then the one starting first) wins: the answer a piece-by-piece reading gives,
        # so it does not depend on how the text was cut into pieces.
        hit: tuple[int, int, str] | None = None  # (end, start, stop)
        for stop in self._stops:
            at = self._pending.find(stop)
            if at >= 0 and (hit is None or (at + len(stop), at) < hit[:2]):
                hit = (at + len(stop), at, stop)
        if hit is not None:
            safe, self._pending = self._pending[: hit[1]], ""
            return safe, hit[2]
        hold = max((self._overlap(stop) for stop in self._stops), default=0)
        cut = len(self._pending) - hold
        safe, self._pending = self._pending[:cut], self._pending[cut:]
        return safe, None

    def _overlap(self, stop: str) -> int:
        """Length of the longest end of the pending text that is a proper prefix of `stop`."""
        for k in range(min(len(stop) - 1, len(self._pending)), 0, -1):
            if self._pending.endswith(stop[:k]):
                return k
        return 0

    def flush(self) -> str:
        """Generation ended without a stop sequence: the held-back text is real output."""
        text, self._pending = self._pending, ""
        return text
