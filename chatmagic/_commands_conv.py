"""The ``%chat`` commands about conversations: usage, conversations, history, reset, stop,
restore, log and export (declared with the others in chatmagic._commands, which dispatches here).

Each prints a short answer or displays a table; a refusal is one UsageError line.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ._cell import Host
from ._log_format import format_entries
from .compacted import originals
from .export import export
from .present import history_bundle, outcome, table_bundle
from .record import current_notebook
from .restore import restore

__all__ = [
    "cmd_conversations",
    "cmd_export",
    "cmd_history",
    "cmd_log",
    "cmd_reset",
    "cmd_restore",
    "cmd_stop",
    "cmd_usage",
    "show_table",
]


def cmd_usage(magics: Host, args: Any) -> None:
    conv = magics.session.conversations.get(args.name)
    if conv is None or not len(conv):
        print(f"The conversation {args.name!r} is empty.")
        return
    every = originals(conv.exchanges)  # a summary's originals were replies too
    counted = [ex for ex in every if ex.usage]
    if not counted:
        print(f"No reply of {args.name!r} came with token counts (web sites and some servers report none).")
        return
    total: dict[str, int] = {}
    for ex in counted:
        for key, count in (ex.usage or {}).items():
            total[key] = total.get(key, 0) + count
    line = (
        f"{args.name!r}: {total.get('prompt_tokens', 0):,} tokens in, "
        f"{total.get('completion_tokens', 0):,} out"
    )
    if total.get("reasoning_tokens"):
        line += f" ({total['reasoning_tokens']:,} of them reasoning)"
    line += f", over {len(counted)} repl{'y' if len(counted) == 1 else 'ies'}"
    if len(counted) < len(every):
        line += f"; {len(every) - len(counted)} more reported no counts"
    print(line + ".")


def cmd_conversations(magics: Host, args: Any) -> None:
    head = ["conversation", "exchanges", "provider", "model", "system prompt"]
    table = [
        [
            c.name,
            str(len(c)),
            c.provider or f"({magics.session.default_provider})",
            c.model or "(default)",
            (c.system or "")[:40],
        ]
        for c in magics.session
    ]
    if not table:
        print("No conversations yet: a %%chat cell starts one.")
        return
    show_table(head, table)


def cmd_history(magics: Host, args: Any) -> None:
    name = args.name
    conv = magics.session.conversations.get(name)
    if conv is None or not len(conv):
        print(f"The conversation {name!r} is empty.")
        return
    # drawn as the panel draws its transcript (chatmagic.present); the newest exchanges
    # only, unless told, so that a long conversation costs what is shown
    display(history_bundle(conv, None if args.all else args.last), raw=True)


def cmd_reset(magics: Host, args: Any) -> None:
    name = args.name
    conv = magics.session.conversations.get(name)
    if conv is None:
        print(f"There is no conversation {name!r}.")
        return
    conv.reset()
    print(f"Conversation {name!r} reset.")


def cmd_stop(magics: Host, args: Any) -> None:
    """``%chat stop [NAME]``: the conversation's turn ends now, streaming or waiting for an
    answer (its cell may have ended long ago: no interrupt needed); what was said is kept."""
    running = {c.name: c.active for c in magics.session if c.active is not None and not c.active.done}
    name = args.name
    if name is None:
        if len(running) > 1:
            raise UsageError(
                f"Turns are running in {', '.join(map(repr, running))}: name one, e.g. "
                f"%chat stop {next(iter(running))}."
            )
        name = next(iter(running), None)
    turn = running.get(name) if name is not None else None
    if turn is None:
        where = f"in {name!r}" if name is not None else "in any conversation"
        print(f"No turn is running or waiting {where}: nothing to stop.")
        return
    waiting = [s.name for s in turn.waiting]
    turn.stop()
    turn.wait(10)
    calls = f"; the call waiting for your answer ({', '.join(waiting)}) was not run" if waiting else ""
    print(f"Stopped the turn of {name!r}{calls}. {outcome(turn)}".rstrip())


def cmd_restore(magics: Host, args: Any) -> None:
    path = args.notebook or current_notebook(magics.user_ns())
    if path is None:
        raise UsageError(
            "Which notebook? This frontend does not say: %chat restore path/to/notebook.ipynb "
            "(save the notebook first)."
        )
    report = restore(magics.session, path, log=magics.session.log, settings=args.settings)
    print(report.summary())


def cmd_log(magics: Host, args: Any) -> None:
    log = magics.session.log
    if log is None:
        print("The exchange log is off (ChatMagics.log_path = ''): there is nothing to search.")
        return
    text = " ".join(args.text)
    empty = f"No exchange in the log matches {text!r}." if text else "The log has no exchanges yet."
    print(format_entries(log.search(text or None, limit=args.limit), empty=empty))


def cmd_export(magics: Host, args: Any) -> None:
    conv = magics.session.conversations.get(args.name)
    if conv is None or not len(conv):
        raise UsageError(f"The conversation {args.name!r} is empty: nothing to export.")
    target = export(conv, args.path or f"chat-{conv.name}.md")
    print(f"Wrote {len(conv)} exchanges of {conv.name!r} to {target}.")


def show_table(head: list[str], rows: list[list[str]], notes: tuple[str, ...] = ()) -> None:
    display(table_bundle(head, rows, notes), raw=True)
