"""Prices and budgets: checked in one line each; a request fits, is over budget (ask), or cannot fit."""

from __future__ import annotations

from typing import Any

import pytest

from chatmagic.budget import (
    Price,
    check_max_cost,
    check_max_input_tokens,
    check_prices,
    decide,
    estimate_cost,
    price_for,
    unattended,
)
from chatmagic.errors import ConfigurationError


def one_line_refusal(check: Any, value: Any) -> str:
    with pytest.raises(ConfigurationError) as refused:
        check(value)
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_prices_are_per_model_input_and_output_per_million() -> None:
    prices = check_prices(
        {"gpt-4o": {"input": 2.5, "output": 10}, " gpt-4o-mini ": {"input": 0, "output": 0.6}}
    )
    assert prices == {"gpt-4o": {"input": 2.5, "output": 10.0}, "gpt-4o-mini": {"input": 0.0, "output": 0.6}}
    assert price_for(prices, "gpt-4o") == Price(2.5, 10.0)
    assert price_for(prices, "openai/gpt-4o-mini") == Price(0.0, 0.6)
    assert price_for(prices, "llama3.2") is None
    assert check_prices({}) == {}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ([("gpt-4o", 2.5)], "must be a dict"),
        ({"gpt-4o": 2.5}, "exactly 'input' and 'output'"),
        ({"gpt-4o": {"input": 2.5}}, "exactly 'input' and 'output'"),
        ({"gpt-4o": {"input": 2.5, "output": 10, "cached": 1}}, "exactly 'input' and 'output'"),
        ({"gpt-4o": {"input": -1, "output": 10}}, "['input'] must be USD per million tokens"),
        ({"gpt-4o": {"input": 2.5, "output": "10"}}, "['output'] must be USD per million tokens"),
        ({"gpt-4o": {"input": float("nan"), "output": 10}}, "must be USD per million tokens"),
        ({"gpt-4o": {"input": True, "output": 10}}, "must be USD per million tokens"),
        ({"": {"input": 1, "output": 1}}, "a model name must be text"),
    ],
)
def test_malformed_prices_are_refused_in_one_line(value: Any, says: str) -> None:
    assert says in one_line_refusal(check_prices, value)


def test_budgets_are_checked() -> None:
    assert check_max_input_tokens(0) == 0 and check_max_input_tokens(20000) == 20000
    assert check_max_cost(0) == 0.0 and check_max_cost(0.05) == 0.05
    for bad in (-1, 1.5, "10k", True):
        assert "max_input_tokens must be a whole number" in one_line_refusal(check_max_input_tokens, bad)
    for bad in (-0.01, "5c", float("inf"), None):
        assert "max_cost must be USD per turn" in one_line_refusal(check_max_cost, bad)


def test_the_cost_says_whether_the_reply_is_in_it() -> None:
    with_reply = estimate_cost(10_000, Price(2.5, 10), max_output_tokens=1_000)
    assert with_reply.usd == pytest.approx(0.025 + 0.01)
    assert with_reply.how == "10,000 in x $2.50/M + up to 1,000 out x $10.00/M"
    prompt_only = estimate_cost(10_000, Price(2.5, 10))
    assert prompt_only.usd == pytest.approx(0.025)
    assert "the reply not counted" in prompt_only.how


def test_a_request_within_the_window_and_budgets_fits() -> None:
    decision = decide(
        1_000, window=32_768, max_input_tokens=2_000, max_cost=1, cost=estimate_cost(1_000, Price(1, 1))
    )
    assert decision.fits and decision.message == ""
    assert decide(10**9).fits  # nothing known, nothing set


def test_a_request_that_cannot_fit_is_refused_with_what_to_do() -> None:
    decision = decide(40_000, window=32_768, model="llama3.2", max_input_tokens=10**6)
    assert decision.verdict == "cannot fit" and not decision.fits
    assert "40,000 tokens" in decision.message and "llama3.2's context window is 32,768" in decision.message
    for remedy in ("--context", "max_history_chars", "%chat compact"):
        assert remedy in decision.message
    assert "\n" not in decision.message
    # the prompt fits, but not with the reply it asks room for
    squeezed = decide(30_000, window=32_768, max_output_tokens=4_096)
    assert squeezed.verdict == "cannot fit" and "Lower max_tokens" in squeezed.message
    assert decide(32_768, window=32_768).verdict == "cannot fit"  # llama.cpp refuses prompt >= n_ctx


def test_a_request_over_a_budget_asks_and_says_which() -> None:
    tokens = decide(12_000, window=128_000, max_input_tokens=10_000)
    assert tokens.verdict == "over budget" and tokens.reasons == ("max_input_tokens",)
    assert tokens.message == "This turn is over budget: 12,000 tokens in (max_input_tokens = 10,000)."
    cost = estimate_cost(12_000, Price(2.5, 10), 1_000)
    both = decide(12_000, max_input_tokens=10_000, cost=cost, max_cost=0.01)
    assert both.reasons == ("max_input_tokens", "max_cost")
    assert "about $0.0400 (max_cost = $0.01)" in both.message
    # no price known: max_cost cannot apply
    assert decide(12_000, max_cost=0.01).fits


def test_with_no_one_to_ask_an_over_budget_turn_is_refused_in_one_line() -> None:
    decision = decide(12_000, max_input_tokens=10_000)
    assert unattended(decision) == (
        "This turn is over budget: 12,000 tokens in (max_input_tokens = 10,000); nothing was sent, "
        "and no one is here to confirm it. Raise ChatMagics.max_input_tokens (0: no limit), or send less."
    )
