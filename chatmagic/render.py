"""Rendering model text safely, and pacing a streaming display.

Model output is untrusted, and every output of a live session is trusted by
JupyterLab (``<script>`` in ``text/html`` or Markdown runs). So we render Markdown
ourselves with raw HTML disabled (markdown-it-py, ``html=False``), turn images into
links (an image would load a remote address), and pass the result through nh3 with
``http``/``https``/``mailto`` links only. Every bundle also carries ``text/plain``.

:class:`UpdatePacer` decides when a growing reply is worth re-sending: the first text
at once, then at most ten updates a second, each once the text has grown by an eighth
since the last update, or when it has waited long enough (one second for short texts,
longer as the text grows: one second per 16,000 characters, five at most). Updates that
follow growth form a geometric series, so a fast reply re-sends about nine times its
length however many chunks it came in (10,000 chunks: a few dozen updates, not 10,000);
a slow reply also gets the time-driven updates, one per 1-5 seconds of streaming, so the
reader never watches a stale cell for long.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

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


@lru_cache(maxsize=1)
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt(
        "commonmark",
        {"html": False, "linkify": False, "typographer": False, "highlight": highlight},
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
    """Syntax colours for a fenced block, as inline styles (outputs carry no stylesheet).

    Returns "" (markdown-it then escapes the code itself) for an unknown language,
    a huge block, or no Pygments.
    """
    if not lang or len(code) > _HIGHLIGHT_LIMIT:
        return ""
    try:
        from pygments import highlight as pyg_highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import get_lexer_by_name
        from pygments.util import ClassNotFound
    except ImportError:
        return ""
    try:
        lexer = get_lexer_by_name(lang.split()[0])
    except ClassNotFound:
        return ""
    return str(pyg_highlight(code, lexer, HtmlFormatter(nowrap=True, noclasses=True)))


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


def markdown_html(text: str) -> str:
    """Markdown to safe HTML."""
    return sanitize(_markdown().render(text))


def text_html(text: str) -> str:
    return f'<pre class="chatmagic-text">{html.escape(text)}</pre>'


def code_html(text: str) -> str:
    """The reply as code: a lone fenced block is unwrapped (and coloured), the rest verbatim."""
    code, lang = strip_fence(text)
    coloured = highlight(code, lang) if lang else ""
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


def body_html(text: str, fmt: str) -> str:
    if fmt == "text":
        return text_html(text)
    if fmt == "code":
        return code_html(text)
    try:
        return markdown_html(text)
    except Exception:  # noqa: BLE001 - a renderer bug must never hide the reply
        return text_html(text)


_STYLE = (
    "<style>.chatmagic-status{color:var(--jp-ui-font-color2,#777);font-size:85%;"
    "margin-top:.3em}.chatmagic-error{color:var(--jp-error-color1,#c00)}"
    ".chatmagic-stopped{color:var(--jp-warn-color1,#a60)}</style>"
)


def reply_bundle(text: str, fmt: str, status: str, *, status_class: str = "") -> dict[str, str]:
    """The display bundle of a reply: sanitized HTML and plain text, with a status line."""
    cls = f"chatmagic-status {status_class}".strip()
    parts = [_STYLE, '<div class="chatmagic-reply">', body_html(text, fmt) if text else ""]
    if status:
        parts.append(f'<div class="{cls}">{html.escape(status)}</div>')
    parts.append("</div>")
    plain = text if not status else (f"{text}\n\n— {status}" if text else f"— {status}")
    return {"text/html": "".join(parts), "text/plain": plain}


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


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
