"""A long Markdown reply that reads like a model's: the text the display benchmarks stream.

Deterministic (a seeded generator): headings, paragraphs with inline code and bold, bullet
and numbered lists, Python code fences, tables. ``markdown_reply(60_000)`` is about 60,000
characters in about 9,000 words, the size of ``[[words:10000]]``.
"""

from __future__ import annotations

import random
import re

_WORDS = (
    "the a of to and in is that for it as with on be by this are from or can which an not "
    "function value data file request server client cache error result list table stream "
    "reply model token notebook kernel cell output memory thread loop queue lock batch update "
    "display message browser network session provider timeout retry budget block paragraph "
    "simple fast slow long short first last next every each other same new old small large "
    "returns reads writes keeps sends waits checks builds parses renders counts stops starts "
    "because when while after before until unless since although however therefore instead"
).split()
_NAMES = ("fetch", "parse", "render", "count", "merge", "stream", "flush", "split", "load", "store")
_ARGS = ("text", "items", "size", "timeout", "path", "limit", "chunk", "offset")
_PIECE = re.compile(r"\S+\s*|\s+")


def pieces(text: str) -> list[str]:
    """The stand-in's stream pieces: words with their trailing whitespace (chatmagic.sandbox)."""
    return _PIECE.findall(text)


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 22))]
    if rng.random() < 0.3:
        i = rng.randrange(len(words))
        words[i] = f"`{rng.choice(_NAMES)}()`"
    if rng.random() < 0.2:
        i = rng.randrange(len(words))
        words[i] = f"**{words[i]}**"
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice(".....?!")


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(2, 6)))


def _code(rng: random.Random) -> str:
    name, a, b = rng.choice(_NAMES), rng.choice(_ARGS), rng.choice(_ARGS)
    lines = [
        "```python",
        f"def {name}_{rng.choice(_ARGS)}({a}, {b}=None, limit: int = {rng.randint(2, 999)}):",
        f'    """{_sentence(rng)}"""',
        "    result = []",
        f"    for item in {a}:",
        "        if item is None:",
        "            continue  # nothing to do",
        f"        result.append(item * {rng.randint(2, 9)})",
    ]
    for _ in range(rng.randint(0, 8)):
        lines.append(
            rng.choice(
                (
                    f"    {b} = len(result) + {rng.randint(1, 99)}",
                    f'    print(f"{{len(result)}} items", {b!r})',
                    f"    if {b} > limit:",
                    "        raise ValueError('too many')",
                    f"    # {' '.join(rng.choice(_WORDS) for _ in range(6))}",
                    "    result.sort(key=str)",
                )
            )
        )
    lines += ["    return result", "```"]
    return "\n".join(lines)


def _list(rng: random.Random) -> str:
    numbered = rng.random() < 0.4
    items = [
        f"{i}. {_sentence(rng)}" if numbered else f"- {_sentence(rng)}" for i in range(1, rng.randint(3, 7))
    ]
    return "\n".join(items)


def _table(rng: random.Random) -> str:
    rows = ["| step | what it does | cost |", "|---|---|---:|"]
    for _ in range(rng.randint(3, 8)):
        rows.append(f"| `{rng.choice(_NAMES)}` | {_sentence(rng)[:60]} | {rng.randint(1, 900)} ms |")
    return "\n".join(rows)


def markdown_reply(chars: int = 60_000, seed: int = 7) -> str:
    """About ``chars`` characters of Markdown, always the same for the same arguments."""
    rng = random.Random(seed)
    blocks: list[str] = []
    size = 0
    section = 0
    while size < chars:
        if section == 0 or rng.random() < 0.12:
            section += 1
            block = f"## {section}. {_sentence(rng)[:50].rstrip('.?!')}"
        else:
            block = rng.choices((_paragraph, _list, _code, _table), weights=(6, 2, 2, 1))[0](rng)
        blocks.append(block)
        size += len(block) + 2
    return "\n\n".join(blocks)
