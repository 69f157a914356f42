"""The chat panel's provider picker and model box: where its next message goes.

The panel shows the provider and model the conversation's next turn uses (the session's
choice rule, :meth:`chatmagic.session.ChatSession.choice`); choosing others here changes
nothing until a message is sent with them (then they become the conversation's, as a
cell's ``-p``/``-m`` do). The model box takes any name: a web site's chat has a fixed list,
an OpenAI-compatible server lists its own, asked on a thread of its own (a server may take
seconds) and kept only if that provider is still the one chosen.

:class:`ModelBox` is a base class of :class:`chatmagic.panel.ChatPanel`: its traits are the
bar's, and it uses the panel's session, conversation, lock and status line.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets
import traitlets

from .errors import ChatMagicError
from .providers import list_providers
from .session import ChatSession, Choice, Conversation, TurnOptions

__all__ = ["ModelBox", "provider_rows"]


def provider_rows() -> list[list[str]]:
    """Every provider that loads, as ``[name, label]`` for the picker."""
    return [[r["name"], f"{r['label']} ({r['name']})"] for r in list_providers() if "error" not in r]


class ModelBox(ipywidgets.DOMWidget):
    """The provider picker and model box of a chat panel (see the module docstring).

    The panel sets ``session``, ``conversation``, ``_lock`` and ``_closed``, and draws the
    status line (``_set_status``, ``_status_if_idle``).
    """

    #: every provider as ``[name, label]``
    providers = traitlets.List(traitlets.List(traitlets.Unicode())).tag(sync=True)
    #: the provider and model the next message goes to: the conversation's own, unless
    #: chosen here since (they become the conversation's when the message is sent)
    provider = traitlets.Unicode().tag(sync=True)
    model = traitlets.Unicode().tag(sync=True)
    #: what the model box offers: the server's own list for OpenAI-compatible servers
    models = traitlets.List(traitlets.Unicode()).tag(sync=True)
    #: what the model box says about that list (asking, failed, empty)
    models_note = traitlets.Unicode().tag(sync=True)

    session: ChatSession
    conversation: Conversation
    _lock: threading.RLock
    _closed: bool

    def __init__(self, **kwargs: Any) -> None:
        self._quiet = 0
        self._models_for = ""  # the provider whose models were asked for last
        super().__init__(providers=provider_rows(), **kwargs)
        self.observe(self._on_provider, names="provider")
        self.observe(self._on_model, names="model")

    @contextmanager
    def _quietly(self) -> Iterator[None]:
        """Set traits from here without running the handlers meant for the user's changes."""
        with self._lock:
            self._quiet += 1
            try:
                yield
            finally:
                self._quiet -= 1

    def _show_settings(self) -> None:
        # what the conversation's next turn uses unless one is named (as %chat models says)
        chosen = self.session.shown_choice(self.conversation.name)
        provider, model = chosen.provider, chosen.model
        with self._quietly(), self.hold_sync():
            if provider not in {name for name, _label in self.providers}:
                # a chain (-p a,b) or a provider registered since: offer it as it is
                self.providers = [*provider_rows(), [provider, provider]]
            self.provider = provider
            self.model = model
        if provider != self._models_for:
            self._ask_models()

    def _on_provider(self, _change: dict[str, Any]) -> None:
        with self._lock:
            if self._quiet:
                return
            # the model the next turn would use with this provider (the session's rule)
            try:
                model = self._choice(self.provider).model
            except ChatMagicError:
                model = ""
            with self._quietly():
                self.model = model
            self._ask_models()
            self._status_if_idle()

    def _on_model(self, _change: dict[str, Any]) -> None:
        with self._lock:
            if self._quiet:
                return
            try:
                # a web site's chat has a fixed list; a server takes any name (it says if it has it)
                self._choice(self.provider, self.model)
            except ChatMagicError as exc:
                self._set_status(str(exc), error=True)
                return
            self._status_if_idle()

    def _choice(self, provider: str, model: str = "") -> Choice:
        """What a turn sent from here with this provider and model would use (as send() asks)."""
        options = TurnOptions(provider=provider or None, model=model.strip() or None)
        return self.session.choice(self.conversation.name, options)

    def _ask_models(self) -> None:
        """List the provider's models on a thread of its own (a server may take seconds)."""
        provider = self.provider
        self._models_for = provider
        if not provider:
            return
        with self._quietly(), self.hold_sync():
            self.models = []
            self.models_note = f"Asking {provider} for its models…"

        def work() -> None:
            try:
                names = self.session.list_models(provider.split(",")[0])
                note = "" if names else f"{provider} lists no models: type one."
            except ChatMagicError as exc:
                names, note = [], f"Could not list the models ({exc}). Type a model name."
            with self._lock:
                if self._closed or self._models_for != provider:
                    return  # another provider was chosen meanwhile
                with self._quietly(), self.hold_sync():
                    self.models = names
                    self.models_note = note

        threading.Thread(target=work, name="chatmagic-models", daemon=True).start()
