"""ChatMagics' settings: the traits ``%config ChatMagics.<name>`` sets, each checked on the way in.

A refused value is one line (``update_config`` prints the check's message) and the trait
keeps its old one. The checks live with the rules they apply (options, budget, the
providers' registry, context); this module only declares and routes them. Loading the
extension imports it: registry and context checks are imported when a value is set.
:class:`chatmagic.magics.ChatMagics` is this class with the magics and the session.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from IPython.core.magic import Magics
from traitlets import Bool, Dict, Float, Int, List, TraitError, Unicode, Union, validate

from ._defaults import DEFAULT_MAX_HISTORY_CHARS, DEFAULT_MAX_TOOL_STEPS
from ._secrets import scrub
from .budget import check_max_cost, check_max_input_tokens, check_prices
from .errors import ConfigurationError, redact
from .options import DEFAULT_PROVIDER, DEFAULT_TIMEOUT, check_base_url, check_params, check_proxy, parse_chain

__all__ = ["ChatSettings"]


class ChatSettings(Magics):
    """The settings of ChatMagics (``%config ChatMagics``), checked."""

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


def _trait_check(check: Any, value: Any) -> Any:
    try:
        return check(value)
    except ConfigurationError as exc:
        raise TraitError(str(exc)) from None
