"""Rendering model text safely, and deciding what a streaming display sends.

Model output is untrusted, and every output of a live session is trusted by
JupyterLab (``<script>`` in ``text/html`` or Markdown runs). So we render Markdown
ourselves with raw HTML disabled (markdown-it-py, ``html=False``), turn images into
links (an image would load a remote address), and pass the result through nh3 with
``http``/``https``/``mailto`` links only. Code blocks are coloured with Pygments as
light markup (``<b>`` keywords, ``<i>`` comments, one-letter classes) that
:data:`chatmagic.present.CSS` colours after the JupyterLab theme.

Where a cell's reply view answers (chatmagic._replyview), a reply streams as patches
(chatmagic._stream), as in the panel. Elsewhere (no widgets: nbclient, ``jupyter execute``)
a reply streamed into a notebook cell costs what it weighs (:class:`ReplyStream`).
Markdown is made of blocks, and a block followed by another block will not change: it
is sent once, in an output of its own that is never sent again (:func:`stable_prefix`);
only the open tail (the last block: a paragraph being written, an unfinished code fence
or table) stays in the display that is updated. Every message is paid from a budget that
grows with the text received (``per_char`` bytes a character, plus a small allowance),
so the bytes sent while streaming stay a fixed multiple of the reply however long it
takes; at most ten messages a second; the first text at once. The final update (the tail
with the status line, the whole reply as plain text and the record for ``%chat
restore``) is the one message outside the budget.

:class:`UpdatePacer` is the previous, simpler rule, kept for the simulations in
``bench/display_cost.py`` and ``bench/stream_cost.py`` that compare against it: re-send
the whole text at most ten times a second, each once it has grown by an eighth, or after
1-5 seconds.
"""

from __future__ import annotations

import html
import json
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ._budget import ALLOWANCE, MIN_INTERVAL, PER_CHAR, PER_SECOND
from .present import STYLE, Status, plain_with_status, seconds, status_html

__all__ = [
    "FORMATS",
    "ReplyStream",
    "UpdatePacer",
    "body_html",
    "code_html",
    "highlight",
    "markdown_html",
    "reply_bundle",
    "sanitize",
    "seconds",
    "stable_prefix",
    "strip_fence",
    "text_html",
]

FORMATS = ("markdown", "text", "code")

_ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "dd",
    "del",
    "details",
    "div",
    "dl",
    "dt",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "kbd",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "span",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "pre": {"class"},
    "div": {"class"},
    "span": {"class", "style"},
    "th": {"style"},
    "td": {"style"},
    "ol": {"start"},
}


