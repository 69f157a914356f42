"""``%chat compact`` and ``--context plots`` as the notebook skin does them.

The rules live below: :mod:`chatmagic.compact` (what a compaction folds, the summary turn,
undo) and :mod:`chatmagic.plots` (which figures, how small, who may take them). Here: the
command's declaration, waiting for the summary (Ctrl-C stops it and changes nothing), the
cell output that shows it and carries its record (``%chat restore`` folds its originals back
in after a restart), and the images a ``--context plots`` turn sends.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from IPython.display import display

from . import compact, compacted, present
from ._defaults import DEFAULT_CONVERSATION
from ._gate import gate
from .errors import ConfigurationError, TurnStopped
from .options import TurnOptions
from .plots import PlotHistory, check_vision, plot_attachments
from .preflight import check
from .providers import get_provider
from .providers.vision import sees_images
from .providers.window import PROBE_TIMEOUT_S
from .record import exchange_metadata
from .session import ChatSession

__all__ = ["cmd_compact", "declare", "with_plots"]


def declare(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """The ``compact`` sub-command, declared with the others (``command(name, summary)``)."""
    cmd = command(
        "compact",
        f"replace a conversation's older exchanges with a summary the model writes (all but the newest "
        f"{compact.DEFAULT_KEEP}); --undo puts them back",
    )
    cmd.add_argument("name", metavar="NAME", nargs="?", default=DEFAULT_CONVERSATION)
    cmd.add_argument(
        "--keep",
        metavar="N",
        type=_count,
        default=compact.DEFAULT_KEEP,
        help=f"Keep the newest N exchanges word for word after the summary (default {compact.DEFAULT_KEEP}).",
    )
    cmd.add_argument(
        "--undo",
        action="store_true",
        help="Take the newest summary out and put the exchanges it stands for back in its place.",
    )
    cmd.add_argument("-p", "--provider", metavar="PROVIDER", help="Have this provider write the summary.")
    cmd.add_argument("-m", "--model", metavar="MODEL", help="Have this model write the summary.")


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of exchanges (0 or more)")
    return int(text)


def cmd_compact(magics: Any, args: Any) -> None:
    """``%chat compact [NAME] [--keep N] [--undo]``: ask for the summary, wait, show it."""
    session: ChatSession = magics.session
    conv = session.conversations.get(args.name)
    if conv is None or not len(conv):
        print(f"The conversation {args.name!r} is empty: nothing to compact.")
        return
    if args.undo:
        summary = compact.undo(conv)
        n = compacted.count(summary)
        print(
            f"{args.name!r}: the {compacted.label(summary).lower()} is taken out; the {n} exchange"
            f"{'' if n == 1 else 's'} it stood for are sent word for word again. (The notebook still "
            "holds the summary's record: after a restart, %chat restore brings it back.)"
        )
        return
    options = TurnOptions(provider=args.provider, model=args.model)
    try:
        turn, plan = compact.summary_turn(session, args.name, args.keep, options)
    except compact.NothingToCompact as exc:  # said, not raised: a notebook run again goes on
        print(exc)
        return
    n = plan.originals
    # the summary is a turn like any: over the window it is refused, over the budget it asks first
    gate(magics.shell, check(turn, limits=session.limits), session.pauses, session.audience)
    waiting = f"{present.head(turn)} · writing a summary of {n} earlier exchange{'' if n == 1 else 's'}…"
    handle = display(_line(waiting), raw=True, display_id=True)
    session.start(turn)
    try:
        try:
            while not turn.wait(0.2):  # short waits: Ctrl-C reaches this thread between them
                pass
        except KeyboardInterrupt:
            turn.stop()
            turn.wait(10)
            raise TurnStopped("Stopped by the user: no summary was written, nothing changed.") from None
        summary = compact.finish(turn, plan)
    except BaseException:
        if handle is not None:
            handle.update(
                _line(f"{present.head(turn)} · no summary was written · nothing changed", "error"), raw=True
            )
        raise
    note = (
        f"compacted {args.name!r}: the summary stands for {n} earlier exchange{'' if n == 1 else 's'}, "
        f"the newest {len(plan.kept)} kept as they are · %chat compact --undo puts them back, "
        "%chat history --all shows them"
    )
    bundle = present.exchange_bundle(summary, note)
    # saved with the notebook: %chat restore folds the originals back into it after a restart
    metadata = exchange_metadata(conv, summary)
    if handle is None:
        display(bundle, raw=True, metadata=metadata)
    else:
        handle.update(bundle, raw=True, metadata=metadata)


def _line(text: str, kind: str = "") -> dict[str, str]:
    return {"text/html": present.status_html(present.Status(text, kind)), "text/plain": text}


def with_plots(
    session: ChatSession,
    plots: PlotHistory,
    items: Sequence[Any],
    options: TurnOptions,
    conversation: str,
    fresh: bool = False,
) -> TurnOptions:
    """``options`` with the last figures the ``plots:N`` items ask for, as images; refused
    (ConfigurationError naming the option) before anything is sent when no provider of the
    turn's chain takes images (nor, where the server says, its model), or no figure was shown."""
    wanted = max((item.count for item in items if item.kind == "plots"), default=0)
    if not wanted:
        return options
    chosen = session.choice(conversation, options, fresh=fresh)
    classes = [get_provider(name) for name in chosen.chain]
    check_vision(classes)
    _check_models(session, options, chosen.models, [cls for cls in classes if cls.takes_images])
    images = tuple(plot_attachments(plots, wanted))
    return dataclasses.replace(options, attachments=options.attachments + images)


def _check_models(
    session: ChatSession, options: TurnOptions, models: dict[str, str], seeing: list[Any]
) -> None:
    """Refuse when every provider that takes images serves a model its server says sees none
    (llama.cpp's /props, Ollama's /api/show); a server that does not say lets the images go."""
    said = []
    for cls in seeing:
        base_url = options.base_url or session.base_url_for(cls.name)
        if base_url is None:  # a provider's own default address (OpenAI): it does not say
            return
        try:
            sees = session.runner.run(sees_images(base_url, models[cls.name]), timeout=PROBE_TIMEOUT_S + 2)
        except Exception:  # noqa: BLE001 - a probe is a convenience: unknown lets the images go
            return
        if sees is not False:
            return
        said.append(f"{models[cls.name] or 'its model'} on {cls.name}")
    raise ConfigurationError(
        f"--context plots sends images, and {', '.join(said)} takes none (the server says): leave plots "
        "out, or pick a vision model with -m (e.g. llava on Ollama)."
    )
