"""The tool loop of a turn: model reply, each call checked, asked, run, answered, and again.

One turn is at most ``max_steps`` model calls (``ChatMagics.max_tool_steps``, 8). Each
reply that carries tool calls is followed, call by call in the order the model made them,
by:

1. **the check**: a call the wire could not read (no name, a tool not offered, arguments
   that are not one JSON object or too long: ``ToolCall.error``) or whose arguments do not
   fit the tool (:meth:`ToolSpec.bind`) is *refused*: its one line is the tool's answer,
   shown on its card; the loop goes on.
2. **the question**: a built-in that only reads (``ToolSpec.read_only``) runs at once; any
   other call waits for the user (chatmagic.pause: Run, Deny, Always for this function in
   this session). Nothing here reads an approval from anywhere but the running session's
   :class:`~chatmagic.pause.Pauses`; with no one to ask the call is *declined* at once.
3. **the run**: ``Toolbox.execute`` runs it where a cell would (the skin's job: the
   kernel's main thread, output captured, result bounded, scrubbed and marked as data:
   chatmagic.toolrun) and hands back a :class:`Ran`. A tool that raises is *failed*: the
   model gets its one line, the loop goes on.

Then the assistant message with its calls and one ``tool`` message per call go to the
model, and it answers or calls again. A reply with calls when no model call is left: those
calls are *skipped* and the turn ends with what was said (a note says why).

A :class:`ToolStep` is what a card shows and what the exchange keeps (record, log,
history, export, restore, replay): the tool, its arguments in full (secrets scrubbed), its
state, who decided, its time and its result (what the model was sent). A kept step is only
ever shown again: a replay calls nothing, and a saved step approves nothing.

This module is core: no IPython, no widgets, no HTML. Stop and Ctrl-C cancel the turn's
task: a question waiting is declined (``by="stopped"``), what was said and the steps made
are kept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._defaults import DEFAULT_MAX_TOOL_STEPS
from ._secrets import Table, scrub
from .errors import ConfigurationError
from .pause import Audience, Pauses
from .providers._toolcalls import ToolCall, assistant_message, read_arguments, tool_message
from .toolspec import ToolSpec, ToolSpecError
from .toolstep import STATES, ToolStep

__all__ = [
    "DEFAULT_MAX_STEPS",
    "STATES",
    "Ran",
    "ToolStep",
    "Toolbox",
    "answer_calls",
    "chain_for_tools",
    "declined_text",
    "run_loop",
    "sendable",
]

#: model calls a turn may make (``ChatMagics.max_tool_steps``)
DEFAULT_MAX_STEPS = DEFAULT_MAX_TOOL_STEPS


@dataclass
class Ran:
    """What running a call gave (made by the skin's ``execute``)."""

    #: the ``tool`` message's text: bounded, scrubbed, marked as data from a tool
    text: str
    #: one line when the tool raised
    error: str | None = None
    ms: float = 0.0
    #: Ctrl-C reached the tool: the turn stops
    interrupted: bool = False
    #: what it displayed as images, for its card (``toolrun.shown_images``)
    images: tuple[str, ...] = ()


Execute = Callable[[ToolSpec, list[Any], dict[str, Any]], Awaitable[Ran]]


@dataclass
class Toolbox:
    """What a turn may call, and how (the skin makes it: ``--tools``, ``ChatMagics.tools``)."""

    specs: Mapping[str, ToolSpec]
    execute: Execute
    pauses: Pauses
    audience: Audience
    max_steps: int = DEFAULT_MAX_STEPS
    #: the secrets of the turn: what a card shows and a record keeps holds none
    secrets: Table | None = None
    tool_choice: Any = None

    def wire(self) -> list[dict[str, Any]]:
        """The ``tools`` entries a request offers."""
        return [s.as_wire() for s in self.specs.values()]


def chain_for_tools(classes: Sequence[Any], names: Sequence[str]) -> tuple[list[Any], str | None]:
    """The providers of a chain that can take tools, and a note on those left out.

    None of them: a ConfigurationError before anything is sent (the five web sites cannot).
    """
    able = [c for c in classes if getattr(c, "supports_tools", False)]
    if not able:
        label = (
            getattr(classes[0], "label", classes[0].__name__)
            if len(classes) == 1
            else "No provider of the chain"
        )
        said = f"{label} is a web site's chat and cannot" if len(classes) == 1 else f"{label} can"
        raise ConfigurationError(
            f"--tools {', '.join(names)}: {said} call tools. Use an OpenAI-compatible provider "
            "(-p openai, -p ollama, an endpoint, or the stand-in), or leave --tools out."
        )
    left = [getattr(c, "label", c.__name__) for c in classes if c not in able]
    return able, (f"left out of the chain (no tools): {', '.join(left)}" if left else None)


def declined_text(by: str | None) -> str:
    """The ``tool`` message of a call that was not run because of its answer."""
    if by == "no one to ask":
        return (
            "The call was not run: it needs the user's approval and no one can give it here "
            "(the notebook runs without a person). Answer without it."
        )
    if by == "stopped":
        return "The call was not run: the user stopped the turn."
    return "The user declined this call; it was not run."


#: the tool names the API takes back (OpenAI: ^[a-zA-Z0-9_-]+$, at most 64)
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]")


