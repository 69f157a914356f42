"""``%%chat`` and ``%chat``: argument parsing and display only.

Everything about conversations lives in :mod:`chatmagic.session`; this module turns
a cell into a turn, streams the turn into one display handle of the cell, and prints
errors as one line.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import html
import math
import shlex
from typing import Any, NoReturn

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display
from traitlets import Bool, Dict, Float, Int, TraitError, Unicode, observe, validate

from ._state import get_session
from .errors import ChatMagicError, ConfigurationError, TurnStopped, redact
from .options import TurnOptions, check_base_url, check_proxy, parse_chain
from .render import FORMATS, UpdatePacer, reply_bundle, seconds
from .session import DEFAULT_CONVERSATION, DEFAULT_MAX_HISTORY_CHARS, TEXT_KEY_PREFIX, Turn

FIX_REQUEST = (
    "Explain briefly what caused this error, then give the corrected code in one Python code block, "
    "changing only what the fix needs."
)


@magics_class
class ChatMagics(Magics):
    """Chat with web chat models from cells. Configure with ``%config ChatMagics.<trait>``."""

    default_provider = Unicode("chatgptt", help="Provider used when a cell names none.").tag(config=True)
    default_model = Unicode("", help="Model used with the default provider ('' = its default).").tag(
        config=True
    )
    system_prompt = Unicode("", help="System prompt of new conversations.").tag(config=True)
    timeout = Float(120.0, help="Seconds to wait for a connection or the next bytes.").tag(config=True)
    proxy = Unicode("", help="Proxy URL for every request, e.g. http://user:pass@host:3128.").tag(config=True)
    base_urls = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="Provider name -> base URL replacing the site's address (mirrors, self-hosted sites).",
    ).tag(config=True)
    format = Unicode("markdown", help="Default display format: markdown, text or code.").tag(config=True)
    interpolate = Bool(False, help="Expand {name} references in every %%chat cell (as --interpolate).").tag(
        config=True
    )
    interpolate_max_chars = Int(
        2000, help="Longest value put into a message by interpolation; longer ones are shortened."
    ).tag(config=True)
    retries = Int(
        2, help="Retries of a provider (rate limit, server error, network) before the next one."
    ).tag(config=True)
    context = Unicode(
        "", help="Notebook context added to every %%chat cell, as --context (e.g. 'error,cells:1')."
    ).tag(config=True)
    max_history_chars = Int(
        DEFAULT_MAX_HISTORY_CHARS,
        help="Earlier history sent with a message, in characters: the newest exchanges that fit, whole "
        "(0 = all). The conversation itself keeps everything.",
    ).tag(config=True)
    redact_secrets = Bool(
        True,
        help="Replace the values of secret-looking environment variables (KEY, TOKEN, SECRET, PASSWORD, "
        "...) and of provider keys with [redacted NAME] in everything sent.",
    ).tag(config=True)
    replay = Bool(
        False,
        help="Show a cell's saved reply again, sending nothing, when the cell would send exactly what it "
        "sent then (after %chat restore: Restart & Run All without the network).",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        # set before the traits: loading %config values fires the observer below
        self.session = get_session()
        self._cell_id: str | None = None
        super().__init__(shell=shell, **kwargs)
        self._sync_session()

    # -- configuration -------------------------------------------------------------

    @observe(
        "default_provider",
        "default_model",
        "system_prompt",
        "timeout",
        "proxy",
        "base_urls",
        "retries",
        "max_history_chars",
        "redact_secrets",
        "replay",
    )
    def _on_config(self, change: Any) -> None:
        self._sync_session()

    def _sync_session(self) -> None:
        """The session's settings are exactly the traits' (a removed entry is removed)."""
        s = self.session
        s.default_provider = self.default_provider or "chatgptt"
        s.default_model = self.default_model or None
        s.default_system = self.system_prompt or None
        s.default_timeout = self.timeout or None
        s.default_proxy = self.proxy or None
        s.base_urls = {k.strip().lower(): v for k, v in self.base_urls.items()}
        s.retries = max(0, self.retries)
        s.max_history_chars = max(0, self.max_history_chars)
        s.redact_secrets = self.redact_secrets
        s.replay = self.replay

    # each check raises a TraitError, which %config prints as one line, keeping the old value

    @validate("default_provider")
    def _valid_provider(self, proposal: Any) -> str:
        return _trait_check(lambda v: ",".join(parse_chain(v)) if v else v, proposal.value)

    @validate("context")
    def _valid_context(self, proposal: Any) -> str:
        from .context import parse_spec

        _trait_check(parse_spec, proposal.value)
        return str(proposal.value)

    @validate("timeout")
    def _valid_timeout(self, proposal: Any) -> float:
        value = proposal.value
        if not math.isfinite(value) or value < 0:
            raise TraitError(
                f"ChatMagics.timeout must be a number of seconds, 0 for no limit (got {value!r})."
            )
        return float(value)

    @validate("proxy")
    def _valid_proxy(self, proposal: Any) -> str:
        return _trait_check(check_proxy, proposal.value) or ""

    @validate("base_urls")
    def _valid_base_urls(self, proposal: Any) -> dict[str, str]:
        for url in proposal.value.values():
            _trait_check(check_base_url, url)
        return dict(proposal.value)

    def _user_ns(self) -> dict[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    def pre_run_cell(self, info: Any) -> None:
        # JupyterLab sends the cell's id with each execution; IPython passes it here
        self._cell_id = getattr(info, "cell_id", None)

    # -- %%chat --------------------------------------------------------------------

    @magic_arguments.magic_arguments(name="%chat")
    @magic_arguments.argument(
        "-p",
        "--provider",
        help="Provider to answer, e.g. chatgptt (see %%chat providers). "
        "It becomes the conversation's provider for the next cells.",
    )
    @magic_arguments.argument(
        "-m", "--model", help="Model of that provider; leave it out for the provider's default."
    )
    @magic_arguments.argument(
        "-s", "--system", help="System prompt; it stays with the conversation until changed."
    )
    @magic_arguments.argument(
        "-c",
        "--conversation",
        default=DEFAULT_CONVERSATION,
        help="Name of the conversation to continue (default: 'default').",
    )
    @magic_arguments.argument(
        "--new", action="store_true", help="Start the named conversation afresh before this message."
    )
    @magic_arguments.argument("--proxy", help="Proxy URL for this message, e.g. http://host:3128.")
    @magic_arguments.argument(
        "--timeout",
        type=float,
        help="Seconds to wait for a connection or for the next bytes (not for the whole reply).",
    )
    @magic_arguments.argument(
        "--base-url", help="Address replacing the provider's site (a mirror, or the local stand-in)."
    )
    @magic_arguments.argument(
        "-f", "--format", choices=FORMATS, help="Show the reply as markdown (default), text or code."
    )
    @magic_arguments.argument(
        "-i",
        "--interpolate",
        action="store_true",
        help="Expand {name}, {obj.attr}, {Out[3]} from your variables; other braces stay as written.",
    )
    @magic_arguments.argument(
        "--no-interpolate",
        action="store_true",
        help="Send the cell exactly as written even when interpolation is on by default.",
    )
    @magic_arguments.argument(
        "-e",
        "--error",
        action="store_true",
        help="Attach the last error: its type and message, your frames of the traceback and the cell "
        "that raised (as --context error).",
    )
    @magic_arguments.argument(
        "--context",
        metavar="SPEC",
        help="Attach notebook context, items separated by commas: error (the last error), cells:N "
        "(the last N cells with their results), vars (your variables: names, types, shapes). Each "
        "item has a size budget; cuts are marked.",
    )
    @magic_arguments.argument(
        "--dry-run",
        action="store_true",
        help="Show the exact messages that would be sent, and send nothing.",
    )
    @cell_magic
    def chat(self, line: str, cell: str) -> None:
        """Send the cell to a chat model and stream the reply into the cell.

        The cell body is the message. The conversation goes on across cells: the
        next ``%%chat`` cell continues it. Re-running a cell redoes that cell's
        exchange instead of adding a new one. Ctrl-C (interrupt the kernel) stops a
        reply at once; the text so far stays, marked as stopped.

        Examples
        --------
        ::

            In [1]: %load_ext chatmagic

            In [2]: %%chat --provider chatgptt
               ...: Explain this traceback in two sentences.

            In [3]: %%chat
               ...: Now as a haiku.

            In [4]: %%chat -c review --new -s "You are a strict code reviewer."
               ...: def add(a, b): return a - b

            In [5]: %chat history review

            In [6]: %config ChatMagics.default_provider = "chatgptes,opchatgpts"  # a fallback chain

            In [7]: %%chat --interpolate --dry-run
               ...: Summarise {df.shape} rows; keep {"json": "as is"}.

        See ``%chat help`` for the line commands (providers, history, reset, panel, ...).
        """
        args = _parse(self.chat, line)
        # the cell's trailing newline and blank lines around it are not part of the message
        self._chat(args, cell.strip("\n").rstrip())

    def _chat(self, args: Any, cell: str) -> None:
        try:
            options = TurnOptions(
                provider=args.provider,
                model=args.model,
                system=args.system,
                proxy=args.proxy,
                base_url=args.base_url,
                timeout=args.timeout,
            )
            spec = ",".join(filter(None, [self.context, args.context, "error" if args.error else ""]))
            items = _context_items(spec)
        except ConfigurationError as exc:
            raise UsageError(str(exc)) from None
        text, expansion = cell, None
        if args.interpolate or (self.interpolate and not args.no_interpolate):
            from .interpolate import interpolate

            expansion = interpolate(cell, self._user_ns(), self.interpolate_max_chars)
            text = expansion.text
        notes: list[str] = []
        if items:
            context = self._gather(items)
            if not context and args.error:
                raise UsageError("There is no error to attach yet: run the cell that fails first.")
            text = context.attach(text)
            if context:
                notes.append(f"with {', '.join(context.titles).lower()}")
        self._send(text, args, options, key=self._exchange_key(cell), expansion=expansion, notes=notes)

    def _send(
        self, text: str, args: Any, options: TurnOptions, *, key: str, expansion: Any = None, notes: list[str]
    ) -> None:
        """Prepare, then show the dry run or run the turn: the one path of %%chat and %chat fix."""
        turn = self.session.prepare(
            text, conversation=args.conversation, options=options, key=key, fresh=args.new
        )
        turn.notes += notes
        if turn.redacted:
            turn.notes.append(f"redacted {', '.join(turn.redacted)}")
        if turn.history_sent < turn.history_total:
            turn.notes.append(f"sent {turn.history_sent} of {turn.history_total} earlier exchanges")
        if args.dry_run:
            _show_dry_run(turn, expansion)
            return
        fmt = args.format or self.format
        if fmt == "code":  # shown as Markdown; its code goes into a new cell below
            turn.code_to_cell = True
            self._run(turn, "markdown")
            self._code_to_cell(turn)
        else:
            self._run(turn, fmt)

    def _code_to_cell(self, turn: Turn) -> None:
        from .code import code_blocks

        blocks = code_blocks(turn.text) if turn.state == "done" else []
        if blocks and self.shell is not None:
            # JupyterLab and Notebook 7 insert it as a new cell below; the terminal pre-fills the prompt
            self.shell.set_next_input("\n\n".join(blocks), replace=False)

    def _cmd_fix(self, args: Any) -> None:
        from .context import Context, error_context, last_error

        error = error_context(last_error())
        if error is None:
            raise UsageError("There is no error yet: %chat fix explains the last exception a cell raised.")
        try:
            options = TurnOptions(provider=args.provider, model=args.model)
        except ConfigurationError as exc:
            raise UsageError(str(exc)) from None
        context = Context()
        context.add("Error", error)
        text = context.attach(FIX_REQUEST)
        args.new, args.dry_run, args.format = False, False, None
        self._send(text, args, options, key=self._exchange_key(text), notes=["with the last error"])

    def _gather(self, items: list[Any]) -> Any:
        """The notebook context the items ask for (see chatmagic.context)."""
        from . import context as ctx

        found = ctx.Context()
        ns = self._user_ns()
        for item in items:
            if item.kind == "error":
                text = ctx.error_context(ctx.last_error())
                found.add("Error", text or "")
            elif item.kind == "cells":
                text = ctx.cells_context(ns.get("In") or [], ns.get("Out") or {}, item.count)
                found.add(f"Last {item.count} cell{'s' if item.count > 1 else ''}", text or "")
            elif item.kind == "vars":
                found.add("Variables", ctx.vars_context(ns) or "")
        return found

    def _exchange_key(self, cell: str) -> str:
        """The cell id; without one, the text (a re-run of the last exchange replaces it)."""
        if self._cell_id:
            return f"cell:{self._cell_id}"
        return TEXT_KEY_PREFIX + hashlib.sha1(cell.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    def _run(self, turn: Turn, fmt: str) -> None:
        """Start the turn and stream it into one display handle, paced (render.UpdatePacer).

        Ctrl-C at any moment once the turn exists, even before it has started or before
        its display exists, stops it: the user sees the one-line "Stopped" message and
        the reply never joins the history behind their back.
        """
        handle: Any = None
        interrupted = False
        try:
            self.session.start(turn)
            handle = display(reply_bundle("", fmt, f"{_head(turn)} · waiting…"), raw=True, display_id=True)
            self._stream(turn, fmt, handle)
        except KeyboardInterrupt:
            interrupted = True
            turn.stop()
            turn.wait(10)
        metadata: dict[str, Any] = {}
        if turn.exchange is not None:
            from .record import exchange_metadata

            # the exchange is saved with the notebook: %chat restore rebuilds it after a restart
            metadata = exchange_metadata(turn.conversation, turn.exchange)
        final = self._final_bundle(turn, fmt, _head(turn))
        if handle is None:
            display(final, raw=True, metadata=metadata)
        else:
            handle.update(final, raw=True, metadata=metadata)
        if turn.state == "failed" and turn.error is not None:
            raise turn.error
        if turn.state == "stopped" and interrupted:
            raise TurnStopped(
                "Stopped by the user. "
                + (
                    "The text so far is kept in the conversation, marked as stopped."
                    if turn.exchange is not None
                    else "Nothing was added to the conversation."
                )
            )

    @staticmethod
    def _stream(turn: Turn, fmt: str, handle: Any) -> None:
        pacer = UpdatePacer()
        version = 0
        while not turn.done:
            version = turn.wait_change(version, pacer.wait_time())
            if turn.done:
                break
            size = turn.size
            if pacer.due(size):
                handle.update(reply_bundle(turn.text, fmt, f"{_head(turn)} · streaming…"), raw=True)
                pacer.sent(size)
            else:
                # let chunks pile up until an update can be due
                turn.wait(pacer.wait_time())

    @staticmethod
    def _final_bundle(turn: Turn, fmt: str, head: str) -> dict[str, str]:
        timing = f"first text {seconds(turn.first_text_s)} · total {seconds(turn.total_s)}"
        if turn.state == "done":
            return reply_bundle(turn.text, fmt, f"{head} · {timing}")
        if turn.state == "stopped":
            return reply_bundle(
                turn.text, fmt, f"{head} · ■ stopped · {timing}", status_class="chatmagic-stopped"
            )
        kept = "the text above was not added to the conversation" if turn.text else "nothing was added"
        return reply_bundle(turn.text, fmt, f"{head} · failed · {kept}", status_class="chatmagic-error")

    # -- %chat ---------------------------------------------------------------------

    @line_magic("chat")  # type: ignore[arg-type]
    def chat_line(self, line: str) -> Any:
        """Manage conversations and providers: ``%chat help`` lists the commands."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%chat: {exc} in: {redact(line)}") from None
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
        return getattr(self, f"_cmd_{args.command}")(args)

    def _cmd_help(self, args: Any) -> None:
        print(_help_text(_line_parser()))

    def _cmd_providers(self, args: Any) -> None:
        from .providers import list_providers

        rows = list_providers()
        head = ["provider", "default model", "models", "stream", "system", "history"]
        table = []
        for r in rows:
            if "error" in r:
                table.append([r["name"], "(cannot load)", r["error"], "", "", ""])
                continue
            models = ", ".join(r["models"] + [f"{a}→{t}" for a, t in r["aliases"].items()])
            flags = ["yes" if r[k] else "no" for k in ("stream", "system", "history")]
            table.append([r["name"], r["default_model"], models, *flags])
        _show_table(head, table)

    def _cmd_conversations(self, args: Any) -> None:
        head = ["conversation", "exchanges", "provider", "model", "system prompt"]
        table = [
            [
                c.name,
                str(len(c)),
                c.provider or f"({self.session.default_provider})",
                c.model or "(default)",
                (c.system or "")[:40],
            ]
            for c in self.session
        ]
        if not table:
            print("No conversations yet: a %%chat cell starts one.")
            return
        _show_table(head, table)

    def _cmd_history(self, args: Any) -> None:
        from .render import markdown_html

        name = args.name
        conv = self.session.conversations.get(name)
        if conv is None or not len(conv):
            print(f"The conversation {name!r} is empty.")
            return
        html_parts, plain = [], []
        if conv.system:
            html_parts.append(f"<p><b>system</b>: {html.escape(conv.system)}</p>")
            plain.append(f"system: {conv.system}")
        for ex in conv.exchanges:
            mark = " (stopped)" if ex.stopped else ""
            html_parts.append(f"<p><b>user</b></p>{markdown_html(ex.user.content)}")
            html_parts.append(
                f"<p><b>assistant</b> <small>{html.escape(ex.provider)} · {html.escape(ex.model)}"
                f"{mark}</small></p>{markdown_html(ex.assistant.content)}"
            )
            plain += [f"user: {ex.user.content}", f"assistant{mark}: {ex.assistant.content}"]
        display({"text/html": "".join(html_parts), "text/plain": "\n\n".join(plain)}, raw=True)

    def _cmd_reset(self, args: Any) -> None:
        name = args.name
        conv = self.session.conversations.get(name)
        if conv is None:
            print(f"There is no conversation {name!r}.")
            return
        conv.reset()
        print(f"Conversation {name!r} reset.")

    def _cmd_use(self, args: Any) -> None:
        from .providers import get_provider

        try:
            cls = get_provider(args.provider)
            model = cls.get_model(args.model)
        except ChatMagicError as exc:
            raise UsageError(str(exc)) from None
        self.default_provider = cls.name
        self.default_model = model if args.model else ""
        print(f"Default provider: {cls.name}, model {model}.")

    def _cmd_restore(self, args: Any) -> None:
        from .record import current_notebook, restore

        path = args.notebook or current_notebook(self._user_ns())
        if path is None:
            raise UsageError(
                "Which notebook? This frontend does not say: %chat restore path/to/notebook.ipynb "
                "(save the notebook first)."
            )
        report = restore(self.session, path)
        print(report.summary())

    def _cmd_export(self, args: Any) -> None:
        from .record import export

        conv = self.session.conversations.get(args.name)
        if conv is None or not len(conv):
            raise UsageError(f"The conversation {args.name!r} is empty: nothing to export.")
        target = export(conv, args.path or f"chat-{conv.name}.md")
        print(f"Wrote {len(conv)} exchanges of {conv.name!r} to {target}.")

    def _cmd_panel(self, args: Any) -> Any:
        from .panel import ChatPanel

        return ChatPanel(conversation=args.name, session=self.session)

    def _cmd_sandbox(self, args: Any) -> None:
        from . import _state

        if args.action == "stop":
            _state.stop_sandbox(self.session)
            print("The local stand-in is stopped; providers use their configured addresses again.")
        elif args.action == "fault":
            sandbox = _state.running_sandbox()
            if sandbox is None:
                raise UsageError("The stand-in is not running: %chat sandbox start")
            try:
                sandbox.inject(args.site, *args.fault.split(","), times=args.times)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            print(
                f"The stand-in's {args.site} will answer the next {args.times} chat request(s) with: {args.fault}."
            )
        else:
            url = _state.start_sandbox(self.session)
            print(f"Local stand-in of the chat sites at {url}; every provider now talks to it.")


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
    fix = command("fix", "explain the last error and propose a fix; the reply streams here")
    fix.add_argument("-c", "--conversation", metavar="NAME", default=DEFAULT_CONVERSATION)
    fix.add_argument("-p", "--provider", metavar="PROVIDER")
    fix.add_argument("-m", "--model", metavar="MODEL")
    command("conversations", "list the conversations of this kernel")
    command("history", "show a conversation").add_argument(
        "name", metavar="NAME", nargs="?", default=DEFAULT_CONVERSATION
    )
    command("reset", "forget a conversation's history").add_argument(
        "name", metavar="NAME", nargs="?", default=DEFAULT_CONVERSATION
    )
    use = command("use", "set the default provider (and model)")
    use.add_argument("provider", metavar="PROVIDER")
    use.add_argument("model", metavar="MODEL", nargs="?")
    command("panel", "open the chat panel on a conversation").add_argument(
        "name", metavar="NAME", nargs="?", default=DEFAULT_CONVERSATION
    )
    command(
        "restore", "rebuild the conversations saved in a notebook, merged with this kernel's"
    ).add_argument("notebook", metavar="NOTEBOOK", nargs="?")
    export = command("export", "write a conversation as Markdown, or JSON when PATH ends in .json")
    export.add_argument("name", metavar="NAME")
    export.add_argument("path", metavar="PATH", nargs="?")
    sandbox = command("sandbox", "the local stand-in of the chat sites: start (default), stop, fault")
    actions = sandbox.add_subparsers(dest="action", metavar="ACTION", parser_class=_CommandParser)
    actions.add_parser("start", help="start it and point every provider at it", add_help=False)
    actions.add_parser("stop", help="stop it; providers use their configured addresses again", add_help=False)
    fault = actions.add_parser("fault", help="make it fail the next TIMES requests to SITE", add_help=False)
    fault.add_argument("site", metavar="SITE")
    fault.add_argument("fault", metavar="FAULT[,FAULT]")
    fault.add_argument("times", metavar="TIMES", nargs="?", type=_positive_int, default=1)
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


