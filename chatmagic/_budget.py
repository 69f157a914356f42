"""What a streaming reply may cost, for the cell and the panel alike (one budget).

Two allowances, and a message may go when either covers it:

- bytes: PER_CHAR bytes for each character received, and ALLOWANCE before any. With PER_CHAR
  under 3 and a small allowance, a reply that arrives fast enough to pay for its updates is
  sent for under three times its length however long it takes;
- time: one message a second (HEARTBEAT) while text arrives, whatever the bytes say. A slow
  reply (a code block at 18 characters a second) earns 45 bytes a second, less than one
  message's fixed part (its comm envelope, 66 bytes); without this, such a reply would
  stand still for seconds. Its cost then is one small message a second (about 110 bytes and the
  new text), more than 3x. A cell without widgets (chatmagic._cellstream) pays more a
  message (a display update: about 250 bytes and its open tail) and caps what it sends so.

At most PER_SECOND messages in any second and one each MIN_INTERVAL seconds; the first text at
once. bench/stream_watch.py prints what both cost.
"""

from __future__ import annotations

__all__ = ["ALLOWANCE", "HEARTBEAT", "MIN_INTERVAL", "PER_CHAR", "PER_SECOND", "RETRY", "allowed"]

PER_CHAR = 2.5
ALLOWANCE = 1024
MIN_INTERVAL = 0.1
PER_SECOND = 10
#: seconds without a message after which the next change goes, affordable or not: the
#: looks come every MIN_INTERVAL at most, so what is on screen never waits over a second
HEARTBEAT = 0.9
#: a message the bytes did not cover is looked at again this much later (more text pays for it)
RETRY = 0.25


def allowed(chars: int) -> float:
    """Bytes a streaming item may have spent once ``chars`` characters arrived (the byte allowance)."""
    return ALLOWANCE + PER_CHAR * chars