@lru_cache(maxsize=2)
def _markdown(colour: bool = True) -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt(
        "commonmark",
        {"html": False, "linkify": False, "typographer": False, "highlight": highlight if colour else None},
    )
    md.enable(["table", "strikethrough"])

    def image(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        # an <img> would fetch its address as soon as it is shown: show a link instead
        token = tokens[idx]
        src = md.normalizeLinkText(token.attrGet("src") or "")
        alt = html.escape(token.content or "image")
        return f'<a href="{html.escape(src)}">[image: {alt}]</a>'

    md.add_render_rule("image", image)
    return md


_HIGHLIGHT_LIMIT = 50_000


def highlight(code: str, lang: str, attrs: Any = None) -> str:
    """Syntax colours for a fenced block, as markup that :data:`chatmagic.present.CSS` colours.

    Only what gets a colour is wrapped, and runs of one kind are merged: keywords in
    ``<b>`` and comments in ``<i>`` (the commonest tokens, and bold keywords and italic
    comments are right even where no stylesheet applies), strings, builtins, names of
    functions and classes, decorators, tags and attributes in a one-letter class. A few
    bytes a token, not an inline style: colouring a block must not multiply what a streamed
    reply costs. Returns "" (markdown-it then escapes the code itself) for an unknown
    language, a huge block, or no Pygments.
    """
    if not lang or len(code) > _HIGHLIGHT_LIMIT:
        return ""
    try:
        from pygments.lexers import get_lexer_by_name
        from pygments.util import ClassNotFound
    except ImportError:
        return ""
    try:
        lexer = get_lexer_by_name(lang.split()[0])
    except ClassNotFound:
        return ""
    out: list[str] = []
    run: list[str] = []  # the text of the open span
    current, gap = "", ""  # the open span's class, whitespace held after it

    def close() -> None:
        if run:
            body = html.escape("".join(run), quote=False)
            if current in ("b", "i"):
                out.append(f"<{current}>{body}</{current}>")
            else:
                out.append(f'<span class="{current}">{body}</span>' if current else body)
            run.clear()

    for ttype, value in lexer.get_tokens(code):
        cls = _token_class(ttype)
        if not cls and current and not value.strip():
            gap += value  # whitespace between two tokens of one class joins their span
            continue
        if cls != current:
            close()
            if gap:
                out.append(html.escape(gap, quote=False))
            current = cls
        elif gap:
            run.append(gap)
        gap = ""
        run.append(value)
    close()
    if gap:
        out.append(html.escape(gap, quote=False))
    return "".join(out)


@lru_cache(maxsize=1)
def _token_classes() -> tuple[tuple[Any, str], ...]:
    from pygments import token as t

    # the first match wins; "b" and "i" are tags (keywords, comments), the rest classes
    return (
        (t.Comment, "i"),
        (t.String, "s"),
        (t.Keyword, "b"),
        (t.Operator.Word, "b"),
        (t.Name.Builtin, "n"),
        (t.Name.Function, "f"),
        (t.Name.Class, "f"),
        (t.Name.Decorator, "d"),
        (t.Name.Tag, "t"),
        (t.Name.Attribute, "a"),
    )


@lru_cache(maxsize=256)
def _token_class(ttype: Any) -> str:
    for parent, cls in _token_classes():
        if ttype in parent:
            return cls
    return ""


def sanitize(fragment: str) -> str:
    import nh3

    return nh3.clean(
        fragment,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        # only what syntax colours and table alignment need: no url(), no layout
        filter_style_properties={"text-align", "color", "font-weight", "font-style"},
    )


def markdown_html(text: str, *, colour: bool = True) -> str:
    """Markdown to safe HTML; ``colour=False``: code blocks without syntax colours.

    A streaming reply is drawn without colours (chatmagic._stream): colour markup weighs
    two to four times the code it colours, and the finished reply is drawn with them.
    """
    return sanitize(_markdown(colour).render(text))


def text_html(text: str) -> str:
    return f'<pre class="chatmagic-text">{html.escape(text)}</pre>'


def code_html(text: str, *, colour: bool = True) -> str:
    """The reply as code: a lone fenced block is unwrapped (and coloured), the rest verbatim."""
    code, lang = strip_fence(text)
    coloured = highlight(code, lang) if lang and colour else ""
    if coloured:
        return sanitize(f'<pre class="chatmagic-text"><code>{coloured}</code></pre>')
    return text_html(code)


def strip_fence(text: str) -> tuple[str, str]:
    """``(code, language)`` of a reply that is one fenced block; else ``(text, "")``."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```") and stripped.count("```") == 2:
        body = stripped[3:-3]
        if "\n" not in body:
            return body, ""
        info, code = body.split("\n", 1)
        return code, info.strip()
    return text, ""


def body_html(text: str, fmt: str, *, colour: bool = True) -> str:
    if fmt == "text":
        return text_html(text)
    if fmt == "code":
        return code_html(text, colour=colour)
    try:
        return markdown_html(text, colour=colour)
    except Exception:  # noqa: BLE001 - a renderer bug must never hide the reply
        return text_html(text)


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


# -- a reply streaming into a notebook cell ---------------------------------------------

_LINE_END = re.compile(r"\r\n?|\n")


def stable_prefix(text: str, fmt: str = "markdown") -> int:
    """How much of the start of ``text`` more text can no longer change: whole blocks.

    Markdown: the blocks before the last one (a block followed by another block is
    finished). Only complete lines are looked at, so a line still being written never
    decides where a block ends. Plain text: the complete lines. Code (one listing whose
    fence is unwrapped at the end): nothing until the end.

    The one thing a later block can still change in an earlier one is a link reference
    definition (``[x]: http://…``) written after its use; such a link then stays text.
    """
    if fmt == "code":
        return 0
    end = len(text)
    # a CR at the very end may be the first half of a CRLF: that line is not complete yet
    cut = max(text.rfind("\n"), text.rfind("\r", 0, end - 1)) + 1
    if fmt == "text" or cut == 0:
        return cut
    complete = text[:cut]
    md = _markdown()
    tokens: list[Any] = []
    # markdown-it's own normalization keeps line numbers: CRLF, CR and LF are each one line end
    md.block.parse(_LINE_END.sub("\n", complete).replace("\0", "\ufffd"), md, {}, tokens)
    firsts = [t.map[0] for t in tokens if t.level == 0 and t.nesting >= 0 and t.map]
    if len(firsts) < 2:
        return 0
    line, pos = firsts[-1], 0
    for _ in range(line):
        m = _LINE_END.search(complete, pos)
        if m is None:  # cannot happen: the block starts on a line of ``complete``
            return 0
        pos = m.end()
    return pos


#: bytes of an IOPub display message's content around its data (metadata, display id)
_ENVELOPE = 96


def message_size(bundle: dict[str, str]) -> int:
    """Bytes of a display message's content carrying ``bundle`` (JSON, UTF-8), as the bench counts."""
    return len(json.dumps(bundle, ensure_ascii=False).encode()) + _ENVELOPE


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
    #: finished text (characters) worth an output of its own: below it, it stays in the tail
    freeze_at: int = 256
    #: an open block longer than this (characters) is cut at a sentence or line end
    cut_at: int = 1024
    #: text offset up to which the reply is in finished outputs
    frozen: int = 0
    #: bytes sent so far (display message contents, as in the IOPub messages)
    spent: int = 0
    #: displays made: the first one, then one per new tail
    outputs: int = 0
    next_at: float = field(default=float("-inf"))
    #: when the last messages went (as confirmed by sent())
    _recent: list[float] = field(default_factory=list)
    _freezing: int = 0
    #: a code fence cut open (see _cut_open_block): its opening line, put back before the tail
    reopen: str = ""
    _reopening: str = ""
    _frozen_chars: int = 0
    _frozen_bytes: int = 0
    _shown: tuple[int, str] = (0, "")
    _seen: tuple[int, str] = (-1, "")
    #: the stylesheet went in an output of its own (see :meth:`style`)
    styled: bool = False

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

    def _bundle(self, text: str, status: str | None) -> dict[str, str]:
        # without a style output, the first output carries the stylesheet for those below it
        style = STYLE if self.outputs <= 1 and not self.styled else ""
        body = body_html(text, self.fmt) if text else ""
        line = status_html(status) if status else ""
        return {"text/html": f'{style}<div class="chatmagic-reply">{body}{line}</div>'}

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
        style = "" if self.styled else STYLE
        return {
            "text/html": f'{style}<div class="chatmagic-reply">{body}{status_html(status)}</div>',
            "text/plain": plain_with_status(text, status.text),
        }

    @property
    def showing_text(self) -> bool:
        """Whether the reply's text has been shown (until then, the first text goes at once)."""
        return self._shown[0] > 0

    def wait_time(self, now: float) -> float:
        """Seconds until the next look: the next message allowed, and at most ten looks a second."""
        return max(self.min_interval, self.next_at - now)

    def step(self, text: str, status: str, now: float) -> list[Op]:
        """The messages to send now for ``text`` so far (often none).

        Finished blocks go out first, in a batch: the tail display becomes them and a new
        tail opens below. An update of the tail may only spend what is left once the
        freezing of the whole tail is paid for (``reserve``), so that finished blocks
        never wait for money spent re-sending them.
        """
        size = len(text)
        first_text = self._shown[0] == 0 and size > 0
        if (size, status) == self._seen or (now < self.next_at and not first_text):
            return []
        if not self._room(1, now):
            return []
        # the decisions below depend on the text and the budget only: not asked again until they change
        self._seen = (size, status)
        budget = self.allowance + self.per_char * size - self.spent
        # the tail as rendered: a code fence cut open earlier starts again with its opening line
        tail = self.reopen + text[self.frozen :]
        finished = stable_prefix(tail, self.fmt) if not first_text else 0
        closing, reopen = "", ""
        if finished < self.freeze_at and not first_text and len(tail) - finished > self.cut_at:
            # one long open block (a paragraph, a code fence) would be re-sent whole each time:
            # its finished sentences or lines become an output of their own instead
            finished, closing, reopen = _cut_open_block(tail, finished, self.fmt)
        if finished >= self.freeze_at:
            if budget < 2 * _ENVELOPE + len(tail):  # it costs at least that: do not render in vain
                return []
            freeze = self._bundle(tail[:finished] + closing, None)
            self.outputs += 1  # the new tail is drawn as the output it will be
            opened = self._bundle(reopen + tail[finished:], status)
            self.outputs -= 1
            cost = message_size(freeze), message_size(opened)
            if sum(cost) > budget:
                return []
            if not self._room(2, now):
                self._seen = (-1, "")  # a matter of time: ask again
                return []
            self._reopening = reopen
            upto = self.frozen + finished - len(self.reopen)  # in the text: the reopened line is not in it
            return [Op("freeze", freeze, upto, cost[0]), Op("open", opened, size, cost[1])]
        if (size, status) == self._shown:
            return []
        reserve = self._ratio() * len(tail)
        if not first_text and budget < _ENVELOPE + len(tail) + reserve:
            return []
        update = self._bundle(tail, status)
        cost_update = message_size(update)
        if first_text or cost_update + reserve <= budget:
            return [Op("update", update, size, cost_update)]
        return []

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
        self.next_at = max(self.next_at, now) + self.min_interval
        self._recent.append(now)
        if op.kind == "freeze":
            self._freezing = op.upto
            self._frozen_chars += op.upto - self.frozen
            self._frozen_bytes += op.size
        else:
            if op.kind == "open":
                self.frozen = self._freezing
                self.reopen = self._reopening
                self.outputs += 1
            self._shown = (op.upto, self._seen[1])


_FENCE = re.compile(r"( {0,3})(`{3,}|~{3,})([^\n]*)\n")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]? +(?=[A-Z])")


def _cut_open_block(tail: str, start: int, fmt: str) -> tuple[int, str, str]:
    """Where a long open block starting at ``start`` can be cut: ``(cut, closing, reopen)``.

    A code fence: after its last complete line; the piece gets a closing fence and the
    rest starts again with the opening line. A paragraph: after its last sentence whose
    text leaves no code span, emphasis or link open. ``(start, "", "")`` when neither fits.
    """
    block = tail[start:]
    fence = _FENCE.match(block) if fmt == "markdown" else None
    if fence is not None and fence.group(2)[0] not in fence.group(3):
        end = block.rfind("\n")
        if end > fence.end():
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
