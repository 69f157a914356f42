"""Rendering model text safely, and deciding what a streaming display sends.

Model output is untrusted, and every output of a live session is trusted by
JupyterLab (``<script>`` in ``text/html`` or Markdown runs). So we render Markdown
ourselves with raw HTML disabled (markdown-it-py, ``html=False``), turn images into
links (an image would load a remote address), and pass the result through nh3 with
``http``/``https``/``mailto`` links only. Code blocks are coloured with Pygments as
light markup (``<b>`` keywords, ``<i>`` comments, one-letter classes) that
the stylesheet (chatmagic.style.CSS) colours after the JupyterLab theme.

This module only renders: it imports nothing of the look (present) or the skins. A
reply streaming into a cell is :mod:`chatmagic._cellstream` (plain display updates) and
:mod:`chatmagic._stream` (patches); :func:`stable_prefix` says which of its blocks are finished.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import Any

__all__ = [
    "FORMATS",
    "body_html",
    "code_html",
    "highlight",
    "markdown_html",
    "sanitize",
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
    """Syntax colours for a fenced block, as markup that the stylesheet (chatmagic.style.CSS) colours.

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
