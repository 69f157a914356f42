"""The one streaming mechanism: a reply that changes in place, in a cell or in the panel.

A streaming reply is shown as finished Markdown blocks, each sent once, above an open tail
(the last block, still being written). A view holds the tail's HTML exactly as it was sent,
and each update (a *patch*) carries only what changed. Most patches edit the tail at its end
(a word added to a paragraph, a line to a code block), in the compact form::

    {"n": seq, "a": [length, crc, at, cut, html]}

the view holds a tail of ``length`` with CRC ``crc``; ``at`` units before its end (the closing
``</p>`` or ``</code></pre>`` stays), it removes ``cut`` units and inserts ``html``. A second
of a slow reply so weighs its text and about 45 bytes, 110 with the comm envelope
(:func:`message_cost`); no stylesheet, markup or open block is sent again. Any other change
(blocks finished, a tail started afresh) takes the general form::

    {"n": seq, "b": [length, crc], "k": [keep, html], "t": [keep, html]}

``k`` (finished blocks, placed above the tail once) and ``t`` (the new open tail) are each the
first ``keep`` characters of the tail the view holds, then ``html``; ``b`` says which tail that
is, and is there whenever anything is kept. ``n`` numbers the messages of the item. Lengths
and offsets count UTF-16 code units (JavaScript's string indices); ``crc`` is the low 24 bits
of the CRC-32 of the string's UTF-16-LE bytes (``static/_patch.js`` computes the same): with
the sequence number and the length it tells one tail from another, in 8 digits at most.

Why the numbers. IOPub messages are dropped, not queued, over jupyter_server's rate limit:
a view that missed one would splice the next at the wrong offset, and pieces of escaped
model text (``&lt;img src=x onerror=…``) would join into live markup. So a view applies a
patch only when its ``n`` follows the last one it applied and, when anything of its tail is
kept, that tail has the length and CRC the patch names. The result is then what Python
computed (the view's base and the message are both Python's own). Anything else: the view
keeps showing what it had verified, forgets its copy of the tail and asks for the whole item
(``{"type": "resync"}``); Python answers with the item whole and sends the next tail whole
too. Markup is only ever assembled from pieces that were verified.

The budget (:class:`Pace`, constants in :mod:`chatmagic._budget`) is the same for the cell
and the panel: bytes a character received (:data:`PER_CHAR`) plus :data:`ALLOWANCE`, or one
message a second (:data:`HEARTBEAT`) while text arrives, whichever allows more; at most
:data:`PER_SECOND` messages in a second and one each :data:`MIN_INTERVAL`; the first text at
once. So even a code block written at 18 characters a second changes on screen every second
(for about 8x its length: a message a second costs more than such a reply earns;
bench/stream_watch.py). A cell's plain display updates (chatmagic._cellstream) pay from the
bytes alone: each re-sends the open block, so a message a second would cost many times a
slow reply.
"""

from __future__ import annotations

import json
import secrets
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._budget import ALLOWANCE, HEARTBEAT, MIN_INTERVAL, PER_CHAR, PER_SECOND, RETRY, allowed
from .render import body_html, stable_prefix

__all__ = [
    "ALLOWANCE",
    "HEARTBEAT",
    "MIN_INTERVAL",
    "PER_CHAR",
    "PER_SECOND",
    "LiveReply",
    "Pace",
    "crc",
    "esm",
    "message_cost",
    "short_comm_id",
    "units",
]


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


def short_comm_id() -> str:
    """A comm id (a widget's model id) for a widget that streams: eight random hex digits.

    Every message a widget sends carries its comm id; a uuid's 32 characters would be a fifth of
    a patch that appends a second of a slow reply. 32 random bits keep it unique among a kernel's
    widgets (ipywidgets' own ids are 32-digit uuids, never this short).
    """
    return secrets.token_hex(4)


def units(text: str) -> int:
    """Length in UTF-16 code units, as JavaScript counts a string."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def crc(text: str) -> int:
    """The low 24 bits of the CRC-32 of the UTF-16-LE bytes of ``text`` (``crc24`` in _patch.js)."""
    return zlib.crc32(text.encode("utf-16-le", "surrogatepass")) & 0xFFFFFF


def message_cost(content: Any, comm_id: str = "00000000") -> int:
    """Bytes of the comm message the frontend receives for a widget's custom message ``content``.

    The content of the IOPub ``comm_msg``, serialized as jupyter_client does (``json.dumps``,
    ``ensure_ascii=False``, UTF-8): ``{"data": {"method": "custom", "content": …}, "comm_id": …}``.
    Not counted: the Jupyter message's header, parent header, metadata and signature (about
    600 bytes, the same for every message of every kind). ``comm_id``: as long as the panel's
    and the reply view's (:func:`short_comm_id`).
    """
    wire = {"data": {"method": "custom", "content": content}, "comm_id": comm_id}
    return len(json.dumps(wire, ensure_ascii=False).encode("utf-8", "surrogatepass"))


@dataclass
class Pace:
    """When a streaming item may send, and whether it can afford to (see the module docstring)."""

    spent: int = 0
    next_at: float = float("-inf")
    sent_at: list[float] = field(default_factory=list)
    #: when the last message went
    last: float = float("-inf")
    #: the last look could not afford its message: when to look again (else None)
    retry: float | None = None

    def due(self, now: float, first: bool = False) -> float:
        """When the next message may go (``now`` or earlier: it may go now)."""
        self.sent_at = [t for t in self.sent_at if t > now - 1.0]
        due = now if first else self.next_at
        if self.retry is not None and not first:
            due = max(due, self.retry)
        if len(self.sent_at) >= PER_SECOND:
            due = max(due, self.sent_at[0] + 1.0)
        return due

    def affords(self, cost: int, size: int, now: float | None = None) -> bool:
        """Whether a message of ``cost`` bytes may go once ``size`` characters arrived.

        The bytes allow it, or (given ``now``) none went for :data:`HEARTBEAT` seconds.
        """
        if cost <= allowed(size) - self.spent or (now is not None and now >= self.last + HEARTBEAT):
            return True
        if now is not None:
            self.retry = min(now + RETRY, self.last + HEARTBEAT)
        return False

    def paid(self, cost: int, now: float) -> None:
        self.spent += cost
        self.next_at = now + MIN_INTERVAL
        self.sent_at.append(now)
        self.last = now
        self.retry = None


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
        keep = _common_prefix(self.tail, tail) if self.known else 0
        base = [units(self.tail), crc(self.tail)] if self.known else []
        if not blocks and keep:
            # the common case, in the compact form: the tail edited near its end
            same_end = _common_prefix(self.tail[keep:][::-1], tail[keep:][::-1])
            old, new = self.tail[keep : len(self.tail) - same_end], tail[keep : len(tail) - same_end]
            msg["a"] = [*base, units(self.tail[keep:]), units(old), new]
            return msg
        kept = False
        if blocks:
            keep_blocks = _common_prefix(self.tail, blocks) if self.known else 0
            msg["k"] = [units(blocks[:keep_blocks]), blocks[keep_blocks:]]
            kept = keep_blocks > 0
        msg["t"] = [units(tail[:keep]), tail[keep:]]
        if kept or keep:
            msg["b"] = base
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
