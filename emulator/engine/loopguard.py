"""Natural endings for requests that set no token limit: a HEURISTIC loop detector over generated text.

A real model asked a question without `maxTokens` answers and stops. A 135M local model often does not: it
falls into a degenerate loop (the same sentence, line or symbol again and again) and would run to the model's
output maximum (64,000 tokens for Claude 4.5), minutes on a CPU. `LoopGuard` watches the generated text and says
when it has started repeating itself; the caller then ends the turn with `end_turn`, as the model would have.

The rule (documented in the README): the text is split into units (words, single punctuation marks, line
breaks), lower-cased, every digit run read as one placeholder (so "Step 1 ... Step 2 ..." loops count). When any
run of `N_GRAM` consecutive units occurs for the `REPEATS`-th time within the last `WINDOW` units, the text is a
loop: a repeated sentence is caught 8 units after two full rounds of it, a repeated symbol after ten.

Pure and engine-neutral: it sees only text pieces, so any text backend (the local decoder, a remote
OpenAI-compatible engine) applies it where it applies stop sequences. Requests that set a token limit are not
guarded: they keep exact token-budget behaviour.
"""

from __future__ import annotations

import re
from collections import Counter, deque

N_GRAM = 8  # units per n-gram
REPEATS = 3  # occurrences of one n-gram that make a loop
WINDOW = 2048  # units remembered (bounds memory on long generations)

_UNIT = re.compile(r"\w+|[^\w\s]|\n")
_DIGITS = re.compile(r"\d+")


class LoopGuard:
    def __init__(self, n_gram: int = N_GRAM, repeats: int = REPEATS, window: int = WINDOW) -> None:
        self.n_gram = n_gram
        self.repeats = repeats
        self.window = window
        self._pending = ""  # text whose last unit may still grow (a word cut between two pieces)
        self._units: deque[str] = deque()
        self._grams: deque[tuple[str, ...]] = deque()
        self._counts: Counter[tuple[str, ...]] = Counter()
        self.looping = False

    def feed(self, text: str) -> bool:
        """Add generated text; True once the text has fallen into a loop (and from then on)."""
        if self.looping or not text:
            return self.looping
        self._pending += text
        units = _UNIT.findall(self._pending)
        # A trailing word character may continue in the next piece: keep the last word pending.
        keep = ""
        if units and self._pending[-1:].isalnum() and units[-1][-1:].isalnum():
            keep = units.pop()
        self._pending = keep
        for unit in units:
            if self._add(_DIGITS.sub("#", unit.lower())):
                self.looping = True
                break
        return self.looping

    def _add(self, unit: str) -> bool:
        self._units.append(unit)
        if len(self._units) > self.n_gram:
            self._units.popleft()
        if len(self._units) < self.n_gram:
            return False
        gram = tuple(self._units)
        self._grams.append(gram)
        self._counts[gram] += 1
        if len(self._grams) > self.window:
            old = self._grams.popleft()
            self._counts[old] -= 1
            if not self._counts[old]:
                del self._counts[old]
        return self._counts[gram] >= self.repeats
