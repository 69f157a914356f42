"""The built-in providers, by module path: data the registry (``providers/__init__``) and the
check of endpoint names (:mod:`.endpoints`, an endpoint may not take a built-in's name) both
read. It sits below both, so that the endpoints never import the registry back."""

from __future__ import annotations

__all__ = ["BUILTIN"]

BUILTIN: dict[str, str] = {
    "chatgptt": "chatmagic.providers.chatgptt:ChatGptt",
    "chatgptes": "chatmagic.providers.chatgptes:ChatGptEs",
    "chatgpt4online": "chatmagic.providers.chatgpt4online:Chatgpt4Online",
    "chatgptfree": "chatmagic.providers.chatgptfree:ChatgptFree",
    "opchatgpts": "chatmagic.providers.opchatgpts:Opchatgpts",
    "openai": "chatmagic.providers.openai:OpenAICompatible",
}
