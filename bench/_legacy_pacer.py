"""The previous streaming display, kept for the simulations that compare against it.

Before chatmagic sent a reply's finished blocks once and patched its open tail
(chatmagic._cellstream, chatmagic._stream), a cell re-sent the whole reply so far in one
display, paced by :class:`UpdatePacer`: at most ten times a second, each once the text has
grown by an eighth, or after 1-5 seconds. ``bench/display_cost.py`` and
``bench/stream_cost.py`` simulate that design with these two pieces; the product uses
neither (issue 17: bench-only code lives in bench/). Tested in tests/test_legacy_pacer.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from chatmagic.present import STYLE, Status, plain_with_status, status_html
from chatmagic.render import body_html

__all__ = ["UpdatePacer", "reply_bundle"]


def reply_bundle(text: str, fmt: str, status: str, *, status_class: str = "") -> dict[str, str]:
    """The display bundle of a whole reply: sanitized HTML and plain text, with a status line."""
    kind = status_class.removeprefix("chatmagic-")
    line = status_html(Status(status, kind)) if status else ""
    body = body_html(text, fmt) if text else ""
    return {
        "text/html": f'{STYLE}<div class="chatmagic-reply">{body}{line}</div>',
        "text/plain": plain_with_status(text, status),
    }


@dataclass
class UpdatePacer:
    """When to re-send a growing text (see the module docstring)."""

    min_interval: float = 0.1
    max_interval: float = 1.0
    chars_per_second: float = 16_000.0
    growth: float = 0.125
    sent_size: int = 0
    sent_at: float = field(default=float("-inf"))
    updates: int = 0

    def due(self, size: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if size <= self.sent_size:
            return False
        if self.sent_size == 0:
            return True
        elapsed = now - self.sent_at
        if elapsed < self.min_interval:
            return False
        # a long text waits longer between time-driven re-sends (each re-send is its size)
        patience = min(self.max_interval * 5, max(self.max_interval, self.sent_size / self.chars_per_second))
        return size >= self.sent_size * (1 + self.growth) or elapsed >= patience

    def sent(self, size: int, now: float | None = None) -> None:
        self.sent_size = size
        self.sent_at = time.monotonic() if now is None else now
        self.updates += 1

    def wait_time(self, now: float | None = None) -> float:
        """How long a waiting loop may sleep before the next update could be due."""
        now = time.monotonic() if now is None else now
        return max(0.01, self.sent_at + self.min_interval - now) if self.sent_size else 0.25
