"""The tools a turn offers, made from what the user named, and how they run in the kernel.

``--tools load_sales,plot_hist`` (and ``ChatMagics.tools``) name callables of the
namespace (``mod.func`` goes through attributes); ``notebook`` offers every built-in that
only reads (chatmagic.notebook_tools), and a built-in may be named alone. A name that is
not found, not callable or cannot be described is a ToolSpecError naming it (the skin
shows it as a UsageError) before anything is sent.

A call runs through :class:`chatmagic.toolrun.MainThread`: on the kernel's main thread,
with the user's namespace, its printed output and displays captured; its result is made
into the ``tool`` message by ``toolrun.result_text`` (bounded, scrubbed, marked as data).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._secrets import Table
from .notebook_tools import NOTEBOOK, builtin_specs
from .pause import Audience, Pauses
from .toolloop import DEFAULT_MAX_STEPS, Ran, Toolbox
from .toolrun import MainThread, result_text, run_captured, shown_images
from .toolspec import ToolSpec, ToolSpecError, describe

__all__ = ["make_toolbox", "parse_names", "resolve"]


def parse_names(*specs: str | Sequence[str] | None) -> list[str]:
    """The tool names of ``--tools a,b`` and ``ChatMagics.tools`` (a string or a list), once each."""
    names: list[str] = []
    for spec in specs:
        if not spec:
            continue
        words = spec.split(",") if isinstance(spec, str) else list(spec)
        for word in words:
            word = str(word).strip()
            if word and word not in names:
                names.append(word)
    return names


def _lookup(name: str, ns: Mapping[str, Any]) -> Any:
    head, *rest = name.split(".")
    if head not in ns:
        raise ToolSpecError(
            f"--tools {name}: there is no {head!r} in the notebook: define the function first."
        )
    value = ns[head]
    for attr in rest:
        try:
            value = getattr(value, attr)
        except Exception:  # noqa: BLE001 - the user's object, untrusted
            raise ToolSpecError(f"--tools {name}: {head} has no attribute {attr!r}.") from None
    return value


def resolve(
    names: Sequence[str],
    ns: Mapping[str, Any],
    shell: Any = None,
    printed: Mapping[int, Any] | None = None,
    insert: Callable[[str], None] | None = None,
) -> dict[str, ToolSpec]:
    """The specs of ``names`` (see the module docstring); a ToolSpecError names the first bad one."""
    builtins = builtin_specs(shell, printed, insert)
    specs: dict[str, ToolSpec] = {}
    for name in names:
        if name == "notebook":
            found = [builtins[n] for n in NOTEBOOK]
        elif name in builtins and name not in ns:
            found = [builtins[name]]
        else:
            found = [describe(_lookup(name, ns), name)]
        for spec in found:
            other = specs.get(spec.name)
            if other is not None and other.function is not spec.function:
                raise ToolSpecError(f"--tools {name}: two tools are called {spec.name!r}: rename one.")
            specs[spec.name] = spec
    return specs


def make_toolbox(
    specs: Mapping[str, ToolSpec],
    main: MainThread,
    pauses: Pauses,
    audience: Audience,
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
    secrets: Table | None = None,
    redact: bool = True,
    wake: Callable[[], None] | None = None,
) -> Toolbox:
    """A :class:`Toolbox` whose calls run on ``main`` (the kernel's main thread); ``wake``:
    called once a call is queued there (the blocking cell's wait loop runs it)."""

    async def execute(spec: ToolSpec, args: list[Any], kwargs: dict[str, Any]) -> Ran:
        queued = main.submit(lambda: run_captured(spec.function, args, kwargs))
        if wake is not None:  # the cell that follows the turn runs it now, not at its next look
            wake()
        run = await asyncio.wrap_future(queued)
        interrupted = bool(run.error and run.error.startswith("KeyboardInterrupt"))
        text = result_text(spec.name, run, redact=redact)
        return Ran(text, run.error, run.ms, interrupted, tuple(shown_images(run)))

    return Toolbox(dict(specs), execute, pauses, audience, max_steps=max_steps, secrets=secrets)
