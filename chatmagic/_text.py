"""Rules about text said once, at the bottom of the package: the exchange keys, and the cuts.

An exchange's key says which earlier exchange a new turn replaces, in the conversation, the
log and a restored notebook alike, so every place reads one scheme:

- ``cell:<id>`` (:func:`cell_key`): the frontend's cell id. Running the cell again replaces
  its exchange wherever it is in the conversation.
- ``text:<hash>`` (:func:`text_key`): a cell's text, where the frontend sends no cell id
  (terminal IPython, some frontends). The same text asked again later is a new exchange, so
  such a key replaces only the exchange in the same place (:func:`is_text_key`).
- ``panel:<random>`` (:func:`panel_key`): a message sent from the panel, never replaced.

Cuts: a text too long for its place is cut visibly, in one of two ways.

- :func:`cut_middle` (what goes to a model: a value, printed output, a cell, an error) keeps
  both ends within the budget, the marker included, and says in the one marker how much of
  what went: ``[… 4,900 characters of the value left out …]`` on a line of its own.
- :func:`cut_end` / :func:`cut_start` (one line a person reads: a listing, an error excerpt,
  the thinking streaming now) keep one end and mark the cut with "…".

No cut leaves a piece of a secret on either side (``_secrets.trim_cut``): redaction finds
whole values only, so a secret cut in two would otherwise go out in pieces.

This module imports only chatmagic._secrets, so any layer above the ground may use it.
"""

from __future__ import annotations

import hashlib
import re
import uuid

from ._secrets import trim_cut

__all__ = [
    "CUT_MARK",
    "TEXT_KEY_PREFIX",
    "cell_key",
    "cut_end",
    "cut_ends",
    "cut_middle",
    "cut_start",
    "is_text_key",
    "panel_key",
    "text_key",
]

#: keys of exchanges made from a cell's text, where the frontend sends no cell id
TEXT_KEY_PREFIX = "text:"
_CELL_KEY_PREFIX = "cell:"
_PANEL_KEY_PREFIX = "panel:"


def cell_key(cell_id: str) -> str:
    """The key of the exchange a cell with this id made."""
    return _CELL_KEY_PREFIX + cell_id


def text_key(text: str) -> str:
    """The key of the exchange made from a cell's ``text`` where there is no cell id."""
    # surrogatepass: a cell may hold a lone surrogate; its key must still be made
    return TEXT_KEY_PREFIX + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def panel_key() -> str:
    """A new key for a message sent from the panel (each one is a new exchange)."""
    return _PANEL_KEY_PREFIX + uuid.uuid4().hex


def is_text_key(key: str | None) -> bool:
    """True for a key made from a cell's text: it names an exchange in one place only."""
    return key is not None and key.startswith(TEXT_KEY_PREFIX)


# -- cuts ------------------------------------------------------------------------------


def cut_middle(text: str, budget: int, what: str = "") -> str:
    """``text`` within ``budget`` characters; a cut keeps both ends and says how much of
    ``what`` went (e.g. "the value", "cell 3")."""
    if len(text) <= budget:
        return text
    return cut_ends(text, text, len(text), budget, what)


def cut_ends(start: str, end: str, total: int, budget: int, what: str = "") -> str:
    """The first and last characters, within ``budget``, of a text of ``total`` characters
    that begins with ``start`` and ends with ``end`` (the whole text, or the two ends kept
    of it, as the printed output of a cell is), with the marker between them."""
    # room for the longest marker this cut can need: it says how much went, after trim_cut
    keep = max(0, budget - len(_marker(total, what)))
    first = keep * 2 // 3
    head, tail = trim_cut(start[:first], end[max(0, len(end) - (keep - first)) :] if keep > first else "")
    return head + _marker(total - len(head) - len(tail), what) + tail


def _marker(omitted: int, what: str) -> str:
    return f"\n[… {omitted:,} characters of {what or 'this'} left out …]\n"


#: finds the marker a middle cut leaves (the glass box notes a --context item cut to fit)
CUT_MARK = re.compile(r"\[… [\d,]+ characters of .{0,80}? left out …\]")


def cut_end(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: its beginning, then "…"."""
    if len(text) <= limit:
        return text
    head, _ = trim_cut(text[: max(0, limit - 1)].rstrip())
    return head + "…"


def cut_start(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters: "…", then its end."""
    if len(text) <= limit:
        return text
    _, tail = trim_cut("", text[len(text) - max(0, limit - 1) :])
    return "…" + tail
