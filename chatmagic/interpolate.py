"""Opt-in ``{name}`` interpolation that never mangles code, JSON or LaTeX.

``{name}``, ``{name.attr}``, ``{name[0]}``, ``{name['key']}`` and ``{Out[3]}`` expand
from a namespace (the user's). Nothing is evaluated: the name is looked up, attributes
are read with ``getattr`` and indexes must be literals. Everything else stays exactly as
written:

- braces whose content is not such a reference (``{"a": 1}``, ``{x: 1}``, ``{}``);
- references to unknown names, missing attributes or keys;
- ``{{name}}``, which is how to write a literal ``{name}``: it is left as written;
- braces inside Markdown code (fenced blocks and inline spans) and math (``$…$``,
  ``$$…$$``), and braces right after a letter, digit, backslash, ``^``, ``_`` or ``}``
  (LaTeX such as ``\\frac{a}{b}``, ``x^{n}``, ``a_{i}``).

Long values are shortened in the middle with the one marker every cut carries, never in
the middle of a secret (``chatmagic._text.cut_middle``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._text import cut_middle
from .summaries import Deadline, as_text

DEFAULT_MAX_CHARS = 2000

_REF = re.compile(r"""\{(?P<ref>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[(?:-?\d+|'[^'\\\]]*'|"[^"\\\]]*")\])*)\}""")
_PART = re.compile(r"""\.(?P<attr>[A-Za-z_]\w*)|\[(?P<index>[^\]]+)\]""")
# regions never touched: fenced code, inline code, display and inline math
_PROTECTED = re.compile(
    r"(?ms)^(?P<fence>```|~~~).*?^(?P=fence)[^\n]*$|``.+?``|`[^`\n]+`|\$\$.+?\$\$|(?<!\\)\$[^$\n]+(?<!\\)\$"
)


@dataclass
class Expansion:
    """The text to send, and what was replaced (for ``--dry-run`` and the record)."""

    text: str
    replaced: list[str] = field(default_factory=list)
    shortened: list[str] = field(default_factory=list)


_MISSING = object()


def resolve(ref: str, namespace: Mapping[str, Any]) -> Any:
    """The value of a reference like ``df.shape`` or ``Out[3]``, or ``_MISSING``."""
    head = re.match(r"[A-Za-z_]\w*", ref)
    assert head is not None
    if head.group(0) not in namespace:
        return _MISSING
    value = namespace[head.group(0)]
    for part in _PART.finditer(ref, head.end()):
        try:
            if part.group("attr") is not None:
                value = getattr(value, part.group("attr"))
            else:
                value = value[ast.literal_eval(part.group("index"))]
        except Exception:  # noqa: BLE001 - any failure means "not a reference": keep the text
            return _MISSING
    return value


def shorten(text: str, max_chars: int, what: str = "") -> tuple[str, bool]:
    """``text`` within ``max_chars`` (0: no limit), cut as every value is; and whether it was cut."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text, False
    return cut_middle(text, max_chars, what), True


def interpolate(text: str, namespace: Mapping[str, Any], max_chars: int = DEFAULT_MAX_CHARS) -> Expansion:
    """Expand the references in ``text`` that name something in ``namespace``."""
    out = Expansion(text="")
    pieces: list[str] = []
    pos = 0
    deadline = Deadline()  # for all the values of this message together
    for region in _PROTECTED.finditer(text):
        pieces.append(_expand(text[pos : region.start()], namespace, max_chars, out, deadline))
        pieces.append(region.group(0))
        pos = region.end()
    pieces.append(_expand(text[pos:], namespace, max_chars, out, deadline))
    out.text = "".join(pieces)
    return out


def _expand(
    text: str, namespace: Mapping[str, Any], max_chars: int, out: Expansion, deadline: Deadline
) -> str:
    def replace(m: re.Match[str]) -> str:
        start, end = m.start(), m.end()
        before = text[start - 1] if start else ""
        after = text[end] if end < len(text) else ""
        if before == "{" and after == "}":  # {{name}}: a literal, left as written
            return m.group(0)
        if before and (before.isalnum() or before in "\\^_}"):  # LaTeX arguments
            return m.group(0)
        value = resolve(m.group("ref"), namespace)
        if value is _MISSING:
            return m.group(0)
        ref = m.group("ref")
        # tables, arrays and long containers go as summaries, never as their full text; an
        # object that raises when read is a note; a slow one is left out when time is up
        shown = deadline.run(lambda: as_text(value, name=ref))
        rendered, cut = shorten(shown if shown is not None else deadline.left_out(ref), max_chars, ref)
        out.replaced.append(ref)
        if cut or shown is None:
            out.shortened.append(ref)
        return rendered

    return _REF.sub(replace, text)
