"""The stand-in's model: a toy tokenizer and a chat template, used for every count it reports.

One rule keeps the counts honest: a chat answer's ``usage.prompt_tokens`` is
``len(tokenize(render(messages, tools), add_special=True))``, so a client that asks
llama.cpp's ``/apply-template`` then ``/tokenize`` (with ``add_special: true``), or vLLM's
``/tokenize`` with ``messages``, gets exactly the number the chat answer reports.

The tokenizer
-------------
Deterministic and stateless: special tokens (``<s>``, ``</s>``, ``<|im_start|>``,
``<|im_end|>``) are single tokens when ``parse_special`` is on; other text is cut by
``_PIECE`` (a word with at most one leading space, one punctuation mark with at most one
leading space, or one whitespace character), and a piece over ``MAX_PIECE_BYTES`` of
UTF-8 is cut again at character boundaries (as BPE splits rare long words). A piece's id
is its UTF-8 bytes read as a big-endian integer behind a ``0x01`` marker byte, so
detokenizing needs no vocabulary and ids stay below 2**56 (under vLLM's 2**63 bound);
special tokens have the small ids 1 to 4.

The template
------------
ChatML, the template llama.cpp falls back to ("By default, the ChatML template will be
used", tools/server/README.md), with tools and tool calls written the way Qwen2.5's
template writes them (``# Tools`` and ``<tools>`` in the system turn, ``<tool_call>``
in the assistant turn, ``<tool_response>`` in a user turn). llama.cpp's
``/apply-template`` returns the text without the BOS (its ``common_chat_templates_apply``
strips a leading BOS, and ``/tokenize`` adds it back with ``add_special``); vLLM's chat
``/tokenize`` tokenizes the template's own text, which starts with the BOS, with
``add_special_tokens`` false by default. Both therefore count the same.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "BOS",
    "CHAT_TEMPLATE",
    "count_prompt",
    "detokenize",
    "pieces",
    "render",
    "tokenize",
]

BOS, EOS, IM_START, IM_END = "<s>", "</s>", "<|im_start|>", "<|im_end|>"
SPECIAL = {BOS: 1, EOS: 2, IM_START: 3, IM_END: 4}
_SPECIAL_TEXT = {v: k for k, v in SPECIAL.items()}
_SPECIAL_RE = re.compile("|".join(re.escape(s) for s in SPECIAL))
_PIECE = re.compile(r" ?\w+| ?[^\w\s]|\s", re.UNICODE)
MAX_PIECE_BYTES = 6
_MARK = 0x01

#: shown by llama.cpp's ``/props`` as ``chat_template`` (the Jinja text of the same template)
CHAT_TEMPLATE = (
    "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0]['role'] == 'system' %}"
    "{{- messages[0]['content'] + '\\n\\n' }}{%- endif %}{{- '# Tools\\n\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' + tool | tojson }}{%- endfor %}{{- '\\n</tools><|im_end|>\\n' }}"
    "{%- endif %}{%- for message in messages %}{%- if message.role == 'tool' %}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}"
    "{%- elif not (tools and loop.first and message.role == 'system') %}"
    "{{- '<|im_start|>' + message.role + '\\n' + (message.content or '') }}{%- for call in message.tool_calls %}"
    "{{- '\\n<tool_call>\\n' + {'name': call.function.name, 'arguments': call.function.arguments} | tojson"
    " + '\\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _piece_id(piece: str) -> int:
    return int.from_bytes(bytes([_MARK]) + piece.encode("utf-8"), "big")


def _id_piece(token: int) -> str | None:
    if token in _SPECIAL_TEXT:
        return _SPECIAL_TEXT[token]
    if token < 256:
        return None
    raw = token.to_bytes((token.bit_length() + 7) // 8, "big")
    if raw[0] != _MARK:
        return None
    try:
        return raw[1:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _split_long(piece: str) -> list[str]:
    if len(piece.encode("utf-8")) <= MAX_PIECE_BYTES:
        return [piece]
    out: list[str] = []
    current = ""
    for ch in piece:
        if current and len((current + ch).encode("utf-8")) > MAX_PIECE_BYTES:
            out.append(current)
            current = ""
        current += ch
    return [*out, current] if current else out


def pieces(text: str, *, parse_special: bool = True) -> list[str]:
    """The text of each token, in order (joined they give ``text`` back)."""
    out: list[str] = []
    spans = _SPECIAL_RE.split(text) if parse_special else [text]
    specials = _SPECIAL_RE.findall(text) if parse_special else []
    for i, span in enumerate(spans):
        for p in _PIECE.findall(span):
            out.extend(_split_long(p))
        if i < len(specials):
            out.append(specials[i])
    return out


def tokenize(text: str, *, add_special: bool = False, parse_special: bool = True) -> list[tuple[int, str]]:
    """(id, piece) of each token; ``add_special`` puts the BOS first, as llama.cpp does."""
    found = [
        (SPECIAL[p] if parse_special and p in SPECIAL else _piece_id(p), p)
        for p in pieces(text, parse_special=parse_special)
    ]
    return [(SPECIAL[BOS], BOS), *found] if add_special else found


def detokenize(tokens: list[int]) -> str | None:
    """The text of the ids, or None when one is not an id this tokenizer gives."""
    found = [_id_piece(t) for t in tokens]
    return None if any(p is None for p in found) else "".join(p for p in found if p is not None)


def _content_text(content: Any) -> str:
    """A message's text as the template writes it: a string, or the text parts of a content list (images as a marker)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, dict) and isinstance(p.get("text"), str):
                parts.append(p["text"])
            elif isinstance(p, dict) and p.get("type") == "image_url":
                parts.append("<image>")
        return "".join(parts)
    return ""


def _call_text(call: Any) -> str:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return ""
    arguments = function.get("arguments")
    try:
        args: Any = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        args = arguments  # a model's malformed arguments are shown as they came
    body = json.dumps({"name": function.get("name"), "arguments": args}, ensure_ascii=False)
    return f"\n<tool_call>\n{body}\n</tool_call>"


def render(messages: list[dict[str, Any]], tools: list[Any] | None = None, *, bos: bool = False) -> str:
    """The prompt the model reads: ChatML, tools written the Qwen2.5 way, ending in the assistant's turn."""
    out = [BOS] if bos else []
    rest = messages
    if tools:
        system = ""
        if messages and messages[0].get("role") in ("system", "developer"):
            system, rest = _content_text(messages[0].get("content")) + "\n\n", messages[1:]
        listed = "".join("\n" + json.dumps(t, ensure_ascii=False) for t in tools)
        out.append(f"{IM_START}system\n{system}# Tools\n\n<tools>{listed}\n</tools>{IM_END}\n")
    for m in rest:
        role = m.get("role")
        if role == "tool":
            out.append(
                f"{IM_START}user\n<tool_response>\n{_content_text(m.get('content'))}\n</tool_response>{IM_END}\n"
            )
            continue
        calls = m.get("tool_calls")
        calls = calls if isinstance(calls, list) else []
        text = _content_text(m.get("content")) + "".join(_call_text(c) for c in calls)
        out.append(f"{IM_START}{role}\n{text}{IM_END}\n")
    out.append(f"{IM_START}assistant\n")
    return "".join(out)


def count_prompt(messages: list[dict[str, Any]], tools: list[Any] | None = None) -> int:
    """``usage.prompt_tokens`` of a chat request: the rendered prompt with the BOS."""
    # the same as len(tokenize(..., add_special=True)), without making the ids
    return len(pieces(render(messages, tools))) + 1
