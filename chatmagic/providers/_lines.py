"""Incremental line framing for streamed answers.

aiohttp's ``resp.content`` iterator splits on LF only and caps line length, and
curl_cffi's ``aiter_lines`` turns a CRLF cut across two reads into an extra blank
line; so both transports hand us raw bytes and lines are framed here, once.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass


class LineDecoder:
    """Turns network reads into text lines.

    Lines end in CRLF, LF or CR (as in server-sent events; U+2028 and U+2029 are data,
    so ``str.splitlines`` is not used). A CR at the end of a read may be half of a CRLF
    and is held back. UTF-8 characters cut across reads are decoded whole, and a BOM
    at the very start is dropped. Lines have no length limit.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
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
        if self._buffer:
            lines.append(self._buffer)
            self._buffer = ""
        self._pending_cr = False
        return lines

    def _split(self, text: str) -> list[str]:
        lines: list[str] = []
        if self._pending_cr and text:
            self._pending_cr = False
            if text[0] == "\n":
                text = text[1:]
        start = 0
        buf = self._buffer
        n = len(text)
        i = 0
        while i < n:
            # find the next CR or LF with str.find, which is fast on long lines
            lf = text.find("\n", i)
            cr = text.find("\r", i)
            if lf < 0 and cr < 0:
                break
            end = lf if cr < 0 or (0 <= lf < cr) else cr
            lines.append(buf + text[start:end])
            buf = ""
            if text[end] == "\r":
                if end + 1 < n:
                    if text[end + 1] == "\n":
                        end += 1
                else:
                    self._pending_cr = True
            i = start = end + 1
        self._buffer = buf + text[start:]
        return lines


@dataclass(frozen=True, slots=True)
class Field:
    """One meaningful line of an event stream: a ``data:`` payload or other text."""

    data: str
    is_data: bool


def event_fields(lines: list[str]) -> Iterator[Field]:
    """Classify lines: ``data:`` lines (one space after the colon removed), other text.

    Blank lines (event separators), ``:`` comments and the other SSE fields
    (``event:``, ``id:``, ``retry:``) carry nothing these protocols need.
    """
    for line in lines:
        if not line or line.startswith(":"):
            continue
        if line.startswith("data:"):
            value = line[5:]
            yield Field(value[1:] if value.startswith(" ") else value, True)
        elif line.startswith(("event:", "id:", "retry:")):
            continue
        else:
            yield Field(line, False)
