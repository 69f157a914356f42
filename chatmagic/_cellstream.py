"""A reply streaming into a notebook cell by plain display updates, and the stylesheet it carries.

Where a cell's reply view answers (chatmagic._replyview), a reply streams as patches
(chatmagic._stream), as in the panel. Elsewhere (no widgets: nbclient, ``jupyter execute``)
a reply streamed into a notebook cell costs what it weighs (:class:`ReplyStream`).
Markdown is made of blocks, and a block followed by another block will not change: it
is sent once, in an output of its own that is never sent again (render.stable_prefix);
only the open tail (the last block: a paragraph being written, an unfinished code fence
or table) stays in the display that is updated. A long open block is cut too, so that an
update re-sends a short tail: a code fence after a complete line (the pieces join without
a seam), a paragraph after a sentence (it goes on at the next line). The tail is drawn
without syntax colours; the pieces and the final carry them. Every message is paid from
a budget that grows with the text received (``per_char`` bytes a character, plus a small
allowance), so the bytes sent while streaming stay a fixed multiple of the reply however
long it takes; but a reply too slow to pay for a message a second (an update costs about
250 bytes: bench/stream_watch.py) still changes every second (the heartbeat, at most
``heartbeat_bytes`` a message beyond the budget). At most ten messages a second; the first
text at once. The final update (the tail with the status line, the whole reply as plain
text and the record for ``%chat restore``) is the one message outside the budget.

The stylesheet (present.STYLE, about 2.9 kB) is saved with the notebook wherever it is
sent, so it is not sent with every reply: :data:`SHEET` sends it once per kernel session,
in an output of its own above the first reply (again when that cell runs again). A
``<style>`` in an output styles the whole page in JupyterLab, Notebook 7 (every cell stays
in the page: windowing mode ``contentVisibility``), VS Code's output webview and nbconvert's
HTML, so the replies below take it too. Every other reply carries only
present.FALLBACK_STYLE (under 200 bytes of zero-specificity rules): where the full sheet is
in the page it changes nothing, and where it is not (that first output cleared or deleted)
the status line is still small and muted and an error still red.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ._budget import ALLOWANCE, HEARTBEAT, MIN_INTERVAL, PER_CHAR, PER_SECOND
from .present import STYLE, Status, plain_with_status, status_html
from .render import body_html, stable_prefix

__all__ = ["SHEET", "Op", "ReplyStream", "SheetOnce", "message_size"]


class SheetOnce:
    """Which reply of the kernel session carries the whole stylesheet (see the module docstring)."""

    def __init__(self) -> None:
        #: the cell that carries it ("" when cells have no id); None until a reply has
        self.cell: str | None = None

    def claim(self, cell_id: str | None) -> bool:
        """Whether the reply of ``cell_id`` carries the sheet: the session's first, or that cell again.

        Running the carrying cell again replaces its outputs, the sheet with them: so it
        carries the sheet again.
        """
        if self.cell is None or (cell_id and cell_id == self.cell):
            self.cell = cell_id or ""
            return True
        return False

    def reset(self) -> None:
        """The next reply carries the sheet (a new kernel session, or a test)."""
        self.cell = None


#: the kernel session's one record of where the stylesheet went
SHEET = SheetOnce()


def message_size(bundle: dict[str, str]) -> int:
    """Bytes of the content of the display message carrying ``bundle``, as jupyter_client packs it.

    ``{"data": bundle, "metadata": {}, "transient": {"display_id": …}}`` (JSON, UTF-8); not
    counted: the message's header, parent header and signature, the same for every message.
    """
    content = {"data": bundle, "metadata": {}, "transient": {"display_id": _DISPLAY_ID}}
    return len(json.dumps(content, ensure_ascii=False).encode("utf-8", "surrogatepass"))


#: a display id as IPython makes it (uuid4 hex)
_DISPLAY_ID = "0" * 32
#: bytes of a display message's content around its bundle
_ENVELOPE = message_size({})


@dataclass
class Op:
    """One display message to send, in order.

    ``freeze``: the current tail display becomes finished blocks, never sent again;
    ``open``: a new tail display below it; ``update``: the tail display shows the newest text.
    """

    kind: str
    bundle: dict[str, str]
    #: the text offset this op brings the display to (freeze: the end of the finished blocks)
    upto: int
    size: int
    #: paid by the heartbeat, not by the bytes (ReplyStream.beat_spent)
    beat: bool = False


@dataclass
class ReplyStream:
    """What a notebook cell sends while a reply streams (see the module docstring).

    Clock-free and IPython-free: the caller asks :meth:`step` with the text so far, sends
    the ops it returns in order, and confirms each with :meth:`sent`. An op not confirmed
    (Ctrl-C between two) leaves the state as it was, so the final bundle still covers every
    character not yet finished in an output of its own.

    The outputs of a reply, top to bottom: finished blocks (HTML only, each sent once),
    then the tail, whose last update carries the status line, the whole reply as plain
    text and the record. The stylesheet goes with the first output and the final update.
    """

    fmt: str = "markdown"
    #: bytes of display messages allowed per character received, and before any; the rate
    #: cap: messages in any second, and the time between two looks (chatmagic._budget)
    per_char: float = PER_CHAR
    allowance: int = ALLOWANCE
    per_second: int = PER_SECOND
    min_interval: float = MIN_INTERVAL
    #: seconds without a message after which the next change goes though the bytes do not
    #: cover it, if it costs at most ``heartbeat_bytes`` (the bound beyond the budget: one such
    #: message, or a freeze's pair, a second; bench/stream_watch.py prints what it costs)
    #: (half a look early: a look comes every ``min_interval``, and a message counts from when
    #: it went, after its rendering: the look at HEARTBEAT after it goes)
    heartbeat: float = HEARTBEAT - MIN_INTERVAL / 2
    heartbeat_bytes: int = 1536
    #: finished blocks (characters) worth an output of their own: below it, they stay in the tail
    freeze_at: int = 128
    #: an open paragraph longer than this (characters) is cut after a sentence (the line
    #: breaks there: not often); an open code fence longer than ``cut_code_at`` after its last
    #: complete line (the pieces join without a seam): each update then re-sends a short tail
    cut_at: int = 512
    cut_code_at: int = 256
    #: text offset up to which the reply is in finished outputs
    frozen: int = 0
    #: bytes sent so far (display message contents, as in the IOPub messages); of them, paid
    #: by the heartbeat (at most ``heartbeat_bytes`` a ``heartbeat``)
    spent: int = 0
    beat_spent: int = 0
    #: displays made: the first one, then one per new tail
    outputs: int = 0
    next_at: float = field(default=float("-inf"))
    #: when the last messages went (as confirmed by sent())
    _recent: list[float] = field(default_factory=list)
    _freezing: int = 0
    #: a code fence cut open (see _cut_open_block): its opening line, put back before the tail
    reopen: str = ""
    _reopening: str = ""
    #: the tail continues the piece above it (a block cut open): drawn without a seam
    joined: bool = False
    _joining: bool = False
    #: when the last message went (sent())
    _last: float = field(default=float("-inf"))
    _frozen_chars: int = 0
    _frozen_bytes: int = 0
    _shown: tuple[int, str] = (0, "")
    _seen: tuple[int, str] = (-1, "")
    #: the stylesheet is in the page: in an output of its own (see :meth:`style`), or an earlier reply's
    styled: bool = False
    #: what the final update carries besides: present.FALLBACK_STYLE when an earlier reply of
    #: the session carried the stylesheet (then ``styled`` too: it is in the page)
    fallback: str = ""

    def style(self, now: float | None = None) -> dict[str, str]:
        """An output of its own, sent once before :meth:`start`, that carries the stylesheet.

        Without it the first output carries the stylesheet and every update of it pays
        its size again (about 3 kB a message: most of a young reply's budget).
        """
        self.styled = True
        bundle = {"text/html": STYLE, "text/plain": ""}
        size = message_size(bundle)
        # a fixed cost of every reply, whatever its length: the text's allowance stays whole
        self.spent += size
        self.allowance += size
        if now is not None:  # a message like any other for the rate cap
            self._recent.append(now)
        return bundle

    def _bundle(
        self, text: str, status: str | None, *, cont: bool = False, more: bool = False, colour: bool = True
    ) -> dict[str, str]:
        """An output's HTML; ``colour=False`` for the open tail (its code is coloured once frozen)."""
        # without a style output, the first output carries the stylesheet for those below it
        style = STYLE if self.outputs <= 1 and not self.styled else ""
        body = body_html(text, self.fmt, colour=colour) if text else ""
        if not colour:  # the language names the colours: without them, 26 bytes an update for nothing
            body = _LANGUAGE.sub("<pre><code>", body)
        line = status_html(status) if status else ""
        return {"text/html": f"{style}{_opening(cont, more)}{body}{line}</div>"}

    def start(self, status: str, now: float | None = None) -> dict[str, str]:
        """The first display: the status line alone (sent at ``now``: it counts towards the rate)."""
        style = "" if self.styled else STYLE
        bundle = {
            "text/html": f'{style}<div class="chatmagic-reply">{status_html(status)}</div>',
            "text/plain": plain_with_status("", status),
        }
        self.spent += message_size(bundle)
        self.outputs = 1
        self._shown = (0, status)
        if now is not None:
            self.next_at = now + self.min_interval
            self._recent.append(now)
        return bundle

    def final(self, text: str, status: Status) -> dict[str, str]:
        """The last update of the tail: its text and the final status; the whole reply as plain text.

        The finished outputs above carry HTML only, so a frontend that shows plain text
        shows the reply once, here, and one that shows HTML shows the outputs in order.
        """
        body = body_html(self.reopen + text[self.frozen :], self.fmt) if len(text) > self.frozen else ""
        style = self.fallback + ("" if self.styled else STYLE)
        return {
            "text/html": f"{style}{_opening(self.joined, False)}{body}{status_html(status)}</div>",
            "text/plain": plain_with_status(text, status.text),
        }

    def for_view(self, text: str) -> str:
        """``text`` as the reply view takes it over from offset :attr:`frozen` (chatmagic._replyview).

        A code fence cut open starts again with its opening line, put back before the tail:
        else the view would draw the fence's remaining lines as a paragraph.
        """
        return text[: self.frozen] + self.reopen + text[self.frozen :] if self.reopen else text

    @property
    def showing_text(self) -> bool:
        """Whether the reply's text has been shown (until then, the first text goes at once)."""
        return self._shown[0] > 0

    def wait_time(self, now: float) -> float:
        """Seconds until the next look: the next message allowed, and at most ten looks a second."""
        return max(self.min_interval, self.next_at - now)

    def step(self, text: str, status: str, now: float) -> list[Op]:
        """The messages to send now for ``text`` so far (often none).

        Finished pieces go out first, in a batch: the tail display becomes them and a new
        tail opens below. A message goes when the bytes cover it, or when the last one went
        ``heartbeat`` seconds ago (then the cheapest that shows the new text). An update of
        the tail may only spend what is left once the freezing of the whole tail is paid for
        (``reserve``), so that finished pieces never wait for money spent re-sending them.
        """
        size = len(text)
        first_text = self._shown[0] == 0 and size > 0
        beat = self.showing_text and size > self._shown[0] and now - self._last >= self.heartbeat
        if ((size, status) == self._seen and not beat) or (now < self.next_at and not first_text):
            return []
        if not self._room(1, now):
            return []
        # the decisions below depend on the text and the budget only: not asked again until they change
        self._seen = (size, status)
        budget = self.allowance + self.per_char * size - self.spent
        # the tail as rendered: a code fence cut open earlier starts again with its opening line
        tail = self.reopen + text[self.frozen :]
        finished, closing, reopen, joins = (0, "", "", False) if first_text else self._cut(tail)
        if finished:
            # a piece cut out of an open block joins the next without a seam (style.REPLY_CSS)
            freeze = self._bundle(tail[:finished] + closing, None, cont=self.joined, more=joins)
            self.outputs += 1  # the new tail is drawn as the output it will be
            opened = self._bundle(reopen + tail[finished:], status, cont=joins, colour=False)
            self.outputs -= 1
            cost = message_size(freeze), message_size(opened)
            payer = self._payer(sum(cost), budget, beat)
            if payer is not None:
                if not self._room(2, now):
                    self._seen = (-1, "")  # a matter of time: ask again
                    return []
                self._reopening, self._joining = reopen, joins
                # in the text: the reopened line is not in it
                upto = self.frozen + finished - len(self.reopen)
                return [Op("freeze", freeze, upto, cost[0], payer), Op("open", opened, size, cost[1], payer)]
        if (size, status) == self._shown:
            return []
        reserve = self._ratio() * len(tail)
        if not (first_text or beat) and budget < _ENVELOPE + len(tail) + reserve:
            return []
        update = self._bundle(tail, status, cont=self.joined, colour=False)
        cost_update = message_size(update)
        payer = False if first_text else self._payer(cost_update, budget - reserve, beat)
        return [] if payer is None else [Op("update", update, size, cost_update, payer)]

    def _payer(self, cost: int, budget: float, beat: bool) -> bool | None:
        """Who pays ``cost`` now: the bytes (False), the heartbeat (True), or no one (None).

        The heartbeat's messages are charged to the bytes too (which then wait until they
        are repaid) and counted apart (``beat_spent``). A heartbeat message over
        ``heartbeat_bytes`` waits for the bytes, which are then not in debt for the heartbeat's:
        a tail that grew long (no sentence end to cut at) never waits for that debt.
        """
        if cost <= budget:
            return False
        if beat and cost <= self.heartbeat_bytes:
            return True
        return False if beat and cost <= budget + self.beat_spent else None

    def _cut(self, tail: str) -> tuple[int, str, str, bool]:
        """Where the tail may be frozen now: ``(cut, closing, reopen, joins)``; ``cut`` 0: nowhere.

        Finished blocks of ``freeze_at`` characters or more; else the open block when it is
        long: a code fence after its last complete line (at ``cut_code_at``: the pieces join
        without a seam), a paragraph after its last sentence (at ``cut_at``: the line
        breaks there, so not often). ``joins``: the cut is inside a block.
        """
        finished = stable_prefix(tail, self.fmt)
        if finished >= self.freeze_at:
            return finished, "", "", False
        open_block = len(tail) - finished
        if open_block <= min(self.cut_code_at, self.cut_at):
            return 0, "", "", False
        cut, closing, reopen = _cut_open_block(tail, finished, self.fmt)
        if cut == finished or open_block <= (self.cut_code_at if reopen else self.cut_at):
            return 0, "", "", False
        return cut, closing, reopen, True

    def _room(self, count: int, now: float) -> bool:
        """Whether ``count`` more messages keep every one-second window at ``per_second`` or fewer."""
        recent = [t for t in self._recent if t > now - 1.0]
        self._recent[:] = recent
        return len(recent) + count <= self.per_second

    def _ratio(self) -> float:
        """Bytes a character of finished blocks has cost so far (1.5 before the first)."""
        if not self._frozen_chars:
            return 1.5
        return max(1.0, self._frozen_bytes / self._frozen_chars)

    def sent(self, op: Op, now: float) -> None:
        """``op`` went out at ``now``: count it, and move the finished line once the new tail is open."""
        self.spent += op.size
        self.beat_spent += op.size if op.beat else 0
        self._last = now
        self.next_at = max(self.next_at, now) + self.min_interval
        self._recent.append(now)
        if op.kind == "freeze":
            self._freezing = op.upto
            self._frozen_chars += op.upto - self.frozen
            self._frozen_bytes += op.size
        else:
            if op.kind == "open":
                self.frozen = self._freezing
                self.reopen, self.joined = self._reopening, self._joining
                self.outputs += 1
            self._shown = (op.upto, self._seen[1])


def _opening(cont: bool, more: bool) -> str:
    """A reply output's opening tag: ``cont`` continues the piece above, ``more`` goes on below."""
    classes = "chatmagic-reply" + (" chatmagic-cont" if cont else "") + (" chatmagic-more" if more else "")
    return f'<div class="{classes}">'


_LANGUAGE = re.compile(r'<pre><code class="language-[^"]*">')
_FENCE = re.compile(r"( {0,3})(`{3,}|~{3,})([^\n]*)\n")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]? +(?=[A-Z])")


