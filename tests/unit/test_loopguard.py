"""Natural endings on synthetic text: the loop guard's n-gram rule and the length prior's boundaries."""

from __future__ import annotations

import itertools

from emulator.engine.loopguard import LoopGuard, NaturalEnding

SENTENCE = "The cat sat on the mat. "  # 7 units: the cat sat on the mat .


def distinct_words(n: int) -> str:
    """n different words (letters only: digit runs would all read as one placeholder)."""
    syllables = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "tu", "vo", "ze"]
    words = ("".join(p) for p in itertools.product(syllables, repeat=3))
    return " ".join(itertools.islice(words, n))


def test_a_repeated_sentence_is_caught_eight_units_after_two_full_rounds():
    guard = LoopGuard()
    assert guard.feed(SENTENCE * 3) is False  # 21 units: the first 8-gram has been seen twice
    assert guard.feed("The ") is True  # unit 22 = 2 * 7 + 8 completes its third occurrence
    assert guard.looping


def test_a_repeated_symbol_is_caught_at_the_tenth():
    guard = LoopGuard()
    assert guard.feed("!" * 9) is False
    assert guard.feed("!") is True


def test_text_without_repeats_is_not_a_loop():
    guard = LoopGuard()
    assert guard.feed(distinct_words(600)) is False
    assert guard.feed(" ") is False


def test_a_word_cut_between_pieces_counts_as_one_unit():
    # Units "hello world hello world": the 2-gram (hello, world) repeats. Read as "hel", "lo" it would not.
    guard = LoopGuard(n_gram=2, repeats=2)
    assert guard.feed("hel") is False
    assert guard.feed("lo world hel") is False
    assert guard.feed("lo world ") is True


def test_the_last_word_waits_for_the_next_piece():
    guard = LoopGuard(n_gram=2, repeats=2)
    assert guard.feed("go home go home") is False  # the final "home" may still grow ("homework")
    assert guard.feed("work") is False
    assert guard.feed(".") is False  # "homework" then "." : no repeat


def test_case_and_digit_runs_are_read_alike():
    # (step, #, done) three times, whatever the case and the number.
    guard = LoopGuard(n_gram=3, repeats=3)
    assert guard.feed("Step 1 done. STEP 22 done. step 333") is False
    assert guard.feed(" done") is False  # "done" may still grow
    assert guard.feed(".") is True


def test_line_breaks_are_units():
    guard = LoopGuard(n_gram=2, repeats=3)
    assert guard.feed("a\nb\na\nb\na\n") is True  # (a, \n) three times
    assert LoopGuard(n_gram=2, repeats=3).feed("a b a b a ") is False  # spaces are not units: (a, b) only twice


def test_once_looping_it_stays_looping():
    guard = LoopGuard()
    guard.feed("!" * 10)
    assert guard.feed("fresh words") is True
    assert guard.feed("") is True


def test_grams_older_than_the_window_are_forgotten():
    assert LoopGuard(n_gram=1, repeats=2, window=3).feed("a b c d a ") is False
    assert LoopGuard(n_gram=1, repeats=2, window=5).feed("a b c d a ") is True


def test_short_answers_go_on():
    ending = NaturalEnding()
    assert ending.feed("Hello. How are you?\n\nFine.") is None


def test_past_the_paragraph_length_the_answer_ends_at_the_next_paragraph_break():
    ending = NaturalEnding(paragraph_chars=20, sentence_chars=1000)
    assert ending.feed("short.\n\nstill within") is None  # 20 characters: not past the limit yet
    assert ending.feed(" the budget. Then\n\nmore") == 17  # keep " the budget. Then"


def test_a_paragraph_break_split_between_pieces_keeps_nothing_of_the_second():
    ending = NaturalEnding(paragraph_chars=5, sentence_chars=1000)
    assert ending.feed("first line\n") is None
    assert ending.feed("\nsecond") == 0


def test_past_the_sentence_length_the_answer_ends_after_the_full_stop():
    ending = NaturalEnding(paragraph_chars=1000, sentence_chars=30)
    assert ending.feed(distinct_words(7)) is None  # 7 six-letter words: 48 characters, no sentence end
    assert ending.feed(" one. two") == 5  # keep " one."
    assert NaturalEnding(paragraph_chars=1000, sentence_chars=30).feed(distinct_words(7) + " why? no") == 53


def test_a_full_stop_at_the_end_of_a_piece_waits_for_the_whitespace_after_it():
    ending = NaturalEnding(paragraph_chars=1000, sentence_chars=10)
    assert ending.feed(distinct_words(2) + " v1.") is None  # "." followed by nothing yet: could be "v1.2"
    assert ending.feed(" Next") == 0


def test_a_full_stop_inside_a_number_is_not_a_sentence_end():
    ending = NaturalEnding(paragraph_chars=1000, sentence_chars=10)
    assert ending.feed(distinct_words(2) + " pi is 3.14") is None


def test_past_the_sentence_length_a_line_break_ends_the_answer_before_it():
    ending = NaturalEnding(paragraph_chars=1000, sentence_chars=10)
    assert ending.feed(distinct_words(3) + "\nitem") == 20  # three six-letter words and two spaces


def test_a_loop_keeps_the_whole_piece_that_completed_it():
    ending = NaturalEnding()
    assert ending.feed("!" * 9) is None
    assert ending.feed("!!!") == 3
