"""What a streaming reply may cost, for the cell and the panel alike (one budget).

Bytes of messages a character received may pay for, and an allowance before any; at most
PER_SECOND messages in any second and one each MIN_INTERVAL seconds (the first text at once).
With PER_CHAR under 3 and a small allowance, the bytes sent while a reply streams stay under
three times its length however long it takes (bench/stream_watch.py).
"""

from __future__ import annotations

__all__ = ["ALLOWANCE", "MIN_INTERVAL", "PER_CHAR", "PER_SECOND"]

PER_CHAR = 2.75
ALLOWANCE = 1024
MIN_INTERVAL = 0.1
PER_SECOND = 10
