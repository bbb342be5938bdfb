"""User-supplied regular expressions (scripted-rule `match.regex`, guardrail `regexes`) on a safe engine.

Python's `re` backtracks without bound and holds the GIL while it does: `(a|aa)+$` against 40 characters runs for
minutes and freezes every thread. The `regex` module (already installed: transformers depends on it) takes a
`timeout` and, with `concurrent=True`, releases the GIL while matching, so callers run it on a worker thread
and a slow pattern costs at most its budget. RE2 (`google-re2`) would rule out backtracking entirely but refuses
look-arounds, which the PII heuristics and existing rule files use; `regex` accepts every `re` pattern.

`compile_checked` is the compile-time check: a length cap, a syntax check, and a probe against inputs that make
the usual catastrophic shapes (nested or overlapping quantifiers) explode, so most such patterns are refused when
the rule is added rather than when a request arrives.
"""

from __future__ import annotations

from functools import lru_cache

import regex

MAX_PATTERN_LENGTH = 1000  # characters in one pattern
PROBE_BUDGET_S = 0.02  # per probe input at compile time
# Inputs that drive exponential backtracking in common bad shapes: a long run of one class, then a mismatch.
_PROBES = tuple(run * 28 + tail for run in ("a", "0", " ", "a0", "ab") for tail in ("!", "\n"))

RegexTimeout = TimeoutError  # what `regex` raises when a match runs past its timeout


class UnsafePattern(ValueError):
    """A pattern refused: too long, invalid, or slow on a short probe input."""


@lru_cache(maxsize=1024)
def compile_checked(pattern: str) -> regex.Pattern:
    """The compiled pattern, once it passes the compile-time check (cached, so a rule pays it once)."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise UnsafePattern(f"a regular expression is limited to {MAX_PATTERN_LENGTH} characters (got {len(pattern)})")
    try:
        compiled = regex.compile(pattern)
    except (regex.error, ValueError, OverflowError) as exc:
        raise UnsafePattern(f"invalid regular expression: {exc}") from None
    for probe in _PROBES:
        try:
            compiled.search(probe, timeout=PROBE_BUDGET_S, concurrent=True)
        except RegexTimeout:
            raise UnsafePattern(
                "the regular expression backtracks catastrophically (nested or overlapping repetition, "
                "e.g. `(a+)+` or `(a|aa)+`); rewrite it without nested quantifiers") from None
    return compiled


def search(pattern: str, text: str, budget_s: float) -> regex.Match | None:
    """`pattern` searched in `text` within `budget_s` seconds (raises RegexTimeout past it). Call off the loop."""
    return compile_checked(pattern).search(text, timeout=budget_s, concurrent=True)