def sendable(call: ToolCall) -> ToolCall:
    """The call as the next request may carry it back: a name the model made up that the API
    refuses (``os.remove``, none) is sent spelled as it takes it; the refusal says the rest."""
    name = _NOT_NAME.sub("_", call.name)[:64] or "unnamed"
    return call if name == call.name else dataclasses.replace(call, name=name)


def _scrubbed(text: str, secrets: Table | None) -> str:
    return scrub(text, found=secrets.found) if secrets is not None else text


async def _answer(box: Toolbox, call: ToolCall, step: ToolStep, changed: Callable[[], None]) -> str:
    """Check, ask, run one call; returns the ``tool`` message's text (``step`` tells the card)."""

    def refuse(line: str) -> str:
        step.state, step.error = "refused", _scrubbed(line, box.secrets)
        step.result = f"The call was not run: {step.error}"
        return step.result

    spec = box.specs.get(call.name)
    if call.error is not None:
        return refuse(call.error)
    if spec is None:  # the wire checks too; a provider that does not is caught here
        return refuse(f"The model called {call.name!r}, a tool that was not offered.")
    arguments, problem = read_arguments(call.arguments, call.size)
    if arguments is None:
        return refuse(f"The model's call of {call.name!r} cannot run: {problem}.")
    try:
        args, kwargs = spec.bind(arguments)
    except ToolSpecError as exc:
        return refuse(str(exc))
    if spec.read_only:
        step.by = "read-only"
    else:
        pending = box.pauses.ask(
            "tool", spec.name, {"arguments": arguments, "call": step.id, "name": spec.name}
        )
        step.ask = pending.id
        if not pending.done:
            step.state = "waiting"
            changed()
        try:
            answer = await box.pauses.reach(pending, box.audience)
        except asyncio.CancelledError:
            step.state, step.by = "stopped", "stopped"
            step.result = declined_text("stopped")
            raise
        step.by = pending.by
        if answer != "run":
            step.state = "declined"
            step.result = declined_text(pending.by)
            step.error = "declined" if pending.by == "user" else f"declined: {pending.by}"
            return step.result
    step.state = "running"
    changed()
    try:
        ran = await box.execute(spec, args, kwargs)
    except asyncio.CancelledError:
        step.state, step.result = "stopped", declined_text("stopped")
        raise
    step.ms, step.result, step.images = ran.ms, ran.text, list(ran.images)
    step.error = _scrubbed(ran.error, box.secrets) if ran.error else None
    step.state = "failed" if ran.error else "done"
    if ran.interrupted:
        step.state = "stopped"
        raise asyncio.CancelledError
    return ran.text


async def answer_calls(
    box: Toolbox,
    calls: Sequence[ToolCall],
    step: int,
    steps: list[ToolStep],
    changed: Callable[[], None],
    at: int = 0,
) -> list[dict[str, Any]]:
    """Each call checked, asked and run in order; the ``tool`` messages that answer them.

    The new steps join ``steps`` at once (their cards show before anything runs);
    ``changed`` is called whenever one changes (the skins redraw).
    """
    made = [ToolStep(c.id, c.name, _scrubbed(c.arguments, box.secrets), step, at) for c in calls]
    steps.extend(made)
    changed()
    answers = []
    try:
        for call, made_step in zip(calls, made, strict=True):
            answers.append(tool_message(call.id, await _answer(box, call, made_step, changed)))
            changed()
    except asyncio.CancelledError:
        for s in made:
            if not s.ended:
                s.state, s.by = "stopped", s.by or "stopped"
        changed()
        raise
    return answers


Reply = Callable[[list[dict[str, Any]]], Awaitable[tuple[str, list[ToolCall]]]]


async def run_loop(
    box: Toolbox,
    messages: list[dict[str, Any]],
    reply: Reply,
    steps: list[ToolStep],
    changed: Callable[[], None],
    said: Callable[[], int] = lambda: 0,
) -> str | None:
    """Model calls until one answers without calls, at most ``box.max_steps``.

    ``reply(messages)`` streams one model reply (its text goes where the turn's text
    goes) and returns (the text it said, its calls). ``messages`` grows with each step's
    assistant message and tool answers (what the next request sends). Returns a note when
    the step limit left calls unrun, else None.
    """
    for number in range(1, max(box.max_steps, 1) + 1):
        text, calls = await reply(messages)
        if not calls:
            return None
        if number >= box.max_steps:
            for call in calls:
                steps.append(
                    ToolStep(
                        call.id,
                        call.name,
                        _scrubbed(call.arguments, box.secrets),
                        number,
                        said(),
                        state="skipped",
                        error=f"not run: the turn made its {box.max_steps} model calls (ChatMagics.max_tool_steps)",
                    )
                )
            changed()
            return (
                f"stopped after {box.max_steps} model calls (ChatMagics.max_tool_steps): "
                f"{len(calls)} call{'s' if len(calls) > 1 else ''} not run"
            )
        messages.append(assistant_message(text, [sendable(c) for c in calls]))
        messages.extend(await answer_calls(box, calls, number, steps, changed, said()))
    return None
