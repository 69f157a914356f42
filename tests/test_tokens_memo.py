"""Counting a turn's request counts only what follows the previous turn's (issue 15, "A turn
that costs the same at exchange 1,000 as at exchange 1"), and the totals are those of
counting it from nothing."""

from __future__ import annotations

import random
from typing import Any

import pytest

from chatmagic import tokens
from chatmagic.tokens import count_messages


class _Counted(dict):  # type: ignore[type-arg]
    """A message that tallies how often its parts are read (a class-wide tally)."""

    reads = 0

    def items(self) -> Any:
        _Counted.reads += 1
        return super().items()


def _message(rng: random.Random, i: int) -> dict[str, Any]:
    kind = rng.random()
    role = "user" if i % 2 == 0 else "assistant"
    if kind < 0.1:  # an assistant message with its calls
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": f"c{i}", "function": {"name": "f"}}],
        }
    if kind < 0.15:  # a prompt with an image
        return {"role": "user", "content": [{"type": "text", "text": f"see {i}"}, {"type": "image_url"}]}
    if kind < 0.2:
        return {"role": "system", "name": "example_user", "content": f"named {i}"}
    return {"role": role, "content": f"message {i} " + "word " * rng.randint(0, 40)}


def _from_nothing(request: list[dict[str, Any]], model: str, tools: Any) -> tokens.Count:
    """The count with no previous request remembered (and the remembered one left as it was)."""
    kept = dict(tokens._last)
    tokens._last.clear()
    try:
        return count_messages(request, model, tools)
    finally:
        tokens._last.clear()
        tokens._last.update(kept)


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "llama3.2"])
def test_turn_after_turn_the_totals_are_those_counted_from_nothing(model: str) -> None:
    rng = random.Random(model)
    history: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]
    other: list[dict[str, Any]] = []
    for turn in range(120):
        prompt = _message(rng, 2 * turn)
        request = [*history, prompt]
        tools = [{"type": "function"}] if turn % 7 == 0 else None
        assert count_messages(request, model, tools) == _from_nothing(request, model, tools), turn
        if turn % 3 == 0:  # another conversation's turns in between
            other += [_message(rng, turn), _message(rng, turn + 1)]
            assert count_messages(other, model) == _from_nothing(other, model, None), turn
        history += [dict(prompt), _message(rng, 2 * turn + 1)]  # the prompt comes back as history
        if rng.random() < 0.1:  # a step of the history budget: the oldest exchanges dropped
            history = history[:1] + history[1 + 2 * rng.randint(1, 5) :]
        if rng.random() < 0.05:  # another system prompt
            history[0] = {"role": "system", "content": f"Be brief, {turn}."}
        if rng.random() < 0.05:  # a message changed (a re-run cell, new secrets): counted again
            at = rng.randrange(len(history))
            history[at] = {**history[at], "content": "changed"}


def test_a_request_that_begins_with_the_previous_one_counts_only_what_follows() -> None:
    history = [
        _Counted(role="user" if i % 2 == 0 else "assistant", content=f"message {i}") for i in range(400)
    ]
    count_messages([*history, _Counted(role="user", content="first")], "gpt-4o")
    reads = []
    for i in range(3):
        _Counted.reads = 0
        history += [_Counted(role="user", content="first" if i == 0 else f"next {i - 1}")]
        history += [_Counted(role="assistant", content=f"reply {i}")]
        count_messages([*history, _Counted(role="user", content=f"next {i}")], "gpt-4o")
        reads.append(_Counted.reads)
        # a turn of another conversation in between (a panel, a first exchange): counted apart
        count_messages([_Counted(role="user", content=f"elsewhere {i}")], "gpt-4o")
    assert reads == [2, 2, 2], reads  # the reply and the new prompt, not the 400 before them
