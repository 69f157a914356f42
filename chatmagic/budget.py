"""Prices, budgets and the decision before a request goes: fits, over budget (ask), cannot fit (refuse).

Core layer: no IPython, no widgets, no HTML; plain data in, plain data out.

Settings (traits on ``ChatMagics``, each checked here so a malformed value is refused with one
line naming what to write):

``prices``
    Per model, USD per million tokens, set by the user (chatmagic ships no price table:
    prices change and differ per account): ``{"gpt-4o": {"input": 2.5, "output": 10}}``.
    A model is found by its exact name, then by its name after a ``provider/`` prefix.
``max_input_tokens``
    The most tokens a turn may send without asking (0: no limit).
``max_cost``
    The most USD a turn may cost without asking (0: no limit); needs a price for the model.

The cost of a request (:func:`estimate_cost`) is its input tokens x the input price, plus
the most it can answer (``max_tokens`` / ``max_completion_tokens`` when the turn sets one)
x the output price; with no such limit the output is left out and :attr:`Cost.how` says so,
since a reply's length is not known before it is written.

The decision (:func:`decide`):

- **cannot fit**: the prompt alone reaches the model's window, or the prompt plus the most it
  may answer passes it. Refused before sending, with what to do (a smaller ``--context``, a
  history budget, ``%chat compact``), instead of the server's 400.
- **over budget**: over ``max_input_tokens`` or ``max_cost``. The skin shows the glass box
  and asks (Send anyway / Cancel) through :mod:`chatmagic.pause` (helper "tools" builds it:
  the same pause and resume a tool approval uses); with no one to ask (nbclient,
  ``jupyter execute``) it raises ``BudgetExceeded`` with :attr:`Decision.message` as its line.
- **fits**: sent as today.

Integration: ``ChatMagics`` gains ``prices = Dict()``, ``max_input_tokens = Int(0)``,
``max_cost = Float(0)`` with ``@validate`` calling :func:`check_prices`,
:func:`check_max_input_tokens`, :func:`check_max_cost` through ``magics._trait_check``; the
session calls :func:`decide` after counting (:mod:`chatmagic.tokens`) and finding the window
(:mod:`chatmagic.providers.window`), before ``start``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError

__all__ = [
    "Cost",
    "Decision",
    "Limits",
    "Price",
    "check_max_cost",
    "check_max_input_tokens",
    "check_prices",
    "decide",
    "estimate_cost",
    "price_for",
    "unattended",
]

_PRICES_EXAMPLE = "{'gpt-4o': {'input': 2.5, 'output': 10}} (USD per million tokens)"
#: what to do when a request cannot fit, in the words of the commands that do it
REMEDIES = (
    "a smaller --context",
    "a history budget (%config ChatMagics.max_history_chars = 8000)",
    "%chat compact",
)


@dataclass
class Limits:
    """The user's prices and budgets as a session keeps them (``ChatMagics.prices``,
    ``max_input_tokens``, ``max_cost``, each checked by this module when set)."""

    prices: dict[str, dict[str, float]] = field(default_factory=dict)
    max_input_tokens: int = 0
    max_cost: float = 0.0


@dataclass(frozen=True)
class Price:
    """USD per million tokens in and out."""

    input: float
    output: float


@dataclass(frozen=True)
class Cost:
    usd: float
    #: how it was reckoned, e.g. "1,234 in x $2.50/M + up to 500 out x $10.00/M"
    how: str


@dataclass(frozen=True)
class Decision:
    #: "fits", "over budget" (ask before sending) or "cannot fit" (refuse)
    verdict: str
    #: one line for the user ("" when it fits)
    message: str = ""
    reasons: tuple[str, ...] = field(default=())

    @property
    def fits(self) -> bool:
        return self.verdict == "fits"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_prices(value: Any) -> dict[str, dict[str, float]]:
    """``ChatMagics.prices`` checked: model name -> {"input": USD/M, "output": USD/M}."""
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"ChatMagics.prices must be a dict, e.g. {_PRICES_EXAMPLE}.")
    checked: dict[str, dict[str, float]] = {}
    for model, spec in value.items():
        if not isinstance(model, str) or not model.strip():
            raise ConfigurationError(f"ChatMagics.prices: a model name must be text (got {model!r}).")
        if not isinstance(spec, Mapping) or set(spec) != {"input", "output"}:
            raise ConfigurationError(
                f"ChatMagics.prices[{model!r}] needs exactly 'input' and 'output', e.g. {_PRICES_EXAMPLE}."
            )
        for side in ("input", "output"):
            if not _number(spec[side]) or spec[side] < 0:
                raise ConfigurationError(
                    f"ChatMagics.prices[{model!r}][{side!r}] must be USD per million tokens, "
                    f"a number of 0 or more (got {spec[side]!r})."
                )
        checked[model.strip()] = {"input": float(spec["input"]), "output": float(spec["output"])}
    return checked


def check_max_input_tokens(value: Any) -> int:
    """``ChatMagics.max_input_tokens`` checked: a whole number of tokens, 0 for no limit."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(
            f"ChatMagics.max_input_tokens must be a whole number of tokens, 0 for no limit (got {value!r})."
        )
    return value


