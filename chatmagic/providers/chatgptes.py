"""ChatGptEs (chatgpt.es): AI Power behind Cloudflare, so curl_cffi as Chrome.

No system message: a fixed instruction goes before the prompt; history is sent as one
``Human:`` line. Tokens are looked for in several places, with a fallback when absent.
"""

from __future__ import annotations

import json
import re

from ._curl import CurlTransport
from .wpaicg import WpaicgProvider

INSTRUCTION = (
    "Your default language is English. Always respond in English unless the user's message "
    "is in a different language. If the user's message is not in English, respond in the "
    "language of the user's message. Maintain this language behavior throughout the "
    "conversation unless explicitly instructed otherwise. User input:"
)


class ChatGptEs(WpaicgProvider):
    name = "chatgptes"
    label = "ChatGptEs"
    url = "https://chatgpt.es"
    default_model = "gpt-4o"
    models = ("gpt-4", "gpt-4o", "gpt-4o-mini")
    # the site answers in one JSON object: the reply arrives whole, not streamed
    supports_stream = False
    supports_system_message = False
    supports_message_history = False
    transport_class = CurlTransport
    nonce_patterns = tuple(
        re.compile(p)
        for p in (
            r"""<input[^>]+name=["']_wpnonce["'][^>]+value=["']([^"']+)["']""",
            r""""_wpnonce"\s*:\s*"([^"]+)\"""",
            r"""var\s+wpaicg_nonce\s*=\s*['"]([^'"]+)['"]""",
            r"""wpaicg_nonce\s*:\s*['"]([^'"]+)['"]""",
            r"""nonce\s*[=:]\s*["']([a-zA-Z0-9]+)["']""",
        )
    )
    post_id_patterns = tuple(
        re.compile(p)
        for p in (
            r"""<input[^>]+name=["']post_id["'][^>]+value=["']([^"']+)["']""",
            r""""post_id"\s*:\s*"?(\d+)""",
            r"""var\s+post_id\s*=\s*['"]?(\d+)""",
        )
    )
    fallback_tokens = ("8cf9917be2", "106")

    def prompt(self, messages: list[dict[str, str]]) -> str:
        return f"{INSTRUCTION} {super().prompt(messages)}"

    def history(self, messages: list[dict[str, str]]) -> str | None:
        return json.dumps([f"Human: {super().prompt(messages)}"])
