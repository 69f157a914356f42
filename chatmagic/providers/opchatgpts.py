"""Opchatgpts (opchatgpts.net): AI Engine without a nonce; the history goes as ``messages``."""

from __future__ import annotations

import secrets
import string
from typing import Any

from .mwai import MwaiProvider

_ALPHABET = string.ascii_lowercase + string.digits


class Opchatgpts(MwaiProvider):
    name = "opchatgpts"
    label = "Opchatgpts"
    url = "https://opchatgpts.net"
    referer_path = "/chatgpt-free-use/"
    default_model = "gpt-3.5-turbo"
    models = ("gpt-3.5-turbo",)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # one chat id per conversation client, as the site's page script keeps one
        self._chat_id = "".join(secrets.choice(_ALPHABET) for _ in range(10))

    def body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        return {
            "botId": "default",
            "chatId": self._chat_id,
            "contextId": 28,
            "customId": None,
            "messages": messages,
            "newMessage": messages[-1]["content"],
            "session": "N/A",
            "stream": True,
        }
