"""The text a streaming reply shows: scrubbed as it arrives, a secret's possible start held back.

What is kept of a reply is scrubbed when the turn ends (``Turn._finish``); what is *shown* while
it streams is read from the same turn (``turn.text``, ``turn.reasoning``) by every view: the
cell, its reply view, the panel, terminal IPython. So the turn holds only shown text, which
:class:`LiveScrub` makes from what the server sends (``chatmagic.session.run`` feeds it):

- what is decided goes through :func:`chatmagic._secrets.scrub`, the one rule of what a
  secret is (values from the environment, the shapes, passwords in URLs);
- a tail that may still become a secret is held back until it is decided: a piece that is the
  beginning of a secret's value, or of a shape's fixed start (``sk``, ``AKI``, ``-----BEG``,
  ``:/``), or a shape begun and still taking its characters (``sk-`` then key characters, a
  private key block without its END line, ``https://user:`` before the ``@``). Completed, it
  shows as ``[redacted …]``; diverged, as it came; at the end of the reply (:meth:`end`), as
  the final scrub decides, and a piece of a secret's value of ``MIN_SECRET_LENGTH`` characters
  or more left at the end is redacted too (a reply cut in the middle of an echoed key).

The shown text only grows by appending: nothing shown is taken back. Each piece costs the
work of the region that can still change (the held tail, the new piece and a few characters
before them, which the shapes' "no letter before it" tests read), never the whole reply.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ._secrets import AUTH_MARKS, MIN_SECRET_LENGTH, SHAPE_MARKS, scrub, shape_spans

__all__ = ["LiveScrub"]

#: characters before the held tail that a scrub of it reads: a URL's scheme (kept, its
#: userinfo replaced), the shapes' "no letter before it" tests
CONTEXT = 64
#: a private key block longer than this is cut short by the scrub's own rule (its pattern)
_BLOCK_LIMIT = 16_100

_WORD = re.compile(r"[A-Za-z0-9]")
_WORD_ = re.compile(r"[A-Za-z0-9_]")
_WORD_DASH = re.compile(r"[A-Za-z0-9_-]")
_AUTH = "authorization"

#: each shape of ``_secrets.SHAPES`` (and a URL's userinfo, an Authorization header) as it may
#: stand unfinished at the end of the text: its fixed starts, what may not come just before
#: (None: anything may), and what the text from a start to its end matches while undecided
_OPEN: tuple[tuple[tuple[str, ...], re.Pattern[str] | None, re.Pattern[str]], ...] = (
    (
        ("-----BEGIN ",),
        None,
        # a header still being written, or a private key's header and then base64 lines, no
        # END line yet (another character ends it: the scrub takes the block so far)
        re.compile(
            r"-----BEGIN (?:[A-Z0-9 ]*-{0,4}|(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:(?!-----END )[A-Za-z0-9+/=\s\\:,.-])*(?:-----END [A-Z0-9 ]*-{0,4})?)"
        ),
    ),
    (("AKIA", "ASIA", "ABIA", "ACCA"), _WORD, re.compile(r"[A-Z0-9]{4,20}")),
    (
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        _WORD_,
        re.compile(r"gh[pousr]_[A-Za-z0-9]{0,255}|github_pat_[A-Za-z0-9_]{0,255}"),
    ),
    (("xox",), _WORD, re.compile(r"xox(?:[abposr](?:-[A-Za-z0-9-]{0,255})?)?")),
    (("sk-",), _WORD_DASH, re.compile(r"sk-[A-Za-z0-9_-]*")),
    (("://",), None, re.compile(r"://[^/\s@:]*(?::[^/\s@]*)?")),
    (
        (_AUTH,),
        _WORD,
        re.compile(
            r"(?i)authorization[\"']?\s*(?:[:=,]\s*[\"']?(?:[a-z]{0,6}(?:\s+[A-Za-z0-9+/=._~-]*)?)?)?"
        ),
    ),
)


#: any fixed start (plain literals: the scan runs over every piece), and whose each is. An
#: Authorization header is found as the scrub finds it (``_secrets.AUTH_MARKS``), its start
#: one character before
_LEADS = re.compile(
    "|".join(
        [*(re.escape(lead) for leads, _b, _o in _OPEN if leads != (_AUTH,) for lead in leads), *AUTH_MARKS]
    )
)
_LEAD_OF = {lead: i for i, (leads, _b, _o) in enumerate(_OPEN) for lead in leads}
_LONGEST_LEAD = max(len(lead) for leads, _b, _o in _OPEN for lead in leads)
#: the text ends with a fixed start's beginning (held whatever comes before it: a character or two)
_PARTIAL = re.compile(
    "(?:"
    + "|".join(
        sorted(
            {
                re.escape(lead[:k])
                for leads, _b, _o in _OPEN
                if leads != (_AUTH,)
                for lead in leads
                for k in range(1, len(lead))
            },
            key=len,
            reverse=True,
        )
    )
    + "|(?i:"
    + "|".join(re.escape(_AUTH[:k]) for k in range(len(_AUTH) - 1, 0, -1))
    + "))\\Z"
)


class LiveScrub:
    """Turns the pieces of one streamed text into what may be shown of it, piece by piece.

    ``found``: the secrets (``_secrets.Table.found``); ``replaced`` collects what was redacted
    (for the status line), as :func:`~chatmagic._secrets.scrub` names it.
    """

    def __init__(self, found: Sequence[tuple[str, str]]) -> None:
        self.found = tuple(found)
        self.replaced: list[str] = []
        values = sorted({value for _name, value in self.found}, key=len, reverse=True)
        # one scan each instead of one per secret: where a value may begin, and whether one is there
        self._firsts = (
            re.compile(f"[{''.join(sorted({re.escape(v[0]) for v in values}))}]") if values else None
        )
        self._values = re.compile("|".join(map(re.escape, values))) if values else None
        self._context = ""  # the last characters received and shown
        self._held = ""  # received, not shown yet

    def feed(self, piece: str) -> str:
        """What of the text so far can be shown now that ``piece`` came: to append to it."""
        text = self._context + self._held + piece
        base = len(self._context)
        found = self.found if self._firsts is not None and self._firsts.search(text, base) else ()
        return self._show(text, base, _decided(text, base, found))

    def end(self) -> str:
        """The text is complete (or cut for good): the rest, decided."""
        text = self._context + self._held
        base = len(self._context)
        # a piece of a secret's value the text ends with, long enough to be worth keeping
        label, at = "", len(text)
        for name, value in self.found:
            start = _prefix_start(text, base, value)
            if start is not None and len(text) - start >= MIN_SECRET_LENGTH and start < at:
                label, at = f"[redacted {name}]", start
                self.replaced.append(name)
        shown = self._show(text[:at], base, at) + label
        self._context = self._held = ""
        return shown

    def _show(self, text: str, base: int, cut: int) -> str:
        """``text[base:cut]`` scrubbed, read with the context before it; the rest is held."""
        self._held = text[cut:]
        self._context = text[max(0, cut - CONTEXT) : cut]
        if cut == base:
            return ""
        if SHAPE_MARKS.search(text, 0, cut) is None and (
            self._values is None or not self._values.search(text, base, cut)
        ):
            return text[base:cut]  # nothing the scrub would change (most pieces)
        region = text[:cut]
        shown = scrub(region, found=self.found, replaced=self.replaced)
        if shown == region:
            return text[base:cut]
        before = scrub(text[:base], found=self.found) if base else ""
        if shown.startswith(before):
            return shown[len(before) :]
        # the context reads differently alone (it cannot: no secret crosses the cut before it)
        return scrub(text[base:cut], found=self.found, replaced=self.replaced)


def _decided(text: str, base: int, found: Sequence[tuple[str, str]]) -> int:
    """Where the undecided tail of ``text`` starts (``len(text)``: none); at or after ``base``."""
    end = len(text)
    cut = end
    for _name, value in found:
        start = _prefix_start(text, base, value)
        if start is not None and start < cut:
            cut = start
    partial = _PARTIAL.search(text, max(base, end - _LONGEST_LEAD))
    if partial is not None and partial.start() < cut:
        cut = partial.start()
    for m in _LEADS.finditer(text, base):
        i, lead = m.start(), m.group()
        if lead in _LEAD_OF:
            _leads, before, body = _OPEN[_LEAD_OF[lead]]
        else:  # an Authorization header: the "a" before
            i -= 1
            _leads, before, body = _OPEN[_LEAD_OF[_AUTH]]
            if i < base or text[i] not in "aA":
                continue
        if i >= cut:
            break
        if (
            (i == 0 or before is None or not before.match(text, i - 1))
            and end - i < _BLOCK_LIMIT
            and body.fullmatch(text, i) is not None
        ):
            cut = i
            break
    if cut == end:
        return end
    # a secret complete before the tail may still reach into it: it is shown whole or not at all
    while True:
        moved = _crossing(text, base, cut, found)
        if moved is None:
            return cut
        cut = moved


def _prefix_start(text: str, base: int, value: str) -> int | None:
    """The first position from ``base`` where the rest of ``text`` is a proper prefix of ``value``."""
    i = max(base, len(text) - len(value) + 1)
    first = value[0]
    while True:
        i = text.find(first, i)
        if i < 0:
            return None
        if value.startswith(text[i:]):
            return i
        i += 1


def _crossing(text: str, base: int, cut: int, found: Sequence[tuple[str, str]]) -> int | None:
    """The start of a secret that begins before ``cut`` and ends after it, if any (from ``base``)."""
    for _name, value in found:
        i = text.find(value, max(base, cut - len(value) + 1))
        if 0 <= i < cut < i + len(value):
            return i
    for start, stop in shape_spans(text):
        if base <= start < cut < stop:
            return start
    return None