def _cut_open_block(tail: str, start: int, fmt: str) -> tuple[int, str, str]:
    """Where a long open block starting at ``start`` can be cut: ``(cut, closing, reopen)``.

    A code fence: after its last complete line that leaves no multi-line string or comment
    open (the pieces are coloured apart); the piece gets a closing fence and the rest starts
    again with the opening line. A paragraph: after its last sentence whose
    text leaves no code span, emphasis or link open. ``(start, "", "")`` when neither fits.
    """
    block = tail[start:]
    fence = _FENCE.match(block) if fmt == "markdown" else None
    if fence is not None and fence.group(2)[0] not in fence.group(3):
        end = len(block)
        while (end := block.rfind("\n", 0, end)) >= fence.end():
            if _closed(block[fence.end() : end + 1]):
                return start + end + 1, fence.group(1) + fence.group(2) + "\n", fence.group(0)
        return start, "", ""
    if fmt != "markdown" or not block[:1].isalnum() or "\n\n" in block:
        return start, "", ""
    for m in reversed(list(_SENTENCE_END.finditer(block))):
        piece = block[: m.end()]
        if piece.count("`") % 2 == 0 and piece.count("*") % 2 == 0 and piece.count("_") % 2 == 0:
            if piece.count("[") == piece.count("]"):
                return start + m.end(), "", ""
    return start, "", ""


def _closed(code: str) -> bool:
    """Whether ``code`` leaves no triple-quoted string, template literal or block comment open."""
    return (
        code.count('"""') % 2 == 0
        and code.count("'''") % 2 == 0
        and code.count("`") % 2 == 0
        and code.count("/*") <= code.count("*/")
    )
