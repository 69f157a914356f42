"""The one streaming mechanism: a reply that changes in place, in a cell or in the panel.

A streaming reply is shown as finished Markdown blocks, each sent once, above an open tail
(the last block, still being written). A view holds the tail's HTML exactly as it was sent,
and each update (a *patch*) carries only what changed::

    {"n": seq, "b": [length, crc], "k": [keep, html, crc], "t": [keep, html, crc]}

``n`` numbers the patches of the item; ``k`` (finished blocks, placed above the tail once)
and ``t`` (the new open tail)
are each the first ``keep`` characters of the tail the view holds, then ``html``. Lengths
and offsets count UTF-16 code units (JavaScript's string indices); ``crc`` is CRC-32 of the
string's UTF-16-LE bytes (``static/_patch.js`` computes the same).

Why the numbers. IOPub messages are dropped, not queued, over jupyter_server's rate limit:
a view that missed one would splice the next at the wrong offset, and pieces of escaped
model text (``&lt;img src=x onerror=…``) would join into live markup. So a view applies a
patch only when its ``n`` follows the last one it applied, the tail it holds has the
``b`` length and CRC (when anything is kept), and each result has the CRC sent. Anything
else: the view keeps showing what it had verified, forgets its copy of the tail and asks for
the whole item (``{"type": "resync"}``); Python answers with the item whole and sends the next
tail whole too. Markup is only ever assembled from pieces that were verified.

The budget (:class:`Pace`, constants in :mod:`chatmagic._budget`) is the same for the cell
and the panel, and for a cell's plain display updates: bytes a character received
(:data:`PER_CHAR`) plus :data:`ALLOWANCE`, at most :data:`PER_SECOND` messages in a second and
one each :data:`MIN_INTERVAL`; the first text at once. Because a patch carries the new text and
not the whole open block, a long paragraph or code block keeps updating within that budget.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._budget import ALLOWANCE, MIN_INTERVAL, PER_CHAR, PER_SECOND
from .render import body_html, stable_prefix

__all__ = ["ALLOWANCE", "MIN_INTERVAL", "PER_CHAR", "PER_SECOND", "LiveReply", "Pace", "crc", "esm", "units"]

#: bytes of a widget message around its content: {"comm_id": "…", "data": {"method": "custom", …}}
ENVELOPE = 90

_STATIC = Path(__file__).with_name("static")


def esm(name: str) -> str:
    """A view's ES module: the shared patch code (``static/_patch.js``), then ``static/NAME``.

    Comment lines and indentation are left out: a cell's view is sent with every reply, and
    its bytes count as bytes sent while streaming.
    """
    source = (_STATIC / "_patch.js").read_text(encoding="utf-8") + (_STATIC / name).read_text(
        encoding="utf-8"
    )
    lines = (line.strip() for line in source.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//"))


def units(text: str) -> int:
    """Length in UTF-16 code units, as JavaScript counts a string."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def crc(text: str) -> int:
    """CRC-32 of the UTF-16-LE bytes of ``text`` (what ``crc32`` in _patch.js computes)."""
    return zlib.crc32(text.encode("utf-16-le", "surrogatepass"))


def message_cost(content: dict[str, Any]) -> int:
    """Bytes a widget message carrying ``content`` puts on the wire (JSON, UTF-8)."""
    return ENVELOPE + len(json.dumps(content, ensure_ascii=False).encode())


@dataclass
class Pace:
    """When a streaming item may send, and whether it can afford to (see the module docstring)."""

    spent: int = 0
    next_at: float = float("-inf")
    sent_at: list[float] = field(default_factory=list)

    def due(self, now: float, first: bool = False) -> float:
        """When the next message may go (``now`` or earlier: it may go now)."""
        self.sent_at = [t for t in self.sent_at if t > now - 1.0]
        due = now if first else self.next_at
        if len(self.sent_at) >= PER_SECOND:
            due = max(due, self.sent_at[0] + 1.0)
        return due

    def affords(self, cost: int, size: int) -> bool:
        return cost <= ALLOWANCE + PER_CHAR * size - self.spent

    def paid(self, cost: int, now: float) -> None:
        self.spent += cost
        self.next_at = now + MIN_INTERVAL
        self.sent_at.append(now)


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass
class LiveReply:
    """What the views hold of one streaming reply, and the patch that brings them up to date.

    Clock-free: the caller passes the time, sends the patch :meth:`patch` returns (its own
    fields added) and confirms it with :meth:`sent`. ``start``: the text offset the item
    begins at (a cell whose earlier blocks are already in outputs of their own).
    """

    fmt: str = "markdown"
    start: int = 0
    pace: Pace = field(default_factory=Pace)
    seq: int = 0
    #: text characters in finished blocks sent, the blocks' HTML and the open tail's
    frozen: int = 0
    blocks: list[str] = field(default_factory=list)
    tail: str = ""
    #: the views hold ``tail`` as sent (not after the item went whole)
    known: bool = False
    _pending: tuple[int, str, str] = (0, "", "")

    def render(self, text: str) -> tuple[int, str, str]:
        """(characters newly finished, their blocks' HTML, the open tail's HTML) for ``text``."""
        rest = text[self.start + self.frozen :]
        done = stable_prefix(rest, self.fmt) if self.fmt != "code" else 0
        # no syntax colours while streaming: they would weigh more than the code (render.markdown_html)
        blocks = body_html(rest[:done], self.fmt, colour=False) if done else ""
        tail = body_html(rest[done:], self.fmt, colour=False) if len(rest) > done else ""
        return done, blocks, tail

    def patch(self, text: str) -> dict[str, Any]:
        """The patch (without ``type``/``id``) for ``text`` so far; empty when nothing changed."""
        done, blocks, tail = self.render(text)
        self._pending = (done, blocks, tail)
        if not blocks and tail == self.tail and self.known:
            return {}
        msg: dict[str, Any] = {"n": self.seq + 1}
        kept = False
        if blocks:
            keep = _common_prefix(self.tail, blocks) if self.known else 0
            msg["k"] = [units(blocks[:keep]), blocks[keep:], crc(blocks)]
            kept = keep > 0
        keep = _common_prefix(self.tail, tail) if self.known else 0
        msg["t"] = [units(tail[:keep]), tail[keep:], crc(tail)]
        if kept or keep:
            msg["b"] = [units(self.tail), crc(self.tail)]
        return msg

    def sent(self, msg: dict[str, Any]) -> None:
        """The patch :meth:`patch` last returned went to the views."""
        if not msg:
            return
        done, blocks, tail = self._pending
        self.seq = msg["n"]
        if blocks:
            self.blocks.append(blocks)
            self.frozen += done
        self.tail, self.known = tail, True

    def went_whole(self) -> None:
        """The item went whole (with :attr:`seq`): the views hold no tail string to patch."""
        self.known = False

    @property
    def html(self) -> str:
        """The reply's body as the views show it: the finished blocks, then the tail."""
        return "".join(self.blocks) + f'<div class="cm-tail">{self.tail}</div>'
