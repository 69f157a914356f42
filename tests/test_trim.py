"""The history budget trimmed in steps: each request begins with the previous one between steps."""

from __future__ import annotations

import random

import pytest

from chatmagic.session import Exchange, Message, within_budget
from chatmagic.trim import exchange_chars, stable_start, stable_window


def exchange(i: int, chars: int) -> Exchange:
    user = f"q{i} "
    return Exchange(
        Message("user", user),
        Message("assistant", "a" * (chars - len(user))),
        "openai",
        "gpt-4o",
        key=f"cell:{i}",
    )


def conversation(sizes: list[int]) -> list[Exchange]:
    return [exchange(i, n) for i, n in enumerate(sizes)]


def test_no_budget_or_a_budget_not_reached_sends_everything() -> None:
    history = conversation([1000] * 5)
    assert stable_window(history, 0) == history
    assert stable_window(history, -1) == history
    assert stable_window(history, 5000) == history
    assert stable_window([], 100) == []


def test_over_the_budget_it_drops_the_oldest_down_to_the_low_water_mark() -> None:
    history = conversation([1000] * 11)  # 11,000 chars against 10,000
    sent = stable_window(history, 10_000)
    assert sent == history[8:]  # 3,000 chars: the low-water mark (30%)
    assert stable_window(history, 10_000, low_water=0.5) == history[6:]
    assert stable_window(history, 10_000, low_water=0.8) == history[3:]


def test_between_steps_each_request_begins_with_the_previous_one() -> None:
    rng = random.Random(7)
    sizes = [rng.randint(300, 3000) for _ in range(60)]
    history = conversation(sizes)
    budget = 20_000
    starts = [stable_start(sizes[:n], budget) for n in range(1, len(sizes) + 1)]
    steps = sum(1 for a, b in zip(starts, starts[1:], strict=False) if a != b)
    assert starts == sorted(starts)  # the start only moves forward
    assert steps <= len(sizes) // 4  # in steps, not one exchange per turn
    for n in range(1, len(sizes) + 1):
        sent = stable_window(history[:n], budget)
        assert sum(map(exchange_chars, sent)) <= budget  # never over the budget
        assert sent == history[n - len(sent) : n]  # whole exchanges, the newest ones


def test_it_is_a_function_of_the_history_alone() -> None:
    # a re-run cell, a restored notebook and a replay all choose the same start
    history = conversation([1500, 800, 4000, 2200, 900, 3100, 1200, 700, 2600])
    assert stable_window(list(history), 8000) == stable_window(list(history), 8000)
    assert stable_window(history, 8000, measure=exchange_chars) == stable_window(history, 8000)


def test_an_exchange_larger_than_the_budget_is_not_sent_as_today() -> None:
    history = conversation([500, 500, 30_000])
    assert stable_window(history, 10_000) == within_budget(history, 10_000) == []


@pytest.mark.parametrize("seed", range(5))
def test_a_low_water_mark_of_the_whole_budget_is_todays_rule(seed: int) -> None:
    rng = random.Random(seed)
    history = conversation([rng.randint(100, 5000) for _ in range(40)])
    for n in range(len(history) + 1):
        assert stable_window(history[:n], 12_000, low_water=1.0) == within_budget(history[:n], 12_000)


def test_a_low_water_mark_is_a_share() -> None:
    with pytest.raises(ValueError, match="share of the budget"):
        stable_window(conversation([100]), 50, low_water=1.5)
