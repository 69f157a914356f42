"""``%chat`` and its sub-commands: one argparse declaration, one handler each.

The parser writes the usage, the help (``%chat help``) and the errors, each a one-line
UsageError with secrets removed; an unknown command gets a "did you mean". The commands
about conversations are handled in chatmagic._commands_conv, ``%chat fix`` (a turn in
this cell) in chatmagic._cell.
"""

from __future__ import annotations

import argparse
import difflib
import shlex
from collections.abc import Callable
from typing import Any, NoReturn, Protocol

from IPython.core.error import UsageError

from . import _cell, _state
from ._commands_conv import (
    cmd_conversations,
    cmd_export,
    cmd_history,
    cmd_log,
    cmd_reset,
    cmd_restore,
    cmd_stop,
    cmd_usage,
    show_table,
)
from ._commands_glass import cmd_cancel, cmd_context, cmd_send
from ._compacting import cmd_compact
from ._compacting import declare as declare_compact
from ._defaults import DEFAULT_CONVERSATION
from ._terminal import is_terminal
from ._toolbox import parse_names, resolve
from ._toolcell import cmd_approve, cmd_deny
from .errors import ChatMagicError, ConfigurationError, redact
from .present import HISTORY_LAST
from .providers import get_provider, list_providers
from .providers.endpoints import endpoint_names


class Host(_cell.Host, Protocol):
    """What the commands need of the loaded magics (chatmagic.magics.ChatMagics)."""

    default_provider: str
    default_model: str


