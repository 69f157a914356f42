"""``%%chat`` and ``%chat``: argument parsing and display only.

Everything about conversations lives in :mod:`chatmagic.session`; this module turns
a cell into a turn, streams the turn into one display handle of the cell, and prints
errors as one line.
"""

from __future__ import annotations

import hashlib
import html
import shlex
from typing import Any

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display
from traitlets import Bool, Dict, Float, Int, Unicode, observe

from ._state import get_session
from .errors import ChatMagicError, TurnStopped
from .render import FORMATS, UpdatePacer, reply_bundle, seconds
from .session import DEFAULT_CONVERSATION, Turn, TurnOptions

SUBCOMMANDS = {
    "providers": "list providers with their models and flags",
    "conversations": "list the conversations of this kernel",
    "history [NAME]": "show a conversation (default: the default one)",
    "reset [NAME]": "forget a conversation's history",
    "use PROVIDER [MODEL]": "set the default provider (and model)",
    "panel [NAME]": "open the chat panel on a conversation",
    "restore [NOTEBOOK]": "rebuild the conversations saved in a notebook (after a restart)",
    "export NAME [PATH]": "write a conversation as Markdown, or JSON when PATH ends in .json",
    "sandbox [start|stop]": "start the local stand-in of the chat sites and point the providers at it",
    "sandbox fault SITE FAULT [N]": "make the stand-in fail the next N requests to SITE (try errors, fallbacks)",
    "help": "this list",
}


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

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        # set before the traits: loading %config values fires the observer below
        self.session = get_session()
        self._cell_id: str | None = None
        super().__init__(shell=shell, **kwargs)
        self._sync_session()

    # -- configuration -------------------------------------------------------------

    @observe("default_provider", "default_model", "system_prompt", "timeout", "proxy", "base_urls", "retries")
    def _on_config(self, change: Any) -> None:
        self._sync_session()

    def _sync_session(self) -> None:
        s = self.session
        s.default_provider = self.default_provider or "chatgptt"
        s.default_model = self.default_model or None
        s.default_system = self.system_prompt or None
        s.default_timeout = self.timeout or None
        s.default_proxy = self.proxy or None
        s.base_urls.update({k.lower(): v for k, v in self.base_urls.items()})
        s.retries = max(0, self.retries)

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
        session = self.session
        name = args.conversation
        if args.timeout is not None and args.timeout <= 0:
            raise UsageError("--timeout must be a positive number of seconds.")
        conv = session.conversation(name)
        options = TurnOptions(
            provider=args.provider,
            model=args.model,
            system=args.system,
            proxy=args.proxy,
            base_url=args.base_url,
            timeout=args.timeout,
        )
        text, expansion = cell, None
        if args.interpolate or (self.interpolate and not args.no_interpolate):
            from .interpolate import interpolate

            expansion = interpolate(cell, self._user_ns(), self.interpolate_max_chars)
            text = expansion.text
        key = self._exchange_key(conv, cell, claim=not args.dry_run)
        turn = session.prepare(text, conversation=name, options=options, key=key, fresh=args.new)
        if args.dry_run:
            _show_dry_run(turn, expansion)
            return
        if args.new:  # only now: a cell that cannot be sent does not lose the history
            session.new_conversation(name)
        # what a cell chose stays with the conversation for the next cells
        with conv.lock:
            if args.provider:
                chain = ",".join(turn.chain)
                if conv.provider != chain:
                    conv.model = None
                conv.provider = chain
            if args.model:
                conv.model = turn.model
            if args.system is not None:
                conv.system = args.system or None
        session.start(turn)
        self._show(turn, args.format or self.format)

    def _exchange_key(self, conv: Any, cell: str, claim: bool = True) -> str:
        """The cell id; without one, the text: a re-run of the last exchange replaces it."""
        if self._cell_id:
            return f"cell:{self._cell_id}"
        key = "text:" + hashlib.sha1(cell.encode()).hexdigest()[:16]
        if not claim:
            return key
        with conv.lock:
            for ex in conv.exchanges[:-1]:
                if ex.key == key:
                    ex.key = None  # an older identical message is no longer "this cell"
        return key

    def _show(self, turn: Turn, fmt: str) -> None:
        """Stream the turn into one display handle, paced (see render.UpdatePacer)."""
        pacer = UpdatePacer()
        handle = display(reply_bundle("", fmt, f"{_head(turn)} · waiting…"), raw=True, display_id=True)
        interrupted = False
        try:
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
        except KeyboardInterrupt:
            interrupted = True
            turn.stop()
            turn.wait(10)
        metadata: dict[str, Any] = {}
        if turn.exchange is not None:
            from .record import exchange_metadata

            # the exchange is saved with the notebook: %chat restore rebuilds it after a restart
            metadata = exchange_metadata(turn.conversation, turn.exchange)
        handle.update(self._final_bundle(turn, fmt, _head(turn)), raw=True, metadata=metadata)
        if turn.state == "failed" and turn.error is not None:
            raise turn.error
        if turn.state == "stopped" and interrupted:
            raise TurnStopped(
                "Stopped by the user. The text so far is kept"
                + (", marked as stopped, in the conversation." if turn.text else "; nothing was added.")
            )

    @staticmethod
    def _final_bundle(turn: Turn, fmt: str, head: str) -> dict[str, str]:
        timing = f"first text {seconds(turn.first_text_s)} · total {seconds(turn.total_s)}"
        if turn.state == "done":
            return reply_bundle(turn.text, fmt, f"{head} · {timing}")
        if turn.state == "stopped":
            return reply_bundle(
                turn.text, fmt, f"{head} · ■ stopped · {timing}", status_class="chatmagic-stopped"
            )
        return reply_bundle(
            turn.text,
            fmt,
            f"{head} · failed (nothing was added to the conversation)",
            status_class="chatmagic-error",
        )

    # -- %chat ---------------------------------------------------------------------

    @line_magic("chat")  # type: ignore[arg-type]
    def chat_line(self, line: str) -> Any:
        """Manage conversations and providers: ``%chat help`` lists the commands."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"%chat: {exc}") from None
        if not words:
            words = ["help"]
        command, rest = words[0].lower(), words[1:]
        handler = getattr(self, f"_cmd_{command}", None)
        if handler is None:
            raise UsageError(
                f"%chat has no command {command!r}. Commands: "
                + ", ".join(c.split()[0] for c in SUBCOMMANDS)
                + ". To send a message, use a %%chat cell."
            )
        return handler(rest)

    def _cmd_help(self, rest: list[str]) -> None:
        width = max(map(len, SUBCOMMANDS))
        lines = [f"  %chat {c:<{width}}  {d}" for c, d in SUBCOMMANDS.items()]
        print("Commands:\n" + "\n".join(lines) + "\nSend messages with a %%chat cell; %%chat? is its manual.")

    def _cmd_providers(self, rest: list[str]) -> None:
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

    def _cmd_conversations(self, rest: list[str]) -> None:
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

    def _cmd_history(self, rest: list[str]) -> None:
        from .render import markdown_html

        name = rest[0] if rest else DEFAULT_CONVERSATION
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

    def _cmd_reset(self, rest: list[str]) -> None:
        name = rest[0] if rest else DEFAULT_CONVERSATION
        conv = self.session.conversations.get(name)
        if conv is None:
            print(f"There is no conversation {name!r}.")
            return
        conv.reset()
        print(f"Conversation {name!r} reset.")

    def _cmd_use(self, rest: list[str]) -> None:
        from .providers import get_provider

        if not rest or len(rest) > 2:
            raise UsageError("Usage: %chat use PROVIDER [MODEL]")
        try:
            cls = get_provider(rest[0])
            model = cls.get_model(rest[1] if len(rest) > 1 else None)
        except ChatMagicError as exc:
            raise UsageError(str(exc)) from None
        self.default_provider = cls.name
        self.default_model = model if len(rest) > 1 else ""
        print(f"Default provider: {cls.name}, model {model}.")

    def _cmd_restore(self, rest: list[str]) -> None:
        from .record import current_notebook, restore

        path = rest[0] if rest else current_notebook(self._user_ns())
        if path is None:
            raise UsageError(
                "Which notebook? This frontend does not say: %chat restore path/to/notebook.ipynb "
                "(save the notebook first)."
            )
        try:
            counts = restore(self.session, path)
        except ChatMagicError as exc:
            raise UsageError(str(exc)) from None
        if not counts:
            print(f"No chatmagic exchanges are saved in {path}: run %%chat cells and save the notebook.")
            return
        summary = ", ".join(f"{name}: {n} exchange{'s' if n != 1 else ''}" for name, n in counts.items())
        print(f"Restored from {path}: {summary}.")

    def _cmd_export(self, rest: list[str]) -> None:
        from .record import export

        if not rest or len(rest) > 2:
            raise UsageError("Usage: %chat export NAME [PATH]   (PATH ending in .json writes JSON)")
        conv = self.session.conversations.get(rest[0])
        if conv is None or not len(conv):
            raise UsageError(f"The conversation {rest[0]!r} is empty: nothing to export.")
        target = export(conv, rest[1] if len(rest) > 1 else f"chat-{conv.name}.md")
        print(f"Wrote {len(conv)} exchanges of {conv.name!r} to {target}.")

    def _cmd_panel(self, rest: list[str]) -> Any:
        from .panel import ChatPanel

        name = rest[0] if rest else DEFAULT_CONVERSATION
        return ChatPanel(conversation=name, session=self.session)

    def _cmd_sandbox(self, rest: list[str]) -> None:
        from ._state import start_sandbox, stop_sandbox

        action = rest[0] if rest else "start"
        if action == "stop":
            stop_sandbox(self.session)
            print("The local stand-in is stopped; providers use their real sites again.")
            return
        if action == "fault":
            self._sandbox_fault(rest[1:])
            return
        if action != "start":
            raise UsageError("Usage: %chat sandbox [start|stop|fault SITE FAULT [TIMES]]")
        url = start_sandbox(self.session)
        print(f"Local stand-in of the chat sites at {url}; every provider now talks to it.")

    def _sandbox_fault(self, rest: list[str]) -> None:
        """Make the stand-in fail the next requests to one site (to try fallbacks, errors)."""
        from . import _state

        sandbox = _state.running_sandbox()
        if sandbox is None:
            raise UsageError("The stand-in is not running: %chat sandbox start")
        if len(rest) not in (2, 3) or (len(rest) == 3 and not rest[2].isdigit()):
            raise UsageError("Usage: %chat sandbox fault SITE FAULT[,FAULT] [TIMES]  (see docs/sandbox.md)")
        times = int(rest[2]) if len(rest) == 3 else 1
        try:
            sandbox.inject(rest[0], *rest[1].split(","), times=times)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        print(f"The stand-in's {rest[0]} will answer the next {times} chat request(s) with: {rest[1]}.")


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
    if turn.failures:
        failed = ", ".join(f"{name} failed" for name, _ in turn.failures)
        head += f" (after {failed})" if turn.state != "failed" else ""
    return head


def _parse(magic: Any, line: str) -> Any:
    """Parse magic arguments with shell quoting (``-s "two words"`` loses its quotes)."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{exc} in: {line}") from None
    return magic.parser.parse_args(argv)


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
