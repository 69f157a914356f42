"""Text from the wire: incremental line framing, the one event-stream framer
(:func:`sse_events`, every provider's), and text made valid Unicode.

aiohttp's ``resp.content`` iterator splits on LF only and caps line length, and
curl_cffi's ``aiter_lines`` turns a CRLF cut across two reads into an extra blank
line; so both transports hand us raw bytes and lines are framed here, once.

JSON can carry what UTF-8 cannot: ``"\\ud800"`` decodes to a lone surrogate.
:class:`SurrogateMender` replaces those, for replies (``Provider.stream``) and for
server text quoted in errors.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Protocol

# a CR directly followed by LF is one line end (CRLF), not two
_LINE_END = re.compile(r"\r\n?|\n")


class LineDecoder:
    """Turns network reads into text lines.

    Lines end in CRLF, LF or CR (as in server-sent events; U+2028 and U+2029 are data,
    so ``str.splitlines`` is not used). A CR at the end of a read may be half of a CRLF
    and is held back. UTF-8 characters cut across reads are decoded whole, and a BOM
    at the very start is dropped. Lines have no length limit.

    The cost is linear in the bytes fed, whatever the size of the reads: the pieces of
    an unfinished line are kept in a list and joined once, when its end arrives
    (appending each read to one string copied the line so far every time).
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held: list[str] = []
        self._pending_cr = False
        self._started = False

    def feed(self, data: bytes) -> list[str]:
        text = self._decoder.decode(data)
        if not self._started and text:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        return self._split(text)

    def close(self) -> list[str]:
        """Flush at end of stream: the unterminated rest is a last line."""
        lines = self._split(self._decoder.decode(b"", final=True))
        if self._held:
            lines.append("".join(self._held))
            self._held = []
        self._pending_cr = False
        return lines

    def _split(self, text: str) -> list[str]:
        if self._pending_cr and text:
            self._pending_cr = False
            if text[0] == "\n":
                text = text[1:]
        if not text:
            return []
        parts = _LINE_END.split(text)
        if len(parts) == 1:
            self._held.append(text)
            return []
        if self._held:
            self._held.append(parts[0])
            parts[0] = "".join(self._held)
        tail = parts.pop()
        self._held = [tail] if tail else []
        # a CR ending this read may be the first half of a CRLF cut between reads
        self._pending_cr = text[-1] == "\r"
        return parts


@dataclass(frozen=True, slots=True)
class Field:
    """One meaningful line of an event stream: a ``data:`` payload or other text."""

    data: str
    is_data: bool


class Body(Protocol):
    """An answer whose body has not been read yet (``_http.Answer`` is one)."""

    def chunks(self) -> AsyncIterator[bytes]: ...


async def sse_events(answer: Body) -> AsyncIterator[Field]:
    """An event stream's events, as the SSE spec frames them: the ``data:`` lines of one event
    joined by LF (one space after the colon removed), dispatched at the blank line that ends
    it or at the end of the body. Comments (``:``) and the other SSE fields (``event:``,
    ``id:``, ``retry:``) carry nothing these protocols need. A line that is not an SSE field
    (a plain JSON tail, llama.cpp's ``error: {...}``) comes as it is (``is_data`` false) and
    ends any event before it. An event whose data holds one JSON object per line (a server
    that leaves out the blank lines) is split by ``_family.event_objects``."""
    decoder = LineDecoder()
    data: list[str] = []
    async for chunk in answer.chunks():
        for found in _frame(decoder.feed(chunk), data):
            yield found
    for found in _frame(decoder.close(), data):
        yield found
    if data:
        yield Field("\n".join(data), True)


def _frame(lines: list[str], data: list[str]) -> Iterator[Field]:
    for line in lines:
        if not line:
            if data:
                yield Field("\n".join(data), True)
                data.clear()
        elif line.startswith(":") or line.startswith(("event:", "id:", "retry:")):
            continue
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
        else:
            if data:
                yield Field("\n".join(data), True)
                data.clear()
            yield Field(line, False)


class SurrogateMender:
    """Makes streamed text encodable as UTF-8: lone surrogates become U+FFFD.

    A high surrogate ending a chunk is held back: the next chunk may begin with its low
    half (a server that cuts UTF-16 text between the two).
    """

    def __init__(self) -> None:
        self._held = ""

    def feed(self, chunk: str, final: bool = False) -> str:
        text = self._held + chunk
        self._held = ""
        if not final and text and "\ud800" <= text[-1] <= "\udbff":
            text, self._held = text[:-1], text[-1]
        if text.isascii():
            return text
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # through UTF-16, pairs of halves become their character and every lone
            # half one U+FFFD
            text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return text

    def close(self) -> str:
        """What is still held back, a high surrogate whose low half never came, as U+FFFD."""
        return self.feed("", final=True)


def valid_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD."""
    return SurrogateMender().feed(text, final=True)
