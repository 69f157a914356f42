"""ChatgptFree (chatgptfree.ai): AI Power, streamed, through curl_cffi as Chrome.

Sends only the six required fields; accepts ``timeout`` and ``cookies``.
"""

from __future__ import annotations

from ._curl import CurlTransport
from .wpaicg import WpaicgProvider


class ChatgptFree(WpaicgProvider):
    name = "chatgptfree"
    label = "ChatgptFree"
    url = "https://chatgptfree.ai"
    referer_path = "/chat/"
    default_model = "gpt-4o-mini-2024-07-18"
    models = ("gpt-4o-mini-2024-07-18",)
    model_aliases = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
    supports_system_message = False
    supports_message_history = False
    transport_class = CurlTransport
    send_identity = False
