"""One tool call of a turn, as a card shows it and an exchange keeps it.

The data shape every skin draws (the cell's cards, the panel, ``%chat history``, exports)
and every store keeps (the notebook record, the log), made by chatmagic.toolloop. A kept
step is only ever shown again: nothing reads an approval from it.

Core, and plain: it imports nothing (loading the extension draws cards without the core).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["ENDED", "STATES", "ToolStep", "is_image_uri"]

#: what a step can be: asked, running, and how it ended
STATES = ("waiting", "running", "done", "failed", "declined", "refused", "skipped", "stopped")
#: the states that end a step
ENDED = frozenset(STATES) - {"waiting", "running"}


#: the only images a card draws: PNG or JPEG as a ``data:`` URI (a kept step is data from a file)
_IMAGE_URI = re.compile(r"data:image/(?:png|jpeg);base64,[A-Za-z0-9+/]+={0,2}")


def is_image_uri(uri: object) -> bool:
    """A PNG or JPEG ``data:`` URI and nothing else."""
    return isinstance(uri, str) and _IMAGE_URI.fullmatch(uri) is not None


@dataclass
class ToolStep:
    """One call of one turn, as a card shows it and an exchange keeps it (``to_dict``)."""

    #: the call's id on the wire (the ``tool_call_id`` of its answer)
    id: str
    name: str
    #: the arguments as the model sent them (JSON text, in full, secrets scrubbed)
    arguments: str
    #: which model call of the turn made it (1, 2, ...)
    step: int
    #: how much of the turn's text had been said when the call came (where a card goes)
    at: int = 0
    #: one of :data:`STATES`
    state: str = "running"
    #: the question's id while (and after) the user was asked: ``%chat approve t1``
    ask: str | None = None
    #: who decided it ran or not: "user", "always", "read-only", "no one to ask", "stopped"
    by: str | None = None
    #: the tool's own run time
    ms: float | None = None
    #: what the model was told: the result (bounded, scrubbed, marked), or why it did not run
    result: str = ""
    #: one line, when it was refused, failed or declined
    error: str | None = None
    #: what the tool displayed as an image (``data:image/png;base64,...``), drawn in its card
    #: only (the model is told "Displayed (image/png)"): at most two, each bounded
    images: list[str] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolStep:
        """A kept step (from a record, the log): only shown, never run; unknown keys dropped."""
        known = {f.name for f in fields(cls)}
        step = cls(**{k: v for k, v in data.items() if k in known})
        if step.state not in ENDED:  # saved while it waited or ran: it did not end here
            step.state = "stopped"
        images = step.images if isinstance(step.images, list) else []
        step.images = [uri for uri in images if is_image_uri(uri)]
        return step