def _show_dry_run(turn: Turn, expansion: Any) -> None:
    """The messages exactly as they would be sent, and nothing sent."""
    chain = " → ".join(f"{p} ({turn.models.get(p, '')})" for p in turn.chain)
    notes = [f"dry run: nothing was sent. Provider: {chain}."]
    if expansion is not None:
        notes.append(
            f"Interpolated: {', '.join(expansion.replaced) or 'nothing'}"
            + (f"; shortened: {', '.join(expansion.shortened)}" if expansion.shortened else "")
            + "."
        )
    plain = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in turn.messages)
    rows = "".join(
        f"<tr><td><b>{html.escape(m['role'])}</b></td>"
        f"<td><pre style='white-space:pre-wrap;margin:0'>{html.escape(m['content'])}</pre></td></tr>"
        for m in turn.messages
    )
    display(
        {
            "text/html": f"<table>{rows}</table><div class='chatmagic-status'>{html.escape(' '.join(notes))}</div>",
            "text/plain": plain + "\n\n— " + " ".join(notes),
        },
        raw=True,
    )


def _head(turn: Turn) -> str:
    """Who answers: provider and model, and which providers of a chain failed first."""
    head = f"{turn.provider} · {turn.model}"
    notes = [] if turn.state == "failed" else [f"{name} failed" for name, _ in turn.failures]
    if turn.retries:
        notes.append(f"{turn.retries} {'retry' if turn.retries == 1 else 'retries'}")
    head += f" (after {', '.join(notes)})" if notes else ""
    extra = list(turn.notes)
    if turn.replayed:
        extra.insert(0, "replayed: nothing was sent")
    if turn.code_to_cell and turn.state == "done":
        from .code import code_blocks

        extra.append(
            "code put in a new cell below" if code_blocks(turn.text) else "no code block to put in a cell"
        )
    return " · ".join([head, *extra])


def _parse(magic: Any, line: str) -> Any:
    """Parse magic arguments with shell quoting (``-s "two words"`` loses its quotes)."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{exc} in: {redact(line)}") from None
    try:
        return magic.parser.parse_args(argv)
    except UsageError as exc:  # argparse quotes what it could not read: a proxy password too
        raise UsageError(redact(str(exc))) from None


def _context_items(spec: str) -> list[Any]:
    if not spec:
        return []
    from .context import parse_spec

    return list(dict.fromkeys(parse_spec(spec)))  # an item named twice is added once


def _trait_check(check: Any, value: Any) -> Any:
    try:
        return check(value)
    except ConfigurationError as exc:
        raise TraitError(str(exc)) from None


def _show_table(head: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=False)]
    plain = "\n".join(
        "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)).rstrip() for r in [head, *rows]
    )
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in r) + "</tr>" for r in rows)
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    display(
        {
            "text/html": f"<table><thead><tr>{th}</tr></thead><tbody>{cells}</tbody></table>",
            "text/plain": plain,
        },
        raw=True,
    )
