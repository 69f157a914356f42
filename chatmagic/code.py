"""The code in a reply: what ``%%chat -f code`` puts into a new cell."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["INSERTED", "CellCode", "code_blocks", "code_of"]


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


def code_of(markdown: str) -> str:
    """What ``-f code`` puts into the new cell: the reply's code blocks, one after another."""
    return "\n\n".join(code_blocks(markdown))


class CellCode:
    """What ``-f code`` put into a new cell for each cell (by the turn's key), so that running
    the cell again adds no second copy of the same code: only code that differs is inserted."""

    def __init__(self) -> None:
        self._by_key: dict[str, str] = {}

    def is_new(self, key: str | None, code: str) -> bool:
        return key is None or self._by_key.get(key) != code

    def put(self, key: str | None, code: str) -> None:
        if key is not None:
            self._by_key[key] = code


#: the kernel's memory of inserted code (a restart forgets it: the first run inserts again)
INSERTED = CellCode()
