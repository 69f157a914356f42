"""The tool loop's core against the stand-in: calls checked, asked, run and answered; the
step limit; refusals; declines; a tool that raises; Stop while a call waits."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from chatmagic.pause import Audience, Pauses
from chatmagic.providers._toolcalls import ToolCall
from chatmagic.providers.openai import OpenAICompatible
from chatmagic.sandbox import Sandbox
from chatmagic.toolloop import Ran, Toolbox, ToolStep, run_loop
from chatmagic.toolspec import ToolSpec, describe

from ._tool_schemas import KEY


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def get_weather(city: str, days: int = 1) -> str:
    """The weather in a city.

    Args:
        city: The city.
        days: How many days.
    """
    return f"sunny in {city} for {days} days"


def broken() -> None:
    """Always fails."""
    raise ValueError("no data\nfor you")


async def plain_execute(spec: ToolSpec, args: list[Any], kwargs: dict[str, Any]) -> Ran:
    try:
        value = spec.function(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        return Ran(f"The tool raised an error: {exc}", error=f"{type(exc).__name__}: {exc}")
    return Ran(f"<tool_output>{value}</tool_output>")


def box(
    *functions: Any, audience: Audience | None = None, pauses: Pauses | None = None, **kw: Any
) -> Toolbox:
    if audience is None:
        audience = Audience()
        audience.from_request(True)
    return Toolbox(
        {s.name: s for s in map(describe, functions)}, plain_execute, pauses or Pauses(), audience, **kw
    )


async def loop(sb: Sandbox, tools: Toolbox, prompt: str) -> tuple[str, list[ToolStep], str | None, list]:
    said: list[str] = []
    steps: list[ToolStep] = []
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    async with OpenAICompatible(base_url=sb.base_url("openai")) as p:

        async def reply(msgs: list[dict[str, Any]]) -> tuple[str, list[ToolCall]]:
            text, calls = "", []
            async for part in p.parts(msgs, "llama3.2", tools=tools.wire()):
                if isinstance(part, str):
                    text += part
                elif isinstance(part, ToolCall):
                    calls.append(part)
            said.append(text)
            return text, calls

        note = await run_loop(tools, messages, reply, steps, lambda: None)
    return "".join(said), steps, note, messages


async def answering(tools: Toolbox, choice: str) -> None:
    while not tools.pauses.waiting():
        await asyncio.sleep(0.01)
    tools.pauses.answer(None, choice)


async def test_a_call_approved_runs_and_its_result_is_used(sandbox: Sandbox) -> None:
    tools = box(get_weather)
    task = asyncio.ensure_future(
        loop(sandbox, tools, 'Weather? [[tool:get_weather {"city": "Oslo", "days": 2}]]')
    )
    await answering(tools, "run")
    text, (step,), note, messages = await task
    assert step.state == "done" and step.by == "user" and step.ask == "t1" and note is None
    assert json.loads(step.arguments) == {"city": "Oslo", "days": 2}
    assert "get_weather: <tool_output>sunny in Oslo for 2 days</tool_output>" in text
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[2]["tool_call_id"] == step.id == messages[1]["tool_calls"][0]["id"]


async def test_deny_tells_the_model_and_always_asks_no_more(sandbox: Sandbox) -> None:
    pauses = Pauses()
    tools = box(get_weather, pauses=pauses)
    task = asyncio.ensure_future(loop(sandbox, tools, "[[tool:get_weather]]"))
    await answering(tools, "deny")
    text, (step,), _, _ = await task
    assert step.state == "declined" and "The user declined this call" in text
    task = asyncio.ensure_future(loop(sandbox, tools, "[[tool:get_weather]]"))
    await answering(tools, "always")
    await task
    _, (step,), _, _ = await loop(sandbox, tools, "[[tool:get_weather]]")  # asks no more
    assert step.state == "done" and step.by == "always"


async def test_headless_declines_and_bad_calls_are_refused(sandbox: Sandbox) -> None:
    headless = Audience()
    headless.from_request(False)
    tools = box(get_weather, broken, audience=headless)
    text, (step,), _, _ = await loop(sandbox, tools, "[[tool:get_weather]]")
    assert step.state == "declined" and step.by == "no one to ask" and "no one can give it" in text
    text, steps, _, _ = await loop(
        sandbox,
        tools,
        '[[tool:rm_rf {"path": "/"}]] [[tool:get_weather {"town": 1}]] [[tool:get_weather {oops]]',
    )
    assert [s.state for s in steps] == ["refused"] * 3
    assert "a tool that was not offered" in steps[0].error
    assert "no parameter 'town'" in steps[1].error and "not valid JSON" in steps[2].error
    assert tools.pauses.waiting() == []


async def test_a_tool_that_raises_and_the_step_limit(sandbox: Sandbox) -> None:
    pauses = Pauses()
    tools = box(broken, get_weather, pauses=pauses, max_steps=2)
    for name in ("broken", "get_weather"):
        pauses.allow(name)
    text, (step,), _, _ = await loop(sandbox, tools, "[[tool:broken]]")
    assert step.state == "failed" and step.error == "ValueError: no data\nfor you"
    assert "The tool raised an error" in text
    text, steps, note, _ = await loop(sandbox, tools, "[[tool:get_weather]] [[steps:5]]")
    assert [s.state for s in steps] == ["done", "skipped"] and note is not None
    assert note.startswith("stopped after 2 model calls") and len(sandbox.requests) >= 2


async def test_stop_while_a_call_waits(sandbox: Sandbox) -> None:
    tools = box(get_weather)
    task = asyncio.ensure_future(loop(sandbox, tools, "[[tool:get_weather]]"))
    while not tools.pauses.waiting():
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert tools.pauses.waiting() == []


def test_a_kept_step_is_only_shown() -> None:
    step = ToolStep("call_1", "f", "{}", 1, state="waiting", ask="t1", by="user")
    back = ToolStep.from_dict({**step.to_dict(), "extra": 1})
    assert back.state == "stopped" and back.ended