def dispatch(magics: Host, line: str) -> Any:
    """Run the ``%chat`` command ``line`` (help when empty)."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        if line.split()[:1] != ["log"]:
            raise UsageError(f"%chat: {exc} in: {redact(line)}") from None
        words = line.split()  # a search for "don't": its quote is text, as every quote there
    parser = _line_parser()
    if words and words[0].lower() not in _commands(parser):
        close = difflib.get_close_matches(words[0].lower(), _commands(parser), n=1)
        hint = f" Did you mean: %chat {close[0]}?" if close else " See %chat help."
        raise UsageError(
            f"%chat has no command {redact(words[0])!r}.{hint} To send a message, use a %%chat cell."
        )
    if words:
        words[0] = words[0].lower()
    args = parser.parse_args(words or ["help"])
    return HANDLERS[args.command](magics, args)


def cmd_help(magics: Host, args: Any) -> None:
    print(_help_text(_line_parser()))


def cmd_providers(magics: Host, args: Any) -> None:
    rows = list_providers()
    head = ["provider", "default model", "models", "streams", "system", "history"]
    table = []
    for r in rows:
        if "error" in r:
            table.append([r["name"], "(cannot load)", r["error"], "", "", ""])
            continue
        models = ", ".join(r["models"] + [f"{a}→{t}" for a, t in r["aliases"].items()])
        flags = ["yes" if r[k] else "no" for k in ("stream", "system", "history")]
        name = r["name"] + (" (default)" if r["name"] == magics.session.default_provider else "")
        table.append([name, r["default_model"], models, *flags])
    show_table(head, table, _PROVIDER_COLUMNS)


def cmd_models(magics: Host, args: Any) -> None:
    # the rule a turn follows, as the panel shows it (ChatSession.shown_choice)
    chosen = magics.session.shown_choice(args.conversation)
    name = args.provider or chosen.chain[0]
    try:
        models = magics.session.list_models(name)
    except ChatMagicError as exc:
        raise UsageError(str(exc)) from None
    if not models:
        print(f"{name} lists no models: load or pull one first (Ollama: ollama pull llama3.2).")
        return
    print(f"Models of {name} ({len(models)}):\n" + "\n".join(f"  {m}" for m in models))
    if not args.provider:
        model = f", model {chosen.model}" if chosen.model else ""
        print(f"The next turn of {args.conversation!r} uses {chosen.provider}{model}.")


def cmd_use(magics: Host, args: Any) -> None:
    try:
        cls = get_provider(args.provider)
        model = cls.get_model(args.model)
    except ChatMagicError as exc:
        raise UsageError(str(exc)) from None
    magics.default_provider = cls.name
    magics.default_model = model if args.model else ""
    print(f"Default provider: {cls.name}, model {model}.")


def cmd_panel(magics: Host, args: Any) -> Any:
    if is_terminal(magics.shell):  # a widget would print as its repr
        raise UsageError(
            "The chat panel needs a notebook (JupyterLab, Notebook 7, VS Code): in the terminal, "
            "chat with %%chat cells."
        )
    from .panel import ChatPanel

    magics.note_notebook()
    if args.tools:  # a name that is not a tool is said now, not at the panel's first message
        try:
            resolve(parse_names(args.tools), magics.user_ns(), magics.shell)
        except ConfigurationError as exc:
            raise UsageError(str(exc)) from None
    return ChatPanel(conversation=args.name, session=magics.session, tools=args.tools)


def cmd_sandbox(magics: Host, args: Any) -> None:
    if args.action == "stop":
        _state.stop_sandbox(magics.session)
        print("The local stand-in is stopped; providers use their configured addresses again.")
    elif args.action in ("fault", "faults", "clear"):
        sandbox = _state.running_sandbox()
        if sandbox is None:
            raise UsageError("The stand-in is not running: %chat sandbox start")
        if args.action == "faults":
            waiting = sandbox.faults()
            print(
                "\n".join(
                    f"{site}: {','.join(faults)} for the next {left} chat request(s)"
                    for site, faults, left in waiting
                )
                or "No fault is waiting: the stand-in answers every request normally."
            )
            return
        if args.action == "clear":
            count = sandbox.clear_faults()
            print(f"Cleared {count} waiting fault(s): the stand-in answers every request normally.")
            return
        try:
            sandbox.inject(args.site, *args.fault.split(","), times=args.times)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        # a retry is a request too: say so, and how to take back what a cell did not use
        print(
            f"The stand-in's {args.site} will answer the next {args.times} chat request(s) with: "
            f"{args.fault}. Each retry is a request (ChatMagics.retries = {magics.session.retries}: a "
            f"cell makes up to {magics.session.retries + 1}); what is left waits for later cells: "
            "%chat sandbox faults lists it, %chat sandbox clear forgets it."
        )
    else:
        url = _state.start_sandbox(magics.session)
        print(
            f"Local stand-in of the chat sites at {url}; every provider now talks to it, "
            f"endpoints included ({', '.join(endpoint_names())})."
        )


#: what the columns of %chat providers mean (also in the README)
_PROVIDER_COLUMNS = (
    "streams — yes: the reply shows as it is written; no: it arrives in one piece, at the end.",
    "system — yes: the site takes a system prompt (-s); no: it goes inside the message, and may be heeded less.",
    "history — yes: the site takes the earlier messages; no: they go inside the message too.",
    "(default) answers the cells that name no provider: %chat use NAME changes it, -p NAME picks one per cell.",
)


class _CommandParser(argparse.ArgumentParser):
    """argparse that reports errors as IPython's one-line UsageError, secrets removed."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{redact(message)}\n{self.format_usage().strip()}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(redact(message or "").strip() or self.format_usage().strip())


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _line_parser() -> _CommandParser:
    """The ``%chat`` commands: usage, help and errors all come from this one declaration."""
    parser = _CommandParser(prog="%chat", add_help=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)

    def command(name: str, summary: str) -> _CommandParser:
        cmd: _CommandParser = sub.add_parser(name, help=summary, description=summary, add_help=False)
        return cmd

    command("help", "list these commands")
    command("providers", "list providers with their models and flags")
    models = command("models", "list the models a provider's server has (GET /models)")
    models.add_argument("provider", metavar="PROVIDER", nargs="?")
    models.add_argument(
        "-c",
        "--conversation",
        metavar="NAME",
        default=DEFAULT_CONVERSATION,
        help="Without PROVIDER: the provider this conversation's next turn uses (default: default).",
    )
    command(
        "usage", "total the tokens a conversation's replies used, as the servers counted them"
    ).add_argument("name", metavar="NAME", nargs="?", default=DEFAULT_CONVERSATION)
    fix = command("fix", "explain the last error and propose a fix; the reply streams here")
    fix.add_argument(
        "-c",
        "--conversation",
        metavar="NAME",
        default=None,
        help=f"Continue this conversation (default: {_cell.FIX_CONVERSATION!r}, started afresh: the error alone).",
    )
    fix.add_argument("-p", "--provider", metavar="PROVIDER")
    fix.add_argument("-m", "--model", metavar="MODEL")
    approve = command("approve", "run a tool call that waits for your answer (the only one, or ID)")
    approve.add_argument("id", metavar="ID", nargs="?")
    approve.add_argument(
        "--always",
        action="store_true",
        help="Run it, and this function's later calls in this session without asking.",
    )
    command("deny", "decline a tool call that waits for your answer; the model is told").add_argument(
        "id", metavar="ID", nargs="?"
    )
    command(
        "stop", "stop a conversation's turn, streaming or waiting for an answer; what was said is kept"
    ).add_argument(
        "name",
        metavar="NAME",
        nargs="?",
        help="The conversation (default: the one whose turn runs).",
    )
    command(
        "context", "show the next request of a conversation, each part counted; nothing is sent"
    ).add_argument("name", metavar="NAME", nargs="?", default=DEFAULT_CONVERSATION)
    command("send", "send a turn that waits over budget (Send anyway)").add_argument(
        "id", metavar="ID", nargs="?"
    )
    command("cancel", "cancel a turn that waits over budget").add_argument("id", metavar="ID", nargs="?")
    command("conversations", "list the conversations of this kernel")
    history = command(
        "history", f"show a conversation's newest {HISTORY_LAST} exchanges, the last N, or --all of them"
    )
    history.add_argument(
        "name",
        metavar="NAME",
        nargs="?",
        default=DEFAULT_CONVERSATION,
        help="The conversation to show (default: 'default').",
    )
    shown = history.add_mutually_exclusive_group()
    shown.add_argument(
        "--last",
        metavar="N",
        type=_positive_int,
        default=HISTORY_LAST,
        help=f"Show the newest N exchanges (default {HISTORY_LAST}); a line says how many earlier ones were left out.",
    )
    shown.add_argument(
        "--all", action="store_true", help="Show every exchange, however long the conversation is."
    )
    declare_compact(command)
    command("reset", "forget a conversation's history").add_argument(
        "name", metavar="NAME", nargs="?", default=DEFAULT_CONVERSATION
    )
    use = command("use", "set the default provider (and model)")
    use.add_argument("provider", metavar="PROVIDER")
    use.add_argument("model", metavar="MODEL", nargs="?")
    panel = command("panel", "open the chat panel on a conversation")
    panel.add_argument("name", metavar="NAME", nargs="?", default=DEFAULT_CONVERSATION)
    panel.add_argument(
        "--tools",
        metavar="NAMES",
        help="the tools its turns offer, as a cell's --tools (default: ChatMagics.tools)",
    )
    restore = command("restore", "rebuild the conversations saved in a notebook, merged with this kernel's")
    restore.add_argument("notebook", metavar="NOTEBOOK", nargs="?")
    restore.add_argument(
        "--settings",
        action="store_true",
        help="Also take the provider chains and system prompts the notebook saved (a notebook from "
        "someone else decides nothing without it: they are only named).",
    )
    log = command("log", "list the latest exchanges of every notebook, or search them for TEXT")
    log.add_argument("text", metavar="TEXT", nargs="*")
    log.add_argument("-n", "--limit", metavar="N", type=_positive_int, default=20)
    export = command("export", "write a conversation as Markdown, or JSON when PATH ends in .json")
    export.add_argument("name", metavar="NAME")
    export.add_argument("path", metavar="PATH", nargs="?")
    sandbox = command(
        "sandbox", "the local stand-in of the chat sites: start (default), stop, fault, faults, clear"
    )
    actions = sandbox.add_subparsers(dest="action", metavar="ACTION", parser_class=_CommandParser)
    actions.add_parser("start", help="start it and point every provider at it", add_help=False)
    actions.add_parser("stop", help="stop it; providers use their configured addresses again", add_help=False)
    fault = actions.add_parser("fault", help="make it fail the next TIMES requests to SITE", add_help=False)
    fault.add_argument("site", metavar="SITE")
    fault.add_argument("fault", metavar="FAULT[,FAULT]")
    fault.add_argument("times", metavar="TIMES", nargs="?", type=_positive_int, default=1)
    actions.add_parser("faults", help="list the faults still waiting for a request", add_help=False)
    actions.add_parser("clear", help="forget the faults still waiting", add_help=False)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """A parser's sub-commands: name -> (parser, one-line help)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return {name: (cmd, helps.get(name, "")) for name, cmd in action.choices.items()}
    return {}


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    return list(_subparsers(parser))


def _help_text(parser: argparse.ArgumentParser) -> str:
    rows: list[tuple[str, str]] = []

    def walk(p: argparse.ArgumentParser) -> None:
        for cmd, summary in _subparsers(p).values():
            rows.append((cmd.format_usage().removeprefix("usage: ").strip(), summary))
            walk(cmd)

    walk(parser)
    width = max(len(usage) for usage, _ in rows)
    lines = [f"  {usage:<{width}}  {summary}".rstrip() for usage, summary in rows]
    return "Commands:\n" + "\n".join(lines) + "\nSend messages with a %%chat cell; %%chat? is its manual."


#: the handler of each command (the parser declares them above)
HANDLERS: dict[str, Callable[[Any, Any], Any]] = {
    "help": cmd_help,
    "providers": cmd_providers,
    "models": cmd_models,
    "usage": cmd_usage,
    "fix": _cell.fix,
    "context": cmd_context,
    "send": cmd_send,
    "cancel": cmd_cancel,
    "conversations": cmd_conversations,
    "history": cmd_history,
    "reset": cmd_reset,
    "compact": cmd_compact,
    "use": cmd_use,
    "panel": cmd_panel,
    "restore": cmd_restore,
    "log": cmd_log,
    "export": cmd_export,
    "sandbox": cmd_sandbox,
    "approve": cmd_approve,
    "deny": cmd_deny,
    "stop": cmd_stop,
}
