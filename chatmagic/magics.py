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
import json
import math
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import display
from traitlets import Bool, Dict, Float, Int, TraitError, Unicode, observe, validate

from . import present
from ._cellstream import SHEET, ReplyStream
from ._defaults import DEFAULT_CONVERSATION, DEFAULT_MAX_HISTORY_CHARS, TEXT_KEY_PREFIX
from ._lasterror import LastError
from ._secrets import scrub
from ._terminal import TerminalReply, is_terminal
from .code import INSERTED, code_of
from .errors import ChatMagicError, ConfigurationError, TurnStopped, redact
from .interpolate import interpolate
from .options import (
    DEFAULT_PROVIDER,
    DEFAULT_TIMEOUT,
    TurnOptions,
    attachment_from,
    check_base_url,
    check_params,
    check_proxy,
    parse_chain,
    parse_option,
)
from .present import (
    FALLBACK_STYLE,
    HISTORY_LAST,
    history_bundle,
    outcome,
    status_html,
    table_bundle,
    table_html,
)
from .printed import PrintedOutput
from .render import FORMATS
from .summaries import Deadline, could_not_read

#: the conversation a %chat fix without -c starts afresh
FIX_CONVERSATION = "fix"
if TYPE_CHECKING:
    from ._replyview import ReplyView
    from .session import ChatSession, Turn

FIX_REQUEST = (
    "Explain briefly what caused this error, then give the corrected code in one Python code block, "
    "changing only what the fix needs."
)


