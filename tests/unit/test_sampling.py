"""Next-token choice on hand-made logits: greedy, temperature, top_k, top_p, their order, seeds."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from emulator.engine.sampling import _candidates, choose, make_generator
from emulator.engine.types import SamplingParams

CPU = torch.device("cpu")


def params(**kw) -> SamplingParams:
    return SamplingParams(max_new_tokens=16, **kw)


def logits_for(probs: list[float]) -> torch.Tensor:
    """Logits whose softmax is exactly `probs` (up to float rounding)."""
    return torch.log(torch.tensor(probs, dtype=torch.float32))


def draws(logits: torch.Tensor, p: SamplingParams, n: int = 400, seed: int = 1234) -> Counter:
    gen = make_generator(p, CPU)
    if gen is not None:
        gen.manual_seed(seed)
    return Counter(choose(logits, p, gen) for _ in range(n))


@pytest.mark.parametrize("temperature", [0.0, 1e-5])
def test_temperature_zero_or_below_the_minimum_is_greedy_without_a_generator(temperature):
    p = params(temperature=temperature)
    assert p.greedy
    assert make_generator(p, CPU) is None
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    assert {choose(logits, p, None) for _ in range(20)} == {1}


def test_the_smallest_allowed_temperature_samples():
    assert not params(temperature=1e-4).greedy
    assert make_generator(params(temperature=1e-4), CPU) is not None


def test_greedy_ignores_top_k_and_top_p():
    logits = torch.tensor([0.0, 0.5, 4.0, 1.0])
    assert choose(logits, params(temperature=0.0, top_k=1, top_p=0.1), None) == 2


def test_temperature_one_samples_the_whole_distribution():
    counts = draws(logits_for([0.5, 0.3, 0.2]), params(temperature=1.0))
    assert set(counts) == {0, 1, 2}
    assert counts[0] > counts[1] > counts[2]


def test_a_low_temperature_sharpens_and_a_high_one_flattens():
    logits = torch.tensor([2.0, 1.0])  # 73% / 27% at temperature 1
    cold = draws(logits, params(temperature=0.1))
    hot = draws(logits, params(temperature=50.0))
    assert cold[1] <= 2  # e^-10 odds
    assert 160 < hot[1] < 240  # e^-0.02 odds: nearly even


def test_top_k_keeps_only_the_k_most_likely_tokens():
    logits = logits_for([0.1, 0.4, 0.05, 0.3, 0.15])
    assert set(draws(logits, params(top_k=2))) == {1, 3}
    assert set(draws(logits, params(top_k=1))) == {1}


@pytest.mark.parametrize("top_k", [0, 5, 9])
def test_top_k_zero_or_at_least_the_vocabulary_keeps_everything(top_k):
    logits = logits_for([0.3, 0.25, 0.2, 0.15, 0.1])
    assert set(draws(logits, params(top_k=top_k), n=600)) == {0, 1, 2, 3, 4}


@pytest.mark.parametrize(
    "top_p, kept",
    [
        (0.4, {0}),  # the first token alone reaches it
        (0.79, {0, 1}),  # 0.5 + 0.3 reaches it
        (0.85, {0, 1, 2}),
        (1.0, {0, 1, 2, 3}),
    ],
)
def test_top_p_keeps_the_smallest_prefix_whose_mass_reaches_it(top_p, kept):
    logits = logits_for([0.5, 0.3, 0.15, 0.05])
    assert set(draws(logits, params(top_p=top_p), n=1000)) == kept


def test_top_p_near_zero_still_keeps_the_most_likely_token():
    assert set(draws(logits_for([0.2, 0.7, 0.1]), params(top_p=0.0))) == {1}


def test_top_k_applies_before_top_p_which_sees_the_renormalised_mass():
    # top_k=2 leaves 0.4 and 0.3, renormalised to 0.57 / 0.43; top_p=0.5 then keeps only the first. Top_p first
    # (0.4 < 0.5 over the full distribution) would have kept both.
    logits = logits_for([0.4, 0.3, 0.2, 0.1])
    assert set(draws(logits, params(top_k=2, top_p=0.5))) == {0}
    assert set(draws(logits, params(top_k=3, top_p=0.75))) == {0, 1}


def test_temperature_applies_before_top_p():
    # At temperature 0.25 token 0's share of [0.5, 0.3, 0.2] becomes ~0.87, so top_p=0.8 keeps it alone.
    logits = logits_for([0.5, 0.3, 0.2])
    assert set(draws(logits, params(top_p=0.8))) == {0, 1}
    assert set(draws(logits, params(temperature=0.25, top_p=0.8))) == {0}


def test_a_nucleus_wider_than_the_first_guess_sorts_the_whole_vocabulary():
    # 1024 equally likely tokens: top_p=0.5 keeps exactly 512 of them, more than the 256 looked at first.
    probs, ids = _candidates(torch.zeros(1024), params(top_p=0.5))
    assert len(ids) == len(probs) == 512
    assert len(set(ids.tolist())) == 512


def test_the_guessed_nucleus_equals_the_fully_sorted_one():
    logits = torch.randn(5000, generator=torch.Generator().manual_seed(3)) * 3
    p = params(top_p=0.9)
    _, ids = _candidates(logits, p)
    order = torch.argsort(torch.softmax(logits, -1), descending=True)
    mass = torch.cumsum(torch.softmax(logits, -1)[order], -1)
    expected = int((mass - torch.softmax(logits, -1)[order] < 0.9).sum())
    assert ids.tolist() == order[:expected].tolist()


def test_the_same_seed_gives_the_same_choices_and_another_seed_others():
    logits = torch.zeros(50)

    def run(seed: int) -> list[int]:
        p = params(seed=seed)
        gen = make_generator(p, CPU)
        return [choose(logits, p, gen) for _ in range(30)]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_seeds_beyond_64_bits_and_negative_seeds_are_taken_modulo_2_to_the_64():
    logits = torch.zeros(50)

    def run(seed: int) -> list[int]:
        p = params(seed=seed)
        gen = make_generator(p, CPU)
        return [choose(logits, p, gen) for _ in range(30)]

    assert run(2**64 + 5) == run(5)
    assert run(-1) == run(2**64 - 1)


def test_without_a_seed_each_generator_is_seeded_afresh():
    logits = torch.zeros(1000)
    p = params()
    picks = [[choose(logits, p, gen) for _ in range(5)] for gen in (make_generator(p, CPU), make_generator(p, CPU))]
    assert picks[0] != picks[1]


def test_a_draw_follows_the_probabilities_and_never_picks_an_impossible_token():
    # temperature 1, no top_k/top_p: the whole vocabulary, drawn by inverting the cumulative sum
    probs = [0.0, 0.5, 0.0, 0.2, 0.3, 0.0]
    counts = draws(logits_for(probs), params(temperature=1.0), n=6000)
    assert set(counts) == {1, 3, 4}
    for token, p in enumerate(probs):
        if p:
            assert abs(counts[token] / 6000 - p) < 0.025  # > 4 standard deviations
