"""``%%chat`` and ``%chat``: ChatMagics (its settings are chatmagic._settings) and the magics' declarations.

Everything about conversations lives in :mod:`chatmagic.session`; a turn in a cell is
chatmagic._cell, the ``%chat`` commands are chatmagic._commands. This module is what
``%load_ext chatmagic`` imports, so it imports only what declaring the magics needs:
the session, the providers' registry, the context, the records and the panel come at
first use (the first-use boundary: the function-local imports below, each named so).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import cell_magic, line_magic, magics_class
from traitlets import observe

from ._cellargs import chat_options
from ._lasterror import LastError
from ._settings import ChatSettings
from .budget import Limits
from .errors import TurnStopped, redact
from .options import DEFAULT_PROVIDER
from .plots import PlotHistory
from .printed import PrintedOutput

if TYPE_CHECKING:
    from .session import ChatSession


@magics_class
class ChatMagics(ChatSettings):
    """Chat with web chat models from cells. Configure with ``%config ChatMagics.<trait>``."""

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