@magics_class
class ChatMagics(Magics):
    """Chat with web chat models from cells. Configure with ``%config ChatMagics.<trait>``."""

    default_provider = Unicode(DEFAULT_PROVIDER, help="Provider used when a cell names none.").tag(
        config=True
    )
    default_model = Unicode("", help="Model used with the default provider ('' = its default).").tag(
        config=True
    )
    system_prompt = Unicode("", help="System prompt of new conversations.").tag(config=True)
    timeout = Float(DEFAULT_TIMEOUT, help="Seconds to wait for a connection or the next bytes.").tag(
        config=True
    )
    proxy = Unicode("", help="Proxy URL for every request, e.g. http://user:pass@host:3128.").tag(config=True)
    base_urls = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="Provider name -> base URL replacing the site's address (mirrors, self-hosted sites).",
    ).tag(config=True)
    options = Dict(
        key_trait=Unicode(),
        help="Request parameters sent with every message to providers that take them (OpenAI-compatible "
        "servers), e.g. {'temperature': 0.2, 'max_tokens': 500}; -o KEY=VALUE adds or overrides one per cell.",
    ).tag(config=True)
    endpoints = Dict(
        key_trait=Unicode(),
        value_trait=Dict(),
        help="Your own OpenAI-compatible servers, each a provider name: {'work': {'base_url': "
        "'https://llm.example.com/v1', 'key_env': 'WORK_KEY'}} (key_env: the environment variable "
        "holding its API key; optional: label, default_model, models).",
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
        "...) and of provider keys with [redacted NAME], and secrets of known shapes (private keys, AWS, "
        "GitHub, Slack, sk- keys) with [redacted ...], in everything sent and kept.",
    ).tag(config=True)
    log_path = Unicode(
        None,
        allow_none=True,
        help="SQLite log of every completed exchange, from cells and panels (%chat log, %chat restore): "
        "None for <Jupyter data dir>/chatmagic/exchanges.sqlite3, '' to keep no log.",
    ).tag(config=True)
    replay = Bool(
        False,
        help="Show a cell's saved reply again, sending nothing, when the cell would send exactly what it "
        "sent then (after %chat restore: Restart & Run All without the network).",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        # the kernel's session is made (or found) at first use, not at load: see `session`
        self._session: ChatSession | None = None
        self._cell_id: str | None = None
        #: what the last cells printed, for --context cells:N (filled by the two hooks below)
        self.printed = PrintedOutput(quiet=self._not_printing)
        #: the user's last error, for %chat fix and -e (chatmagic's own are not theirs)
        self.last_error = LastError()
        super().__init__(shell=shell, **kwargs)

    @property
    def session(self) -> ChatSession:
        """The kernel's session, with these settings: made at the first cell, command or panel.

        Loading stays quick (the session pulls in asyncio, the providers, the log); whoever
        makes the session first (a cell, ``ChatPanel()`` from Python) gets these settings, as
        ``chatmagic._state.get_session`` attaches the loaded magics.
        """
        if self._session is None:
            from ._state import get_session  # first use: the core and its log (load time)

            session = get_session()
            if self._session is None:  # not the loaded extension (made by hand): attach here
                self.attach(session)
        assert self._session is not None
        return self._session

    def attach(self, session: ChatSession) -> None:
        """Give ``session`` these settings and this notebook (once per session)."""
        if self._session is session:
            return
        self._session = session
        self._sync_session()
        self._note_notebook()  # panels made from Python log under this notebook too

    # -- configuration -------------------------------------------------------------

    @observe(
        "default_provider",
        "default_model",
        "system_prompt",
        "timeout",
        "proxy",
        "base_urls",
        "options",
        "endpoints",
        "retries",
        "max_history_chars",
        "redact_secrets",
        "replay",
        "log_path",
    )
    def _on_config(self, change: Any) -> None:
        if self._session is not None:  # else the session takes them when it is attached
            self._sync_session()

    def _sync_session(self) -> None:
        """The session's settings are exactly the traits' (a removed entry is removed)."""
        s = self._session
        if s is None:
            return
        s.default_provider = self.default_provider or DEFAULT_PROVIDER
        s.default_model = self.default_model or None
        s.default_system = self.system_prompt or None
        s.default_timeout = self.timeout or None
        s.default_proxy = self.proxy or None
        s.base_urls = {k.strip().lower(): v for k, v in self.base_urls.items()}
        s.default_params = dict(self.options)
        from .providers.endpoints import configure_endpoints

        configure_endpoints(self.endpoints)
        s.retries = max(0, self.retries)
        s.max_history_chars = max(0, self.max_history_chars)
        s.redact_secrets = self.redact_secrets
        s.replay = self.replay
        s.log_path = self.log_path

    def update_config(self, config: Any) -> None:
        # %config hands a refused value to logging.error ("ERROR:root:ChatMagics.timeout must
        # be ..."): say it ourselves, as one line; the trait keeps its old value. Its text
        # quotes the value (a dict holding a URL with its password): redacted
        try:
            super().update_config(config)
        except TraitError as exc:
            print(redact(str(exc)), file=sys.stderr)

    # each check raises a TraitError, which update_config prints as one line, keeping the old value

    @validate("default_provider")
    def _valid_provider(self, proposal: Any) -> str:
        def check(value: str) -> str:
            if not value:
                return value
            # the registry reads entry points (importlib.metadata): imported at %config, not load
            from .providers import check_provider_names

            names = parse_chain(value)
            # endpoints set in the same config file are checked before they are configured
            check_provider_names(names, {name.strip().lower() for name in self.endpoints})
            return ",".join(names)

        return _trait_check(check, proposal.value)

    @validate("context")
    def _valid_context(self, proposal: Any) -> str:
        from .context import parse_spec

        _trait_check(lambda spec: parse_spec(spec, "ChatMagics.context"), proposal.value)
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

    @validate("options")
    def _valid_options(self, proposal: Any) -> dict[str, Any]:
        return _trait_check(lambda v: check_params(v, "ChatMagics.options"), proposal.value)

    @validate("endpoints")
    def _valid_endpoints(self, proposal: Any) -> dict[str, Any]:
        from .providers.endpoints import check_endpoints

        return _trait_check(check_endpoints, proposal.value)

    @validate("base_urls")
    def _valid_base_urls(self, proposal: Any) -> dict[str, str]:
        # the checked URLs: their repr hides credentials when %config lists them
        return {name: _trait_check(check_base_url, url) or url for name, url in proposal.value.items()}

    @classmethod
    def class_get_trait_help(cls, trait: Any, inst: Any = None, helptext: str | None = None) -> str:
        # traitlets lists a setting's current value by its repr (%config ChatMagics): a
        # proxy's password, an endpoint's, a secret in the system prompt never show there
        return scrub(super().class_get_trait_help(trait, inst, helptext))

    def _user_ns(self) -> dict[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    def pre_run_cell(self, info: Any) -> None:
        # JupyterLab sends the cell's id with each execution; IPython passes it here
        self._cell_id = getattr(info, "cell_id", None)
        self.printed.start(info)

    def post_run_cell(self, result: Any) -> None:
        info = getattr(result, "info", None)
        kept = info is None or getattr(info, "store_history", True)  # a cell with no In[n] has no number
        self.printed.finish(info, getattr(result, "execution_count", None) if kept else None)
        self.last_error.cell_ended(result)

    def _not_printing(self) -> bool:
        """The shell itself is writing: the display hook (``Out[n]:`` in a terminal), a display
        or a traceback, which are not what the cell printed."""
        shell = self.shell
        return bool(
            getattr(getattr(shell, "displayhook", None), "is_active", False)
            or getattr(getattr(shell, "display_pub", None), "is_publishing", False)
            or getattr(shell, "showing_traceback", False)
        )

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
        "(the last N cells: their code, what they printed and their results), vars (your variables: names, types, shapes). Each "
        "item has a size budget; cuts are marked.",
    )
    @magic_arguments.argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="A request parameter for OpenAI-compatible servers, e.g. -o temperature=0.2 -o max_tokens=500 "
        "-o stop='[\"\\n\\n\"]' (the value is read as JSON when it is JSON, else as text). Repeatable; "
        "overrides ChatMagics.options.",
    )
    @magic_arguments.argument(
        "--attach",
        action="append",
        default=[],
        metavar="NAME",
        help="Send an image with the message to a vision model: a variable holding a matplotlib figure, "
        "a PIL image, PNG/JPEG bytes or a path, or Out[n]. Repeatable. Large images are downscaled "
        "(with Pillow).",
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
        with self._own_errors(" Nothing was sent."):
            args = _parse(self.chat, line)
            # the cell's trailing newline and blank lines around it are not part of the message
            self._chat(args, cell.strip("\n").rstrip())

    @contextmanager
    def _own_errors(self, stopped_note: str = "") -> Iterator[None]:
        """What leaves a %%chat or %chat is chatmagic's own error, never the user's last one;
        Ctrl-C before the turn exists (parsing, the context, prepare) is the one-line
        "Stopped" too (once it exists, _send and _run say what was kept)."""
        try:
            yield
        except KeyboardInterrupt:
            stopped = TurnStopped(f"Stopped by the user.{stopped_note}")
            self.last_error.ours(stopped)
            raise stopped from None
        except BaseException as exc:
            self.last_error.ours(exc)
            raise

    def _chat(self, args: Any, cell: str) -> None:
        try:
            options = TurnOptions(
                provider=args.provider,
                model=args.model,
                system=args.system,
                proxy=args.proxy,
                base_url=args.base_url,
                timeout=args.timeout,
                params=dict(parse_option(o) for o in args.option) or None,
                attachments=tuple(self._attachment(name) for name in args.attach),
            )
            spec = ",".join(filter(None, [self.context, args.context, "error" if args.error else ""]))
            items = _context_items(spec)
        except ConfigurationError as exc:
            raise UsageError(str(exc)) from None
        text, expansion = cell, None
        if args.interpolate or (self.interpolate and not args.no_interpolate):
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
        self._note_notebook()
        if not args.new:  # never from an empty history while the notebook holds this one's
            from .unrestored import unrestored_message  # the notebook's records: first use

            refused = unrestored_message(self.session, args.conversation, key)
            if refused is not None:
                raise UsageError(refused)
        turn = self.session.prepare(
            text, conversation=args.conversation, options=options, key=key, fresh=args.new
        )
        try:
            self._dry_run_or_run(turn, args, expansion, notes)
        except KeyboardInterrupt:
            # Ctrl-C once the turn exists but before _run took charge of it (or after it let
            # go): the one-line message, never a raw KeyboardInterrupt from deep inside
            turn.stop()
            raise _stopped(turn) from None

    def _dry_run_or_run(self, turn: Turn, args: Any, expansion: Any, notes: list[str]) -> None:
        turn.notes += notes
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
        code = code_of(turn.text) if turn.state == "done" and turn.code_to_cell else ""
        # running the cell again adds no second copy of the same code
        if code and self.shell is not None and INSERTED.is_new(turn.key, code):
            # JupyterLab and Notebook 7 insert it as a new cell below; the terminal pre-fills the prompt
            self.shell.set_next_input(code, replace=False)
            INSERTED.put(turn.key, code)

    def _attachment(self, name: str) -> Any:
        """``--attach NAME``: the image a variable (or ``Out[n]``, or a file path) holds.

        Looking at the user's object may raise anything (a proxy outside its context, an
        undefined template value): that is a one-line refusal, never a traceback."""
        try:
            return self._find_attachment(name)
        except ConfigurationError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's object, untrusted
            raise ConfigurationError(f"--attach {name}: {could_not_read(name, exc)}.") from None

    def _find_attachment(self, name: str) -> Any:
        import re

        ns = self._user_ns()
        out = re.fullmatch(r"Out\[(\d+)\]", name.strip())
        if out:
            outputs = ns.get("Out") or {}
            if int(out.group(1)) not in outputs:
                raise ConfigurationError(
                    f"--attach {name}: there is no Out[{out.group(1)}] (no such result)."
                )
            return attachment_from(outputs[int(out.group(1))], name)
        value: Any = ns
        parts = name.strip().split(".")
        found = parts[0] in ns
        if found:
            value = ns[parts[0]]
            for attr in parts[1:]:
                value = getattr(value, attr, None)
        if not found or value is None:
            from pathlib import Path

            if Path(name).expanduser().is_file():
                return attachment_from(name, Path(name).name)
            raise ConfigurationError(
                f"--attach {name}: no variable or image file by that name. Attach a variable holding a figure, "
                "a PIL image, PNG/JPEG bytes or a path, or Out[n]."
            )
        return attachment_from(value, name)

    def _cmd_fix(self, args: Any) -> None:
        from .context import Context, error_context

        error = error_context(self.last_error.value, as_typed=self._as_typed)
        if error is None:
            raise UsageError("There is no error yet: %chat fix explains the last exception a cell raised.")
        try:
            options = TurnOptions(provider=args.provider, model=args.model)
        except ConfigurationError as exc:
            raise UsageError(str(exc)) from None
        context = Context()
        context.add("Error", error)
        text = context.attach(FIX_REQUEST)
        # a fix carries the error and its code, not a conversation: unless -c names one, it
        # starts the conversation FIX_CONVERSATION afresh (%%chat -c fix goes on from it)
        args.new = args.conversation is None
        args.conversation = args.conversation or FIX_CONVERSATION
        args.dry_run, args.format = False, None
        self._send(text, args, options, key=self._exchange_key(text), notes=["with the last error"])

    def _note_notebook(self) -> None:
        from .record import current_notebook

        self.session.notebook = current_notebook(self._user_ns()) or self.session.notebook

    def _gather(self, items: list[Any]) -> Any:
        """The notebook context the items ask for (see chatmagic.context)."""
        from . import context as ctx

        found = ctx.Context()
        ns = self._user_ns()
        deadline = Deadline()  # for all the values of this message together
        for item in items:
            if item.kind == "error":
                text = ctx.error_context(self.last_error.value, as_typed=self._as_typed)
                found.add("Error", text or "")
            elif item.kind == "cells":
                text = ctx.cells_context(
                    self._inputs(), ns.get("Out") or {}, item.count, printed=self.printed, deadline=deadline
                )
                found.add(f"Last {item.count} cell{'s' if item.count > 1 else ''}", text or "")
            elif item.kind == "vars":
                found.add("Variables", ctx.vars_context(ns, deadline=deadline) or "")
        return found

    def _inputs(self) -> list[str]:
        """The cells as the user typed them (``In`` holds IPython's rewriting of ``%magic``
        lines: ``get_ipython().run_line_magic('chat', 'fix')`` for ``%chat fix``)."""
        history = getattr(self.shell, "history_manager", None)
        raw = getattr(history, "input_hist_raw", None)
        return list(raw) if isinstance(raw, list) and raw else list(self._user_ns().get("In") or [])

    def _as_typed(self, source: str) -> str:
        """The cell the user typed whose rewriting Python ran as ``source``."""
        history = getattr(self.shell, "history_manager", None)
        parsed = getattr(history, "input_hist_parsed", None) or []
        raw = getattr(history, "input_hist_raw", None) or []
        for n in range(min(len(parsed), len(raw)) - 1, 0, -1):  # the newest first
            if parsed[n].rstrip() == source.rstrip():
                return str(raw[n]).rstrip()
        return source

    def _exchange_key(self, cell: str) -> str:
        """The cell id; without one, the text (a re-run of the last exchange replaces it)."""
        if self._cell_id:
            return f"cell:{self._cell_id}"
        return TEXT_KEY_PREFIX + hashlib.sha1(cell.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    def _run(self, turn: Turn, fmt: str) -> None:
        """Start the turn and stream it into the cell (_cellstream.ReplyStream), or the terminal.

        In a notebook the last output shows the kernel's reply view (chatmagic._replyview):
        once it says hello the reply goes to it as patches. Until then the reply's finished
        blocks go into outputs of their own, sent once, and the open tail into the last
        output. Its final update carries the status line, the whole reply as plain text and
        the record for ``%chat restore``, and replaces the view. In
        terminal IPython the text is printed as it arrives (chatmagic._terminal).

        Ctrl-C at any moment once the turn exists, even before it has started or before
        its display exists, stops it: the user sees the one-line "Stopped" message and
        the reply never joins the history behind their back.
        """
        terminal = None
        if _terminal_shell(self.shell):
            terminal = TerminalReply()
        stream = ReplyStream(fmt)
        view = _reply_view(fmt) if terminal is None else None
        handles: list[Any] = []
        thinking_handle: Any = None
        interrupted = False
        try:
            self.session.start(turn)
            if terminal is not None:
                terminal.follow(turn)
            else:
                if SHEET.claim(self._cell_id):  # the stylesheet goes once a kernel session
                    display(stream.style(time.monotonic()), raw=True)
                else:  # an earlier reply carried it: this one's final output, the small fallback
                    stream.styled, stream.fallback = True, present.FALLBACK_STYLE
                first = stream.start(present.waiting(turn), time.monotonic())
                handles.append(display(view.bundle(first) if view else first, raw=True, display_id=True))
                thinking_handle = self._stream(turn, stream, handles, view)
        except KeyboardInterrupt:
            interrupted = True
            turn.stop()
            turn.wait(10)
        if terminal is not None:
            terminal.end(turn)
        else:
            metadata: dict[str, Any] = {}
            if turn.exchange is not None:
                from .record import exchange_metadata

                # the exchange is saved with the notebook: %chat restore rebuilds it after a restart
                metadata = exchange_metadata(turn.conversation, turn.exchange)
            final = self._final_bundle(turn, fmt, stream)
            reasoning = turn.reasoning
            if reasoning and thinking_handle is not None:
                thinking_handle.update({"text/html": present.thinking_html(reasoning)}, raw=True)
            elif reasoning:  # thought after the answer began, or stopped early: above the tail
                final["text/html"] = present.thinking_html(reasoning) + final["text/html"]
            if not handles:
                display(final, raw=True, metadata=metadata)
            else:
                handles[-1].update(final, raw=True, metadata=metadata)
        if turn.state == "failed" and turn.error is not None:
            raise turn.error
        if turn.state == "stopped" and interrupted:
            raise _stopped(turn)

    @staticmethod
    def _stream(turn: Turn, stream: ReplyStream, handles: list[Any], view: ReplyView | None = None) -> Any:
        """Send what ``stream`` decides while the turn runs; ``handles[-1]`` is the tail display.

        Until the first text the loop wakes on every change (the first text shows at once);
        then it looks ten times a second: batches, not chunks, cost the kernel's time. Once
        the tail display's widget (``view``) has said hello, the reply goes to it as patches
        (chatmagic._replyview) and the displays are no longer updated.
        """
        version = 0
        thinking = _Thinking(handles, view)
        # the tail display shows the view (the first display does). Plain updates keep it for a
        # second (a view loads its module before it can say hello), then replace it: a frontend
        # that cannot answer while the cell runs (VS Code) would show an empty view. It is put
        # back once a hello says a view can answer
        attached, plain = view is not None, None
        grace = time.monotonic() + VIEW_GRACE
        while not turn.done:
            patching = view is not None and view.ready
            showing = stream.showing_text or (view is not None and view.showing_text)
            if not showing:
                version = turn.wait_change(version, 0.25 if not patching else 0.1)
            else:
                now = time.monotonic()
                turn.wait(view.wait_time(now) if view is not None and patching else stream.wait_time(now))
            if turn.done:
                break
            if turn.reasoning_size and not showing:
                tail = handles[-1]
                thinking.show(turn, stream)
                attached = attached or handles[-1] is not tail  # a new tail display, with the view
            status = present.streaming(turn) if turn.size else present.waiting(turn)
            if view is not None and view.ready:
                if not attached and plain is not None:
                    handles[-1].update(view.bundle(plain), raw=True)
                    attached = True
                view.step(turn.text, status, time.monotonic(), stream.frozen)
                continue
            for op in stream.step(turn.text, status, time.monotonic()):
                keep = view is not None and op.kind != "freeze" and time.monotonic() < grace
                bundle = view.bundle(op.bundle) if view is not None and keep else op.bundle
                if op.kind == "open":
                    handles.append(display(bundle, raw=True, display_id=True))
                else:
                    handles[-1].update(bundle, raw=True)
                attached, plain = keep, op.bundle
                stream.sent(op, time.monotonic())  # when it went: the rate counts from there
        return thinking.handle

    @staticmethod
    def _final_bundle(turn: Turn, fmt: str, stream: ReplyStream | None = None) -> dict[str, str]:
        """The last update of the reply: the tail, the status line, the whole text as plain text."""
        return (stream or ReplyStream(fmt)).final(turn.text, present.final_status(turn))

    # -- %chat ---------------------------------------------------------------------

    @line_magic("chat")  # type: ignore[arg-type]
    def chat_line(self, line: str) -> Any:
        """Manage conversations and providers: ``%chat help`` lists the commands."""
        with self._own_errors():
            return self._chat_line(line)

    def _chat_line(self, line: str) -> Any:
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
        return getattr(self, f"_cmd_{args.command}")(args)

    def _cmd_help(self, args: Any) -> None:
        print(_help_text(_line_parser()))

    def _cmd_providers(self, args: Any) -> None:
        from .providers import list_providers

        rows = list_providers()
        head = ["provider", "default model", "models", "streams", "system", "history"]
        table = []
        for r in rows:
            if "error" in r:
                table.append([r["name"], "(cannot load)", r["error"], "", "", ""])
                continue
            models = ", ".join(r["models"] + [f"{a}→{t}" for a, t in r["aliases"].items()])
            flags = ["yes" if r[k] else "no" for k in ("stream", "system", "history")]
            name = r["name"] + (" (default)" if r["name"] == self.session.default_provider else "")
            table.append([name, r["default_model"], models, *flags])
        _show_table(head, table, _PROVIDER_COLUMNS)

    def _cmd_models(self, args: Any) -> None:
        name = args.provider or self._current_chain()[0]
        try:
            models = self.session.list_models(name)
        except ChatMagicError as exc:
            raise UsageError(str(exc)) from None
        if not models:
            print(f"{name} lists no models: load or pull one first (Ollama: ollama pull llama3.2).")
            return
        print(f"Models of {name} ({len(models)}):\n" + "\n".join(f"  {m}" for m in models))

    def _current_chain(self) -> list[str]:
        conv = self.session.conversations.get(DEFAULT_CONVERSATION)
        return parse_chain((conv.provider if conv is not None else None) or self.session.default_provider)

    def _cmd_usage(self, args: Any) -> None:
        conv = self.session.conversations.get(args.name)
        if conv is None or not len(conv):
            print(f"The conversation {args.name!r} is empty.")
            return
        counted = [ex for ex in conv.exchanges if ex.usage]
        if not counted:
            print(
                f"No reply of {args.name!r} came with token counts (web sites and some servers report none)."
            )
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
        if len(counted) < len(conv):
            line += f"; {len(conv) - len(counted)} more reported no counts"
        print(line + ".")

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
        name = args.name
        conv = self.session.conversations.get(name)
        if conv is None or not len(conv):
            print(f"The conversation {name!r} is empty.")
            return
        # drawn as the panel draws its transcript (chatmagic.present); the newest exchanges
        # only, unless told, so that a long conversation costs what is shown
        display(history_bundle(conv, None if args.all else args.last), raw=True)

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
        from .record import current_notebook
        from .restore import restore

        path = args.notebook or current_notebook(self._user_ns())
        if path is None:
            raise UsageError(
                "Which notebook? This frontend does not say: %chat restore path/to/notebook.ipynb "
                "(save the notebook first)."
            )
        report = restore(self.session, path, log=self.session.log, settings=args.settings)
        print(report.summary())

    def _cmd_log(self, args: Any) -> None:
        from .log import format_entries

        log = self.session.log
        if log is None:
            print("The exchange log is off (ChatMagics.log_path = ''): there is nothing to search.")
            return
        text = " ".join(args.text)
        empty = f"No exchange in the log matches {text!r}." if text else "The log has no exchanges yet."
        print(format_entries(log.search(text or None, limit=args.limit), empty=empty))

    def _cmd_export(self, args: Any) -> None:
        from .record import export

        conv = self.session.conversations.get(args.name)
        if conv is None or not len(conv):
            raise UsageError(f"The conversation {args.name!r} is empty: nothing to export.")
        target = export(conv, args.path or f"chat-{conv.name}.md")
        print(f"Wrote {len(conv)} exchanges of {conv.name!r} to {target}.")

    def _cmd_panel(self, args: Any) -> Any:
        if _terminal_shell(self.shell):  # a widget would print as its repr
            raise UsageError(
                "The chat panel needs a notebook (JupyterLab, Notebook 7, VS Code): in the terminal, "
                "chat with %%chat cells."
            )
        from .panel import ChatPanel

        self._note_notebook()
        return ChatPanel(conversation=args.name, session=self.session)

    def _cmd_sandbox(self, args: Any) -> None:
        from . import _state

        if args.action == "stop":
            _state.stop_sandbox(self.session)
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
                f"{args.fault}. Each retry is a request (ChatMagics.retries = {self.session.retries}: a "
                f"cell makes up to {self.session.retries + 1}); what is left waits for later cells: "
                "%chat sandbox faults lists it, %chat sandbox clear forgets it."
            )
        else:
            url = _state.start_sandbox(self.session)
            from .providers.endpoints import endpoint_names

            print(
                f"Local stand-in of the chat sites at {url}; every provider now talks to it, "
                f"endpoints included ({', '.join(endpoint_names())})."
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
    command("models", "list the models a provider's server has (GET /models)").add_argument(
        "provider", metavar="PROVIDER", nargs="?"
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
        help=f"Continue this conversation (default: {FIX_CONVERSATION!r}, started afresh: the error alone).",
    )
    fix.add_argument("-p", "--provider", metavar="PROVIDER")
    fix.add_argument("-m", "--model", metavar="MODEL")
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
    command("reset", "forget a conversation's history").add_argument(
        "name", metavar="NAME", nargs="?", default=DEFAULT_CONVERSATION
    )
    use = command("use", "set the default provider (and model)")
    use.add_argument("provider", metavar="PROVIDER")
    use.add_argument("model", metavar="MODEL", nargs="?")
    command("panel", "open the chat panel on a conversation").add_argument(
        "name", metavar="NAME", nargs="?", default=DEFAULT_CONVERSATION
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
    params = {**turn.session.default_params, **(turn.options.params or {})}
    if params:
        notes.append(f"Options: {json.dumps(params, ensure_ascii=False)}.")
    if turn.options.attachments:
        notes.append(f"Attached: {', '.join(a.describe() for a in turn.options.attachments)}.")
    plain = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in turn.messages)
    rows = "".join(
        f"<tr><td><b>{html.escape(m['role'])}</b></td>"
        f'<td><pre class="chatmagic-text">{html.escape(m["content"])}</pre></td></tr>'
        for m in turn.messages
    )
    display(
        {
            "text/html": f"{FALLBACK_STYLE}{table_html(rows)}{status_html(' '.join(notes))}",
            "text/plain": plain + "\n\n— " + " ".join(notes),
        },
        raw=True,
    )


#: seconds a cell's plain updates keep its reply view, waiting for the view's hello
VIEW_GRACE = 1.0


def _reply_view(fmt: str) -> ReplyView | None:
    """The widget a streaming cell patches, or None where widgets cannot be made."""
    try:
        from ._replyview import ReplyView  # ipywidgets: loaded with the first reply, not the extension

        return ReplyView.for_reply(fmt)
    except Exception:  # noqa: BLE001 - no widgets: the plain display updates serve
        return None


def _terminal_shell(shell: Any) -> bool:
    """Terminal IPython without a rich frontend: the reply is printed, not displayed."""
    return is_terminal(shell)


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


def _stopped(turn: Turn) -> TurnStopped:
    """The one-line message of a turn the user stopped with Ctrl-C."""
    return TurnStopped(f"Stopped by the user. {outcome(turn)}")


class _Thinking:
    """The "Thinking" block of a reasoning model, in its own output above the answer.

    Reasoning comes before the answer: when it starts, the output that shows "waiting…"
    becomes the Thinking block and a new one below it takes over the status (and then the
    answer). While it streams it shows its last lines, at most once a second; the final
    update shows all of it, collapsed.
    """

    def __init__(self, handles: list[Any], view: ReplyView | None = None) -> None:
        self.handles = handles
        self.view = view  # the tail display carries it (see ChatMagics._stream)
        self.handle: Any = None
        self.shown_at = float("-inf")

    def show(self, turn: Turn, stream: ReplyStream) -> None:
        now = time.monotonic()
        if now - self.shown_at < 1.0:
            return
        self.shown_at = now
        bundle = {"text/html": present.thinking_html(turn.reasoning, streaming=True)}
        if self.handle is None:
            self.handle = self.handles[-1]
            self.handle.update(bundle, raw=True)
            tail = stream.start(present.waiting(turn), now)
            self.handles[-1] = display(
                self.view.bundle(tail) if self.view else tail, raw=True, display_id=True
            )
        else:
            self.handle.update(bundle, raw=True)


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


#: what the columns of %chat providers mean (also in the README)
_PROVIDER_COLUMNS = (
    "streams — yes: the reply shows as it is written; no: it arrives in one piece, at the end.",
    "system — yes: the site takes a system prompt (-s); no: it goes inside the message, and may be heeded less.",
    "history — yes: the site takes the earlier messages; no: they go inside the message too.",
    "(default) answers the cells that name no provider: %chat use NAME changes it, -p NAME picks one per cell.",
)


def _show_table(head: list[str], rows: list[list[str]], notes: tuple[str, ...] = ()) -> None:
    display(table_bundle(head, rows, notes), raw=True)
