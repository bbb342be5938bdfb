"""RuleBook works out once per change what every request asks of it (wants the body, needs a thread, has
cassettes): each way of changing the rules must leave those answers as a fresh walk over the rules gives them."""

from __future__ import annotations

from emulator.testing.rules import RuleBook, parse_rules


def _walked(book: RuleBook) -> tuple[bool, bool, bool]:
    rules = list(book._all())
    scripted = [r.rule.match for r in rules if r.cassette is None]
    return (any(m.body is not None for m in scripted), any(m.regex is not None for m in scripted),
            any(r.cassette is not None for r in rules))


def _flags(book: RuleBook) -> tuple[bool, bool, bool]:
    assert (book.wants_body, book.needs_thread, book.has_cassettes) == _walked(book)
    return book.wants_body, book.needs_thread, book.has_cassettes


def test_file_rules_then_each_change(tmp_path):
    (tmp_path / "r.yaml").write_text("rules:\n  - match: {regex: 'a+'}\n    respond: {text: x}\n")
    book = RuleBook(tmp_path)
    assert _flags(book) == (False, True, False)
    [with_body] = book.add(parse_rules({"match": {"body": {"k": 1}}, "respond": {"text": "y"}}))
    assert _flags(book) == (True, True, False)
    [plain] = book.add(parse_rules({"respond": {"text": "z"}}))
    assert _flags(book) == (True, True, False)
    assert book.remove(with_body.id)
    assert _flags(book) == (False, True, False)
    [file_rule] = [r for r in book._all() if r.source.endswith("r.yaml")]
    assert book.remove(file_rule.id)
    assert _flags(book) == (False, False, False)
    book.reset()  # file rules back, run-time ones gone
    assert _flags(book) == (False, True, False)
    book.add(parse_rules({"match": {"body": {"k": 1}}, "respond": {"text": "y"}}))
    book.clear()
    assert _flags(book) == (False, True, False)
    assert plain.id not in [r.id for r in book._all()]


def test_no_rules_at_all():
    assert _flags(RuleBook()) == (False, False, False)
