"""Deterministic replies: what the stand-in answers, and the directives a prompt may carry.

The reply depends only on what the server received, so a test can predict it
exactly and so prove that the client sent the whole conversation:

    [<site>] You said: <last user message>\n\nEarlier messages: <N>.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "CHATGPTES_INSTRUCTION",
    "Directives",
    "Message",
    "build_reply",
    "parse_directives",
    "parse_prompt",
    "reply_text",
    "split_pieces",
]

# ChatGptEs cannot take a system message, so its clients glue this instruction
# (then a space) in front of every prompt; the echo must not include it.
CHATGPTES_INSTRUCTION = (
    "Your default language is English. Always respond in English unless the user's "
    "message is in a different language. If the user's message is not in English, "
    "respond in the language of the user's message. Maintain this language behavior "
    "throughout the conversation unless explicitly instructed otherwise. User input:"
)

_ROLES = {"System": "system", "User": "user", "Assistant": "assistant"}
_ROLE_LINE = re.compile(r"^(System|User|Assistant):(?: (.*)|)$", re.DOTALL)
_PIECE = re.compile(r"\S+\s*|\s+")
# Directives are only read before a [[reply]] directive: what follows it is verbatim.
_DIRECTIVE = re.compile(r"\[\[(words|fault|delay):([^\]]*)\]\]|\[\[reply\]\]")

# Bounds keep a mistyped directive from tying the server up.
MAX_WORDS = 1_000_000
MAX_DELAY = 60.0


@dataclass(frozen=True)
class Message:
    role: str  # "system", "user" or "assistant"
    content: str


@dataclass
class Directives:
    words: int | None = None
    reply: str | None = None
    faults: list[str] = field(default_factory=list)
    delay: float | None = None


def parse_prompt(prompt: str) -> list[Message]:
    """Split a formatted conversation back into messages.

    A prompt whose last line is ``Assistant:`` is a conversation of
    ``Role: content`` lines (an unprefixed line continues the previous message);
    any other prompt is one user message.
    """
    stripped = prompt.rstrip()
    lines = stripped.split("\n")
    if len(lines) < 2 or lines[-1].rstrip() != "Assistant:":
        return [Message("user", prompt)]
    messages: list[Message] = []
    for line in lines[:-1]:
        m = _ROLE_LINE.match(line)
        if m:
            messages.append(Message(_ROLES[m.group(1)], m.group(2) or ""))
        elif messages:
            last = messages[-1]
            messages[-1] = Message(last.role, f"{last.content}\n{line}")
        else:
            # Text before any role prefix: the best guess is the user speaking.
            messages.append(Message("user", line))
    return messages


def split_last_user(messages: list[Message]) -> tuple[str, int]:
    """The last user message's content and how many messages came before it."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            return messages[i].content, i
    if messages:
        return messages[-1].content, len(messages) - 1
    return "", 0


def parse_directives(text: str) -> tuple[str, Directives]:
    """Remove ``[[...]]`` directives from a message; returns (clean text, directives).

    Raises ValueError for a directive with a malformed argument.
    """
    d = Directives()
    out: list[str] = []
    pos = 0
    for m in _DIRECTIVE.finditer(text):
        out.append(text[pos : m.start()])
        pos = m.end()
        kind, arg = m.group(1), (m.group(2) or "").strip()
        if kind is None:  # [[reply]]: the rest is the reply, untouched
            d.reply = text[pos:]
            pos = len(text)
            break
        if kind == "words":
            if not arg.isdigit():
                raise ValueError(f"[[words:N]] needs a whole number, got {arg!r}")
            d.words = min(int(arg), MAX_WORDS)
        elif kind == "delay":
            try:
                d.delay = min(max(float(arg), 0.0), MAX_DELAY)
            except ValueError:
                raise ValueError(f"[[delay:SECONDS]] needs a number, got {arg!r}") from None
        else:
            d.faults.extend(n.strip() for n in arg.split(",") if n.strip())
    out.append(text[pos:])
    return "".join(out).strip(), d


def reply_text(site: str, last: str, earlier: int) -> str:
    """The echo reply for a last user message preceded by ``earlier`` messages."""
    return f"[{site}] You said: {last}\n\nEarlier messages: {earlier}."


def words_text(n: int) -> str:
    return "".join(f"w{i} " for i in range(1, n + 1))


def build_reply(site: str, last: str, earlier: int) -> tuple[str, Directives]:
    """Reply for a raw last user message (directives still in it)."""
    clean, d = parse_directives(last)
    if d.reply is not None:
        return d.reply, d
    if d.words is not None:
        return words_text(d.words), d
    return reply_text(site, clean, earlier), d


def split_pieces(text: str) -> list[str]:
    """Stream pieces: words with their trailing whitespace."""
    return _PIECE.findall(text)


def strip_instruction(prompt: str) -> str:
    if prompt.startswith(CHATGPTES_INSTRUCTION):
        rest = prompt[len(CHATGPTES_INSTRUCTION) :]
        return rest.removeprefix(" ")
    return prompt
