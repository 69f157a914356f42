"""``%%chat`` and ``%chat``: ChatMagics, its settings (traits) and the magics' declarations.

Everything about conversations lives in :mod:`chatmagic.session`; a turn in a cell is
chatmagic._cell, the ``%chat`` commands are chatmagic._commands. This module is what
``%load_ext chatmagic`` imports, so it imports only what declaring the magics needs:
the session, the providers' registry, the context, the records and the panel come at
first use (the first-use boundary: the function-local imports below, each named so).
"""

from __future__ import annotations

import math
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from traitlets import Bool, Dict, Float, Int, List, TraitError, Unicode, Union, observe, validate

from ._cellargs import chat_options
from ._defaults import DEFAULT_MAX_HISTORY_CHARS, DEFAULT_MAX_TOOL_STEPS
from ._lasterror import LastError
from ._secrets import scrub
from .budget import Limits, check_max_cost, check_max_input_tokens, check_prices
from .errors import ConfigurationError, TurnStopped, redact
from .options import DEFAULT_PROVIDER, DEFAULT_TIMEOUT, check_base_url, check_params, check_proxy, parse_chain
from .plots import PlotHistory
from .printed import PrintedOutput

if TYPE_CHECKING:
    from .session import ChatSession


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
        help="Earlier history sent with a message, in characters (0 = all): whole exchanges, the oldest "
        "dropped in steps when it binds, so that consecutive requests share their start (prompt caches "
        "keep hitting). The conversation itself keeps everything.",
    ).tag(config=True)
    prices = Dict(
        key_trait=Unicode(),
        help="Your prices per model, USD per million tokens: {'gpt-4o': {'input': 2.5, 'output': 10}} "
        "(none are shipped). The glass box (%chat context, --dry-run) shows a turn's cost; max_cost uses it.",
    ).tag(config=True)
    max_input_tokens = Int(
        0, help="The most tokens a turn may send without asking you (Send anyway / Cancel); 0 = no limit."
    ).tag(config=True)
    max_cost = Float(
        0.0, help="The most USD a turn may cost without asking you, by ChatMagics.prices; 0 = no limit."
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

    tools = Union(
        [List(Unicode()), Unicode()],
        default_value=[],
        help="Tools every %%chat cell offers the model, as --tools: names of your functions, or "
        "'notebook' for the built-ins that only read (e.g. ['load_sales', 'notebook']). A call of "
        "one of your functions waits for your approval.",
    ).tag(config=True)
    max_tool_steps = Int(
        DEFAULT_MAX_TOOL_STEPS,
        help="Most model calls of one turn that uses tools (each tool step is one more call).",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        # the kernel's session is made (or found) at first use, not at load: see `session`
        self._session: ChatSession | None = None
        self.cell_id: str | None = None
        #: what the last cells printed, for --context cells:N (filled by the two hooks below)
        self.printed = PrintedOutput(quiet=self._not_printing)
        #: the figures the last cells displayed, for --context plots:N (watched from load to unload)
        self.plots = PlotHistory()
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
        self.note_notebook()  # panels made from Python log under this notebook too

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
        "prices",
        "max_input_tokens",
        "max_cost",
        "redact_secrets",
        "replay",
        "log_path",
    )
    def _on_config(self, change: Any) -> None:
        if change.name == "endpoints" and self._session is None:
            # the registry's, not the session's: named at once (-p, %chat providers, a check)
            self._configure_endpoints()
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
        self._configure_endpoints()
        s.retries = max(0, self.retries)
        s.max_history_chars = max(0, self.max_history_chars)
        s.limits = Limits(dict(self.prices), self.max_input_tokens, self.max_cost)
        s.redact_secrets = self.redact_secrets
        s.replay = self.replay
        s.log_path = self.log_path

    def _configure_endpoints(self) -> None:
        from .providers.endpoints import configure_endpoints  # the registry: first use (load time)

        configure_endpoints(self.endpoints)

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
        from .context import parse_spec  # at %config, not load

        _trait_check(lambda spec: parse_spec(spec, "ChatMagics.context"), proposal.value)
        return str(proposal.value)

    @validate("max_tool_steps")
    def _valid_max_tool_steps(self, proposal: Any) -> int:
        if proposal.value < 1:
            raise TraitError(f"ChatMagics.max_tool_steps must be 1 or more (got {proposal.value!r}).")
        return int(proposal.value)

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
        from .providers.endpoints import check_endpoints  # at %config, not load

        return _trait_check(check_endpoints, proposal.value)

    @validate("prices")
    def _valid_prices(self, proposal: Any) -> dict[str, dict[str, float]]:
        return _trait_check(check_prices, proposal.value)

    @validate("max_input_tokens")
    def _valid_max_input_tokens(self, proposal: Any) -> int:
        return _trait_check(check_max_input_tokens, proposal.value)

    @validate("max_cost")
    def _valid_max_cost(self, proposal: Any) -> float:
        return _trait_check(check_max_cost, proposal.value)

    @validate("base_urls")
    def _valid_base_urls(self, proposal: Any) -> dict[str, str]:
        # the checked URLs: their repr hides credentials when %config lists them
        return {name: _trait_check(check_base_url, url) or url for name, url in proposal.value.items()}

    @classmethod
    def class_get_trait_help(cls, trait: Any, inst: Any = None, helptext: str | None = None) -> str:
        # traitlets lists a setting's current value by its repr (%config ChatMagics): a
        # proxy's password, an endpoint's, a secret in the system prompt never show there
        return scrub(super().class_get_trait_help(trait, inst, helptext))

    def user_ns(self) -> dict[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    def note_notebook(self) -> None:
        """The session's exchanges are logged under the notebook this kernel runs, when it says."""
        from .record import current_notebook  # first use: the records (load time)

        self.session.notebook = current_notebook(self.user_ns()) or self.session.notebook

    def pre_run_cell(self, info: Any) -> None:
        # JupyterLab sends the cell's id with each execution; IPython passes it here
        self.cell_id = getattr(info, "cell_id", None)
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

    @chat_options
    @cell_magic
    def chat(self, line: str, cell: str) -> None:
        """Send the cell to a chat model and stream the reply into the cell.

        The cell body is the message. The conversation goes on across cells: the
        next ``%%chat`` cell continues it. Re-running a cell redoes that cell's
        exchange instead of adding a new one. Ctrl-C (interrupt the kernel) stops a
        reply at once, and ``%chat stop`` one whose cell has ended (a tool call waiting
        for your answer); the text so far stays, marked as stopped.

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
            from . import _cell  # first use: the session, the context, the records (load time)

            # the cell's trailing newline and blank lines around it are not part of the message
            _cell.run_cell(self, args, cell.strip("\n").rstrip())

    @contextmanager
    def _own_errors(self, stopped_note: str = "") -> Iterator[None]:
        """What leaves a %%chat or %chat is chatmagic's own error, never the user's last one;
        Ctrl-C before the turn exists (parsing, the context, prepare) is the one-line
        "Stopped" too (once it exists, chatmagic._cell says what was kept)."""
        try:
            yield
        except KeyboardInterrupt:
            stopped = TurnStopped(f"Stopped by the user.{stopped_note}")
            self.last_error.ours(stopped)
            raise stopped from None
        except BaseException as exc:
            self.last_error.ours(exc)
            raise

    # -- %chat ---------------------------------------------------------------------

    @line_magic("chat")  # type: ignore[arg-type]
    def chat_line(self, line: str) -> Any:
        """Manage conversations and providers: ``%chat help`` lists the commands."""
        with self._own_errors():
            from . import _commands  # first use: the session, the registry, the log (load time)

            return _commands.dispatch(self, line)


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


def _trait_check(check: Any, value: Any) -> Any:
    try:
        return check(value)
    except ConfigurationError as exc:
        raise TraitError(str(exc)) from None
