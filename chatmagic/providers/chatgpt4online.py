"""Chatgpt4Online (chatgpt4online.org): AI Engine with a REST nonce; history in the prompt."""

from __future__ import annotations

from typing import Any

from ._messages import format_prompt
from .mwai import MwaiProvider


class Chatgpt4Online(MwaiProvider):
    name = "chatgpt4online"
    label = "Chatgpt4Online"
    url = "https://chatgpt4online.org"
    default_model = "gpt-4"
    models = ("gpt-4",)
    uses_nonce = True

    def body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        return {"botId": "default", "newMessage": format_prompt(messages), "stream": True}
