"""The code in a reply: what ``%%chat -f code`` puts into a new cell."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["code_blocks"]


@lru_cache(maxsize=1)
def _parser() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark")


def code_blocks(markdown: str) -> list[str]:
    """The reply's code blocks in order, fences and prose removed.

    Fenced blocks count whatever their language; indented blocks too. A reply that is
    all code but has no fence is not guessed at: it gives no block.
    """
    blocks = []
    for token in _parser().parse(markdown):
        if token.type in ("fence", "code_block") and token.content.strip():
            blocks.append(token.content.rstrip("\n"))
    return blocks
