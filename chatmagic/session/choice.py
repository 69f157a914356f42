"""The choice rule: which providers and models a turn uses.

One rule (also in the README), asked by :meth:`chatmagic.session.ChatSession.prepare` before
a turn and by the skins to show what the next turn uses (``%chat models``, the panel):

- the turn's ``--provider``, else the conversation's provider, else the session default;
- the turn's ``--model``; else the conversation's model, unless this turn names another
  provider (a model belongs to its provider); else the default model of the session when
  the provider is the default one; else the provider's own default.

For a chain (``a,b``), each provider that offers the model gets it, the others their own
default (:func:`resolve_models`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError, UnknownModelError
from ..options import TurnOptions, parse_chain
from ..providers import get_provider


@dataclass(frozen=True)
class Choice:
    """Which providers and models a turn uses (:meth:`ChatSession.choice`)."""

    #: the providers in the order they are tried, by their registered names
    chain: list[str]
    #: the model of each provider of the chain
    models: dict[str, str]

    @property
    def provider(self) -> str:
        """The chain as one name, as a conversation keeps it (``"a,b"``)."""
        return ",".join(self.chain)

    @property
    def model(self) -> str:
        """The model of the first provider ("" when its server decides)."""
        return self.models[self.chain[0]]


def choose(
    options: TurnOptions,
    *,
    kept_provider: str | None,
    kept_model: str | None,
    default_provider: str,
    default_model: str | None,
) -> Choice:
    """The rule above, for a turn with ``options`` on a conversation that keeps
    ``kept_provider`` and ``kept_model`` (None for a conversation started afresh).

    Raises as a turn would: an unknown provider, a model that the provider (or no
    provider of the chain) offers.
    """
    names = options.chain or parse_chain(kept_provider or default_provider)
    classes = [get_provider(name) for name in names]
    chain = [cls.name for cls in classes]
    spec = ",".join(chain)
    if options.model:
        model = options.model
    elif kept_model and (kept_provider is None or spec == _as_named(kept_provider)):
        model = kept_model
    else:
        model = default_model_for(spec, default_provider, default_model)
    return Choice(chain, resolve_models(classes, model or None))


def default_model_for(chain: str, default_provider: str, default_model: str | None) -> str:
    """The session's default model, for the default provider's chain only ("" otherwise)."""
    if default_model and chain == ",".join(parse_chain(default_provider)):
        return default_model
    return ""


def _as_named(spec: str) -> str:
    """A chain as the registry names it (``" ChatGPTT"`` → ``"chatgptt"``), as typed if malformed."""
    try:
        return ",".join(parse_chain(spec))
    except ConfigurationError:
        return spec


def resolve_models(classes: list[Any], requested: str | None) -> dict[str, str]:
    """The model for each provider of a chain.

    One provider: the requested model must be one of its own. A chain: each provider
    that offers the requested model gets it, the others their default; at least one
    must offer it.
    """
    if len(classes) == 1 or not requested:
        return {cls.name: cls.get_model(requested) for cls in classes}
    offered = []
    for cls in classes:
        try:
            cls.get_model(requested)
        except UnknownModelError:
            continue
        offered.append(cls)  # providers such as openai pass any name on to their server
    if not offered:
        names = ", ".join(cls.name for cls in classes)
        raise UnknownModelError(f"None of {names} offers the model {requested!r}.")
    models = {cls.name: cls.get_model(requested if cls in offered else None) for cls in classes}
    return models
