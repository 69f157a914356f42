"""Rules about text said once, at the bottom of the package: the exchange keys.

An exchange's key says which earlier exchange a new turn replaces, in the conversation, the
log and a restored notebook alike, so every place reads one scheme:

- ``cell:<id>`` (:func:`cell_key`): the frontend's cell id. Running the cell again replaces
  its exchange wherever it is in the conversation.
- ``text:<hash>`` (:func:`text_key`): a cell's text, where the frontend sends no cell id
  (terminal IPython, some frontends). The same text asked again later is a new exchange, so
  such a key replaces only the exchange in the same place (:func:`is_text_key`).
- ``panel:<random>`` (:func:`panel_key`): a message sent from the panel, never replaced.

This module imports nothing of chatmagic, so any layer may use it.
"""

from __future__ import annotations

import hashlib
import uuid

__all__ = ["TEXT_KEY_PREFIX", "cell_key", "is_text_key", "panel_key", "text_key"]

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