def check_max_cost(value: Any) -> float:
    """``ChatMagics.max_cost`` checked: USD per turn, 0 for no limit."""
    if not _number(value) or value < 0:
        raise ConfigurationError(
            f"ChatMagics.max_cost must be USD per turn, e.g. 0.05; 0 for no limit (got {value!r})."
        )
    return float(value)


def price_for(prices: Mapping[str, Mapping[str, float]], model: str) -> Price | None:
    """The user's price for ``model``: its exact name, else its name after a ``provider/`` prefix."""
    for name in (model, model.rsplit("/", 1)[-1]):
        spec = prices.get(name)
        if spec is not None:
            return Price(float(spec["input"]), float(spec["output"]))
    return None


def estimate_cost(input_tokens: int, price: Price, max_output_tokens: int | None = None) -> Cost:
    """What a request may cost: input x price, plus the most it may answer x price when that is set."""
    usd = input_tokens * price.input / 1e6
    how = f"{input_tokens:,} in x ${price.input:.2f}/M"
    if max_output_tokens:
        usd += max_output_tokens * price.output / 1e6
        how += f" + up to {max_output_tokens:,} out x ${price.output:.2f}/M"
    else:
        how += " (the reply not counted: no max_tokens)"
    return Cost(usd, how)


def decide(
    input_tokens: int,
    *,
    window: int | None = None,
    model: str = "the model",
    max_output_tokens: int | None = None,
    max_input_tokens: int = 0,
    cost: Cost | None = None,
    max_cost: float = 0.0,
) -> Decision:
    """Whether a request of ``input_tokens`` may go: "fits", "over budget" (ask) or "cannot fit" (refuse)."""
    if window is not None:
        room = f"{model}'s context window is {window:,} tokens"
        if input_tokens >= window:
            return Decision(
                "cannot fit",
                f"This request needs {input_tokens:,} tokens and {room}: nothing was sent. "
                f"Send less: {', '.join(REMEDIES)}.",
                ("window",),
            )
        if max_output_tokens and input_tokens + max_output_tokens > window:
            return Decision(
                "cannot fit",
                f"This request needs {input_tokens:,} tokens plus up to {max_output_tokens:,} for the reply "
                f"and {room}: nothing was sent. Lower max_tokens, or send less: {', '.join(REMEDIES)}.",
                ("window",),
            )
    over: list[str] = []
    reasons: list[str] = []
    if max_input_tokens and input_tokens > max_input_tokens:
        over.append(f"{input_tokens:,} tokens in (max_input_tokens = {max_input_tokens:,})")
        reasons.append("max_input_tokens")
    if max_cost and cost is not None and cost.usd > max_cost:
        over.append(f"about ${cost.usd:.4f} (max_cost = ${max_cost:g})")
        reasons.append("max_cost")
    if over:
        return Decision("over budget", f"This turn is over budget: {' and '.join(over)}.", tuple(reasons))
    return Decision("fits")


def unattended(decision: Decision) -> str:
    """The one line for a turn over budget with no one to ask (nbclient, ``jupyter execute``)."""
    settings = " or ".join(f"ChatMagics.{r}" for r in decision.reasons)
    return (
        f"{decision.message.rstrip('.')}; nothing was sent, and no one is here to confirm it. "
        f"Raise {settings} (0: no limit), or send less."
    )
