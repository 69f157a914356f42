"""The session: named conversations, the defaults, and starting turns on them.

The one session core under ``%%chat`` and the panel; nothing in :mod:`chatmagic.session`
imports IPython or ipywidgets. A :class:`ChatSession` holds named
:class:`~chatmagic.session.conversation.Conversation` objects and the provider instances
(with their connections and tokens, :mod:`chatmagic.session.pool`), prepares a
:class:`~chatmagic.session.turn.Turn` (checks, the choice rule of
:mod:`chatmagic.session.choice`, what is sent), and starts it on the background loop of
:mod:`chatmagic.runner` (:mod:`chatmagic.session.run`). A kept exchange goes to the
``sinks`` it is given (the kernel's exchange log among them): the core never formats a log row.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from .._defaults import DEFAULT_CONVERSATION, DEFAULT_MAX_HISTORY_CHARS
from .._secrets import table
from ..budget import Limits
from ..errors import ChatMagicError, ConfigurationError
from ..log import ExchangeLog, default_log_path
from ..options import DEFAULT_PROVIDER, DEFAULT_TIMEOUT, TurnOptions
from ..pause import Audience, Pauses
from ..providers import get_provider
from ..providers._lines import valid_text
from ..runner import Runner, get_runner
from .choice import Choice, choose, default_model_for
from .conversation import Conversation, Exchange, scrubbed
from .pool import LIST_MODELS_TIMEOUT, ProviderPool, list_models
from .run import run
from .sent import sent_before
from .turn import Turn

logger = logging.getLogger("chatmagic.session")


#: in ``set_stand_in``'s addresses: the one for every provider not named there
STAND_IN_OTHERS = "*"


class ChatSession:
    """Named conversations, defaults, and live provider instances."""

    def __init__(self, runner: Runner | None = None) -> None:
        self.runner = runner or get_runner()
        self.conversations: dict[str, Conversation] = {}
        self.default_provider = DEFAULT_PROVIDER
        self.default_model: str | None = None
        self.default_system: str | None = None
        self.default_timeout: float | None = DEFAULT_TIMEOUT
        self.default_proxy: str | None = None
        #: provider name -> base URL (mirrors, self-hosted sites): exactly the user's settings
        self.base_urls: dict[str, str] = {}
        #: provider name -> the local stand-in's address, while ``%chat sandbox`` runs
        self.stand_in_urls: dict[str, str] = {}
        #: request parameters sent with every turn to providers that take them (ChatMagics.options)
        self.default_params: dict[str, Any] = {}
        #: retries of a provider before moving on, and the backoff between them
        self.retries = 2
        self.backoff = 0.5
        #: a Retry-After longer than this moves on to the next provider instead
        self.max_retry_wait = 30.0
        #: earlier history sent with a turn, in characters (0: all of it): the newest
        #: exchanges that fit, whole; the conversation itself keeps everything
        self.max_history_chars = DEFAULT_MAX_HISTORY_CHARS
        #: take secret values (see chatmagic._secrets) out of everything sent
        self.redact_secrets = True
        #: a turn whose saved exchange matches shows it again and sends nothing
        self.replay = False
        #: the local log of completed exchanges (chatmagic.log): None for its default place
        #: in the Jupyter data directory, "" for none
        self.log_path: str | None = ""
        #: the notebook the exchanges belong to, where the frontend says (for the log)
        self.notebook: str | None = None
        self._log: ExchangeLog | None = None
        #: called with ``(conversation, exchange)`` for every kept exchange (the kernel's
        #: session gets the notebook's log writer, chatmagic._logsink, where it is made)
        self.sinks: list[Callable[[Conversation, Exchange], None]] = []
        #: the user's prices and budgets (chatmagic.budget), checked before each turn
        self.limits = Limits()
        #: the questions turns wait on (a budget to confirm, a tool to approve), and who can answer
        self.pauses = Pauses()
        self.audience = Audience()
        self._lock = threading.RLock()
        #: the provider instances turns use (see chatmagic.session.pool)
        self.pool = ProviderPool()

    def default_model_for(self, chain: str) -> str:
        return default_model_for(chain, self.default_provider, self.default_model)

    def base_url_for(self, provider: str) -> str | None:
        """The address ``provider`` talks to: the stand-in's while it runs, else the user's."""
        with self._lock:
            if self.stand_in_urls:
                # any other name is one of the user's endpoints (ChatMagics.endpoints, set
                # before or after the stand-in started): it talks to the stand-in's OpenAI API
                return self.stand_in_urls.get(provider) or self.stand_in_urls.get(STAND_IN_OTHERS)
            return self.base_urls.get(provider)

    def set_stand_in(self, urls: dict[str, str] | None) -> None:
        """Point providers at the local stand-in (``None``: back to the user's addresses).

        ``urls[STAND_IN_OTHERS]`` is the address of every provider not named in ``urls``.
        The stand-in's addresses lie over the user's ``base_urls`` without changing them,
        so stopping it gives back exactly what the user had configured.
        """
        with self._lock:
            self.stand_in_urls = dict(urls or {})
        self.close()  # providers made for the previous addresses are dropped

    # -- conversations -------------------------------------------------------------

    def conversation(self, name: str = DEFAULT_CONVERSATION) -> Conversation:
        with self._lock:
            conv = self.conversations.get(name)
            if conv is None:
                conv = self.conversations[name] = Conversation(name, system=self.default_system)
            return conv

    def new_conversation(self, name: str = DEFAULT_CONVERSATION) -> Conversation:
        """Start ``name`` afresh with the session's defaults (listeners stay, so panels follow)."""
        conv = self.conversation(name)
        with conv.lock:
            conv._check_idle("started afresh")
            self._reset_settings(conv)
            conv.reset()
        return conv

    def _reset_settings(self, conv: Conversation) -> None:
        conv.system = self.default_system
        conv.provider = conv.model = None

    def __iter__(self) -> Iterator[Conversation]:
        with self._lock:
            return iter(list(self.conversations.values()))

    # -- turns ---------------------------------------------------------------------

    def prepare(
        self,
        prompt: str,
        *,
        conversation: str = DEFAULT_CONVERSATION,
        options: TurnOptions | None = None,
        key: str | None = None,
        fresh: bool = False,
    ) -> Turn:
        """Check everything that can be checked before sending; returns an unstarted turn.

        The providers and model are :meth:`choice`'s. ``fresh``: the turn starts the
        conversation afresh (``--new``): no history, and the session's defaults instead of
        the conversation's settings. Nothing changes on the conversation until
        :meth:`start`, so a turn that cannot be sent loses nothing.
        """
        # what the user typed may hold what UTF-8 cannot (a lone surrogate, from "\ud800" in
        # an interpolated value, a widget, a string built in code): neither the request nor
        # the history may hold it
        prompt = valid_text(prompt)
        if not prompt.strip():
            raise ConfigurationError("The message is empty: write it in the cell body (or the box).")
        options = options or TurnOptions()
        conv = self.conversation(conversation)
        with conv.lock:
            kept_system = self.default_system if fresh else conv.system
        # the secrets once for the whole turn (every message, the reply): reading the
        # environment for each message made a turn's cost grow with the conversation
        secrets = table() if self.redact_secrets else None
        redacted: list[str] = []
        system = valid_text(options.system if options.system is not None else kept_system or "") or None
        # the system prompt is scrubbed like everything sent, and kept as sent
        system = scrubbed(system, redacted, secrets) if system else system
        if options.system and options.system != system:  # start() keeps the clean one
            options = dataclasses.replace(options, system=system)
        chosen = self.choice(conversation, options, fresh=fresh)
        if options.base_url and len(chosen.chain) > 1:
            raise ConfigurationError(
                "--base-url names one site, and this is a chain of providers: set each one's "
                "address with %config ChatMagics.base_urls = {'openai': 'http://…/v1', …}."
            )
        turn = Turn(self, conv, prompt, options, key, chain=chosen.chain, model=chosen.model, fresh=fresh)
        turn.models = chosen.models
        turn.secrets, turn.kept_system, turn.redacted = secrets, kept_system, redacted
        before = None if fresh else conv.replaced_key(key)
        context, turn.history_sent, turn.history_total, turn.context_hash = sent_before(
            None if fresh else conv, before, system, turn.redacted, secrets, self.max_history_chars
        )
        prompt = scrubbed(prompt, turn.redacted, secrets)
        turn.prompt = prompt  # the history keeps what was sent
        turn.messages = [*context, {"role": "user", "content": prompt}]
        turn.redacted = sorted(set(turn.redacted))
        return turn

    def choice(
        self,
        conversation: str = DEFAULT_CONVERSATION,
        options: TurnOptions | None = None,
        *,
        fresh: bool = False,
    ) -> Choice:
        """Which providers and model the next turn of ``conversation`` uses with ``options``.

        The one rule (:mod:`chatmagic.session.choice`), which :meth:`prepare` and the panel
        both ask.

        ``fresh``: as for a turn that starts the conversation afresh (the session's
        defaults, not the conversation's). Raises as :meth:`prepare` would: an unknown
        provider, a model that the provider (or no provider of the chain) offers.
        """
        kept_provider, kept_model = (None, None) if fresh else self._kept(conversation)
        return choose(
            options or TurnOptions(),
            kept_provider=kept_provider,
            kept_model=kept_model,
            default_provider=self.default_provider,
            default_model=self.default_model,
        )

    def shown_choice(self, conversation: str = DEFAULT_CONVERSATION) -> Choice:
        """The provider and model the next turn of ``conversation`` uses when it names neither:
        what ``%chat models`` and the panel show. Makes no conversation; never raises.

        A provider or model the rule refuses (a notebook's from another machine, an endpoint
        since removed) is shown as the conversation keeps it: the turn will say what is wrong.
        """
        try:
            return self.choice(conversation)
        except ChatMagicError:
            provider, model = self._kept(conversation)
            spec = provider or self.default_provider
            chain = spec.split(",")
            return Choice(
                chain, {**dict.fromkeys(chain, ""), chain[0]: model or self.default_model_for(spec)}
            )

    def _kept(self, conversation: str) -> tuple[str | None, str | None]:
        """The provider and model ``conversation`` keeps (none for one not made yet)."""
        conv = self.conversations.get(conversation)
        if conv is None:
            return None, None
        with conv.lock:
            return conv.provider, conv.model

    def _replayable(self, turn: Turn) -> Exchange | None:
        """The saved exchange ``turn`` would redo, if it would send exactly what that one sent:
        the same cell, prompt as sent, earlier history and system prompt, provider and model.

        A cell id finds its exchange anywhere; so does the text of a cell (frontends that send
        no cell id, nbclient), as long as what came before it is the same.
        """
        conv, key = turn.conversation, turn.key
        with conv.lock:
            saved = None if key is None else conv.keyed(key)
        if saved is None or saved.stopped or saved.context_hash is None:
            return None
        if conv.replaced_key(key) is not None:
            context_hash = turn.context_hash
        else:  # a text key further up: what would have been sent before it
            system = turn.messages[0]["content"] if turn.messages[0]["role"] == "system" else None
            context_hash = sent_before(conv, key, system, [], turn.secrets, self.max_history_chars)[3]
        same = (
            saved.user.content == turn.prompt
            and saved.context_hash == context_hash
            and saved.provider in turn.models
            and saved.model == turn.models[saved.provider]
        )
        return saved if same else None

    def start(self, turn: Turn) -> Turn:
        """Start a prepared turn; what it chose stays with the conversation once it is kept.

        ``--new`` starts the conversation afresh here. The options stick in :meth:`settle`,
        when the turn's exchange joins the history, or when it failed for a passing reason
        (a server error, a rate limit, the network): a turn refused (a mistyped model, an
        attachment the provider cannot take) leaves the conversation's provider, model and
        system prompt as they were. Refused (:class:`ConversationBusy`) while
        another reply streams into the same conversation.
        """
        conv = turn.conversation
        with conv.lock:
            conv._check_idle("sent another message")
            if turn.fresh:
                self._reset_settings(conv)
                conv.start_afresh()
            saved = self._replayable(turn) if self.replay and not turn.fresh else None
            if saved is None and turn.key is not None and conv.replaced_key(turn.key) is None:
                # the same text asked again: the older exchange is no longer "this cell"
                conv.release(turn.key)
            if saved is None:
                conv.active = turn
            else:  # a replayed turn is kept as it was
                self.settle(turn)
        if turn.fresh:
            conv._emit("reset", None)
        if saved is not None:
            turn._replay(saved)
            return turn
        coro = None
        try:
            conv._emit("start", turn)
            coro = run(turn)
            turn._submitted = True
            self.runner.submit(coro)
        except BaseException:  # Ctrl-C: the turn must end, or its conversation stays busy
            turn._not_handed_over(coro)
            raise
        return turn

    def settle(self, turn: Turn) -> None:
        """What a kept turn chose becomes its conversation's (called with the conversation locked).

        A provider given for the turn becomes the conversation's (and drops a model of the
        previous provider); a model given becomes its model; a system prompt given becomes
        its system prompt.
        """
        conv, options = turn.conversation, turn.options
        if options.provider is not None:
            spec = ",".join(turn.chain)
            if conv.provider != spec and options.model is None:
                conv.model = None
            conv.provider = spec
        if options.model is not None:
            conv.model = options.model
        if options.system is not None:
            conv.system = options.system or None
        elif conv.system is not None and conv.system == turn.kept_system and turn.messages:
            # kept as it was sent: scrubbed (the notebook's record and the log copy it)
            first = turn.messages[0]
            conv.system = first["content"] if first["role"] == "system" else conv.system

    def send(
        self,
        prompt: str,
        *,
        conversation: str = DEFAULT_CONVERSATION,
        options: TurnOptions | None = None,
        key: str | None = None,
    ) -> Turn:
        """Prepare and start a turn; returns at once (``turn.result()`` waits)."""
        return self.start(self.prepare(prompt, conversation=conversation, options=options, key=key))

    @property
    def log(self) -> ExchangeLog | None:
        """The exchange log (:class:`chatmagic.log.ExchangeLog`), or None when it is off."""
        with self._lock:
            if self.log_path == "":
                return None
            path = str(self.log_path or default_log_path())
            if self._log is None or str(self._log.path) != path:
                if self._log is not None:
                    self._log.close()
                self._log = ExchangeLog(path)
            return self._log

    def _publish(self, conv: Conversation, exchange: Exchange) -> None:
        """Hand a kept exchange to every sink (the notebook's log writer among them).

        The core never formats a log row: a sink given to it does (as simonw/llm's
        ``after_response``). A failing sink is logged and skipped, never fails the turn.
        """
        for sink in list(self.sinks):
            try:
                sink(conv, exchange)
            except Exception:  # a sink is someone else's code: the turn is already kept
                logger.warning("chatmagic: an exchange sink failed", exc_info=True)

    def list_models(self, provider: str, *, timeout: float = LIST_MODELS_TIMEOUT) -> list[str]:
        """The models ``provider`` offers (:func:`chatmagic.session.pool.list_models`), asked at
        the address this session uses for it (``--base-url`` settings and the stand-in
        included). For ``%chat models`` and the panel.
        """
        cls = get_provider(provider)
        return list_models(cls, self.base_url_for(cls.name), self.default_proxy, self.runner, timeout)

    def close(self) -> None:
        """Close every provider's connections (on the loop they were made on)."""
        self.pool.close(self.runner)

    def __enter__(self) -> ChatSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
