"""ChatGptt (chatgptt.me): AI Power over aiohttp; tokens in data- attributes."""

from __future__ import annotations

from .wpaicg import WpaicgProvider


class ChatGptt(WpaicgProvider):
    name = "chatgptt"
    label = "ChatGptt"
    url = "https://chatgptt.me"
    referer_path = "/chat"
    default_model = "gpt-4o"
    models = ("gpt-4", "gpt-4o", "gpt-4o-mini")
    # the site answers in one JSON object: the reply arrives whole, not streamed
    supports_stream = False
