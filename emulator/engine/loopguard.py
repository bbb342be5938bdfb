"""Natural endings for requests that set no token limit: HEURISTICS over the generated text.

A real model asked a question without `maxTokens` answers and stops. A 135M local model often does not: it
falls into a degenerate loop (the same sentence, line or symbol again and again) and would run to the model's
output maximum (64,000 tokens for Claude 4.5), minutes on a CPU. `LoopGuard` watches the generated text and says
when it has started repeating itself; the caller then ends the turn with `end_turn`, as the model would have.

The rule (documented in the README): the text is split into units (words, single punctuation marks, line
breaks), lower-cased, every digit run read as one placeholder (so "Step 1 ... Step 2 ..." loops count). When any
run of `N_GRAM` consecutive units occurs for the `REPEATS`-th time within the last `WINDOW` units, the text is a
loop: a repeated sentence is caught 8 units after two full rounds of it, a repeated symbol after ten.

A small model at temperature 1 also rambles without repeating itself, where a real model would have finished
its answer. `NaturalEnding` adds a length prior on top of `LoopGuard`: past `PARAGRAPH_CHARS` characters the
answer ends at the next paragraph break, past `SENTENCE_CHARS` at the next sentence end (or line break).

Pure and engine-neutral: they see only text pieces, so any text backend (the local decoder, a remote
OpenAI-compatible engine) applies them where it applies stop sequences. Requests that set a token limit are not
guarded: they keep exact token-budget behaviour.
"""

from __future__ import annotations

import re
from collections import Counter, deque

N_GRAM = 8  # units per n-gram
REPEATS = 3  # occurrences of one n-gram that make a loop
WINDOW = 2048  # units remembered (bounds memory on long generations)

PARAGRAPH_CHARS = 400  # about 100 tokens: past this, a paragraph break ends the answer
SENTENCE_CHARS = 800  # about 200 tokens: past this, a sentence end or line break does

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


_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


class NaturalEnding:
    """Where an unbounded answer ends: `feed(piece)` returns None to go on, or how much of the piece to keep
    (the answer ends after that prefix; a loop keeps the whole piece, a boundary drops the whitespace after it)."""

    def __init__(self, paragraph_chars: int = PARAGRAPH_CHARS, sentence_chars: int = SENTENCE_CHARS) -> None:
        self.loops = LoopGuard()
        self.paragraph_chars = paragraph_chars
        self.sentence_chars = sentence_chars
        self.length = 0  # characters seen
        self._last = ""  # the previous piece's last character: a boundary can span two pieces

    def feed(self, piece: str) -> int | None:
        if self.loops.feed(piece):
            return len(piece)
        self.length += len(piece)
        joined, back = self._last + piece, len(self._last)
        self._last = piece[-1:] or self._last
        if self.length > self.paragraph_chars and (at := joined.find("\n\n")) >= 0:
            return max(0, at - back)
        if self.length > self.sentence_chars:
            for hit in _SENTENCE_END.finditer(joined):
                cut = hit.start() + (joined[hit.start()] != "\n") - back  # keep the full stop, not the break
                if cut >= 0:
                    return min(cut, len(piece))
        return None
