"""The local stand-in of the chat sites: an ``aiohttp.web`` app on 127.0.0.1.

One port, a path prefix per site; a provider's ``base_url`` is
``http://127.0.0.1:PORT/<site>`` (``Sandbox.base_url(site)``; for ``openai`` the API
root ``http://127.0.0.1:PORT/openai/v1``)::

    from chatmagic.sandbox import Sandbox
    async with Sandbox(port=0) as sb:
        sb.base_url("chatgptt")          # 'http://127.0.0.1:PORT/chatgptt'
    sb = Sandbox().start_in_thread()     # for synchronous code; sb.stop() later

Family A (AI Power): chatgptt, chatgptes, chatgptfree. Family B (AI Engine):
chatgpt4online, opchatgpts. ``openai``: OpenAI's chat-completions API (wants the key
``SandboxSettings.openai_api_key``, ``sk-sandbox`` unless set to None). See
docs/sandbox.md for the full reference.

Deterministic replies
---------------------
The server parses the conversation it received (the ``Role: content`` prompt
format ending in ``Assistant:``; Opchatgpts' ``messages`` list) and answers::

    [<site>] You said: <last user message>\\n\\nEarlier messages: <N>.

where N counts the messages before the last user message (for Opchatgpts and
openai ``len(messages) - 1``). Streams send the reply split into words with their
trailing whitespace. Directives in the last user message (removed from the echo):

- ``[[words:N]]``: the reply is ``w1 w2 ... wN `` (N pieces);
- ``[[reply]]text``: the reply is exactly ``text`` (everything after the directive);
- ``[[fault:a,b]]``: inject faults; ``[[delay:SECONDS]]``: pause between pieces;
- OpenAI-compatible sites: ``[[tool:NAME {"arg": 1}]]`` calls a tool (a request with
  ``tools`` and no directive calls the first one), ``[[steps:N]]`` calls again after each
  result; messages ending in ``tool`` results get ``tool_answer_text`` (docs/sandbox.md,
  "Tool calls").

Tokens
------
``usage.prompt_tokens`` is ``count_prompt(messages, tools)``: a toy tokenizer over a
ChatML template, the same counts llama.cpp's ``/tokenize`` and ``/apply-template``,
vLLM's ``/tokenize`` give under ``/llamacpp`` and ``/vllm``; the window is in
``/llamacpp/props``, vLLM's ``max_model_len`` and Ollama's ``/api/show``, and a prompt
over it gets each server's 400 (docs/sandbox.md, "Tokens and context windows").

Faults
------
Chosen by the ``X-Sandbox-Fault`` header, ``?fault=``, a ``/_fault/<a,b>/<site>/``
path prefix, the directive, or ``Sandbox.inject(site, *faults, times=1)``. Names
and meanings: ``chatmagic.sandbox.FAULTS``.

Modes
-----
How real OpenAI-compatible servers differ from OpenAI's API (a reply cut by the token
limit, reasoning, usage chunks of other shapes, LiteLLM's, llama-server's and
llama-cpp-python's ways): chosen exactly like faults, heeded by the OpenAI-compatible
sites only. Names and meanings: ``chatmagic.sandbox.MODES``. The same API is served
under ``/openai`` (wanting a key) and under each local-server preset's name
(``/ollama/v1``, ``/llamacpp/v1``, ``/vllm/v1``, ``/lmstudio/v1``, no key).
"""

from __future__ import annotations

from ._app import make_app
from ._faults import FAULTS, MODES
from ._openai import REFUSAL_TEXT, reasoning_text
from ._proxy import ForwardProxy
from ._reply import reply_text
from ._server import Sandbox
from ._state import OPENAI_APIS, OPENAI_PRESETS, SITES, RecordedRequest, SandboxSettings
from ._tokens import count_prompt, render, tokenize
from ._tools import tool_answer_text

__all__ = [
    "FAULTS",
    "MODES",
    "OPENAI_APIS",
    "OPENAI_PRESETS",
    "REFUSAL_TEXT",
    "SITES",
    "ForwardProxy",
    "RecordedRequest",
    "Sandbox",
    "SandboxSettings",
    "count_prompt",
    "make_app",
    "reasoning_text",
    "render",
    "reply_text",
    "tokenize",
    "tool_answer_text",
]
