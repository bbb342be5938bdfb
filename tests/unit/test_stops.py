"""Stop-sequence matching over streamed pieces: hold-back, release, several sequences, unicode."""

from __future__ import annotations

import random

import pytest

from emulator.engine.stops import StopMatcher


def feed_all(matcher: StopMatcher, pieces: list[str]) -> list[tuple[str, str | None]]:
    """Each piece's (released text, matched stop); stops feeding at the first match, as the decoder does."""
    out = []
    for piece in pieces:
        out.append(matcher.feed(piece))
        if out[-1][1] is not None:
            break
    return out


def test_without_stop_sequences_every_piece_passes_through_whole():
    matcher = StopMatcher(())
    assert feed_all(matcher, ["Hel", "lo E", "ND"]) == [("Hel", None), ("lo E", None), ("ND", None)]
    assert matcher.flush() == ""


def test_empty_stop_strings_are_ignored():
    matcher = StopMatcher(("",))
    assert matcher.feed("any text") == ("any text", None)


def test_a_stop_split_across_two_pieces_is_held_back_and_never_emitted():
    matcher = StopMatcher(("END",))
    assert matcher.feed("The answer. E") == ("The answer. ", None)
    assert matcher.feed("ND and more") == ("", "END")


def test_a_stop_split_across_three_pieces_is_never_emitted():
    matcher = StopMatcher(("</answer>",))
    assert feed_all(matcher, ["42</an", "sw", "er> trailing"]) == [("42", None), ("", None), ("", "</answer>")]


def test_held_text_is_released_as_soon_as_it_cannot_start_the_stop():
    matcher = StopMatcher(("END",))
    assert matcher.feed("a E") == ("a ", None)
    assert matcher.feed("N") == ("", None)  # "EN" may still become END
    assert matcher.feed("O") == ("ENO", None)  # "ENO" cannot
    assert matcher.flush() == ""


def test_only_the_longest_possible_prefix_is_held():
    # "xaaa" ends with "aa", a prefix of "aab": only those two characters wait.
    matcher = StopMatcher(("aab",))
    assert matcher.feed("xaaa") == ("xa", None)
    assert matcher.feed("b!") == ("", "aab")


def test_text_after_the_stop_in_the_same_piece_is_dropped():
    matcher = StopMatcher(("STOP",))
    assert matcher.feed("one STOP two") == ("one ", "STOP")


def test_a_stop_at_the_very_start_releases_nothing():
    assert StopMatcher(("Human:",)).feed("Human: hi") == ("", "Human:")


def test_flush_releases_the_held_back_tail_when_generation_ends_without_a_stop():
    matcher = StopMatcher(("\n\nHuman:",))
    assert matcher.feed("Bye.\n\nHum") == ("Bye.", None)
    assert matcher.flush() == "\n\nHum"
    assert matcher.flush() == ""


def test_the_earliest_of_several_stops_wins_and_is_reported():
    matcher = StopMatcher(("world", "lo"))
    assert matcher.feed("hello world") == ("hel", "lo")


def test_a_later_listed_stop_completing_first_in_the_stream_is_reported():
    matcher = StopMatcher(("abc", "ab"))
    assert matcher.feed("xa") == ("x", None)
    assert matcher.feed("b") == ("", "ab")


def test_several_stops_hold_back_for_the_longest_overlap_among_them():
    matcher = StopMatcher(("xyz", "yq"))
    assert matcher.feed("axy") == ("a", None)  # "xy" could start xyz
    assert matcher.feed("q") == ("x", "yq")


def test_overlapping_prefixes_match_the_stop_that_completes():
    matcher = StopMatcher(("abcd", "bce"))
    assert matcher.feed("abc") == ("", None)  # "abc" could start abcd
    assert matcher.feed("e") == ("a", "bce")


def test_a_stop_inside_repeated_prefix_characters_is_found():
    matcher = StopMatcher(("ab",))
    assert feed_all(matcher, ["a", "a", "a", "b"]) == [("", None), ("a", None), ("a", None), ("", "ab")]


@pytest.mark.parametrize(
    "stop, pieces, released",
    [
        ("👋🏽", ["hi 👋", "🏽 there"], "hi "),  # an emoji with a skin-tone modifier: two code points
        ("停止", ["好的停", "止了"], "好的"),
        ("é.", ["caf", "é", ". Next"], "caf"),
    ],
)
def test_unicode_stops_split_between_pieces(stop, pieces, released):
    matcher = StopMatcher((stop,))
    results = feed_all(matcher, pieces)
    assert results[-1][1] == stop
    assert "".join(text for text, _ in results) == released


def test_a_lone_emoji_that_only_starts_a_stop_is_released_once_decided():
    matcher = StopMatcher(("👋🏽",))
    assert matcher.feed("👋") == ("", None)
    assert matcher.feed("!") == ("👋!", None)


def test_any_split_of_a_text_releases_exactly_the_text_before_the_first_stop():
    text = "Sure. Here it is: <result>alpha</result> then END of text END"
    stops = ("END", "</result>", "<stop>")
    rng = random.Random(7)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, 12)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
        results = feed_all(StopMatcher(stops), pieces)
        assert "".join(t for t, _ in results) == "Sure. Here it is: <result>alpha"
        assert results[-1][1] == "</result>"


@pytest.mark.parametrize(
    "stops, text, released, matched",
    [
        (("xyz", "y"), "axyz", "ax", "y"),  # "y" is complete before "xyz" is
        (("abc", "ab"), "xabc", "x", "ab"),
        (("ab", "abc"), "xabc", "x", "ab"),
        (("bc", "abc"), "xabc", "x", "abc"),  # both end together: the one that starts first
    ],
)
def test_the_stop_completed_first_wins_however_the_text_is_split(stops, text, released, matched):
    for cuts in ([], *([i] for i in range(1, len(text))), list(range(1, len(text)))):
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
        results = feed_all(StopMatcher(stops), pieces)
        assert ("".join(t for t, _ in results), results[-1][1]) == (released, matched), pieces
