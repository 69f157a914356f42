"""Line framing: every way a line can be cut across network reads."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chatmagic.providers._lines import LineDecoder, sse_events


def frame(*reads: bytes) -> list[str]:
    d = LineDecoder()
    out: list[str] = []
    for r in reads:
        out += d.feed(r)
    return out + d.close()


@pytest.mark.parametrize("sep", [b"\n", b"\r\n", b"\r"])
def test_each_line_ending(sep: bytes) -> None:
    assert frame(b"a" + sep + b"b" + sep + sep + b"c") == ["a", "b", "", "c"]


def test_crlf_cut_between_reads_is_one_line_end() -> None:
    assert frame(b"data: 1\r", b"\ndata: 2\r", b"\n") == ["data: 1", "data: 2"]


def test_every_cut_point_gives_the_same_lines() -> None:
    raw = "data: Привет ✓\r\n\r\ndata: мир\nx\r".encode()
    whole = frame(raw)
    for i in range(len(raw)):
        assert frame(raw[:i], raw[i:]) == whole
    assert frame(*[raw[i : i + 1] for i in range(len(raw))]) == whole


def test_utf8_character_cut_across_reads() -> None:
    raw = "é✓".encode()
    assert frame(raw[:1], raw[1:3], raw[3:]) == ["é✓"]


def test_unicode_line_separators_are_data() -> None:
    assert frame("a\u2028b\u2029c\x85d\n".encode()) == ["a\u2028b\u2029c\x85d"]


def test_bom_dropped_once_at_start() -> None:
    bom = "\ufeff".encode()
    assert frame(bom[:2], bom[2:] + b"x\n" + bom + b"y") == ["x", "\ufeffy"]


def test_very_long_line() -> None:
    long = b"x" * (1 << 20)
    reads = [long[i : i + 65536] for i in range(0, len(long), 65536)]
    assert frame(b"data: ", *reads, b"\n") == ["data: " + "x" * (1 << 20)]


def test_one_long_line_in_small_reads_is_never_copied_until_it_ends() -> None:
    # copying the line so far at every read is quadratic (32 MB in 16 KiB reads: 22 s);
    # the pieces are held as they came and joined once. bench/line_decoder.py has the times.
    decoder = LineDecoder()
    piece = b"x" * 1024
    for n in range(1, 2001):
        assert decoder.feed(piece) == []
        assert len(decoder._held) == n and all(len(p) == 1024 for p in decoder._held)
    (line,) = decoder.feed(b"\r\n")
    assert len(line) == 2000 * 1024 and decoder._held == []


@pytest.mark.parametrize("read_size", [1, 2, 3, 7, 1024])
def test_many_short_lines_in_any_read_size(read_size: int) -> None:
    endings = ("\n", "\r\n", "\r")
    raw = "".join(f"data: {i} ✓{endings[i % 3]}" for i in range(300)).encode()
    reads = [raw[i : i + read_size] for i in range(0, len(raw), read_size)]
    assert frame(*reads) == [f"data: {i} ✓" for i in range(300)]


class Body:
    """An answer whose body comes in the given reads."""

    def __init__(self, *reads: bytes) -> None:
        self.reads = reads

    async def chunks(self) -> AsyncIterator[bytes]:
        for read in self.reads:
            yield read


async def events(*reads: bytes) -> list[tuple[str, bool]]:
    return [(f.data, f.is_data) async for f in sse_events(Body(*reads))]


async def test_sse_fields() -> None:
    body = b"data: {}\n\ndata:no-space\n: comment\n\nevent: x\nid: 3\nretry: 5\n\nplain text\n"
    assert await events(body) == [("{}", True), ("no-space", True), ("plain text", False)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
async def test_an_event_is_its_data_lines_joined_however_the_reads_are_cut(size: int) -> None:
    body = "\ufeffdata: a\r\ndata:b ✓\r\n\r\n: ping\rdata: [DONE]\r\r".encode()
    reads = [body[i : i + size] for i in range(0, len(body), size)]
    assert await events(*reads) == [("a\nb ✓", True), ("[DONE]", True)]


async def test_a_plain_line_ends_an_event_and_the_last_event_needs_no_blank_line() -> None:
    assert await events(b'data: x\nerror: {"message": "m"}\ndata: y') == [
        ("x", True),
        ('error: {"message": "m"}', False),
        ("y", True),
    ]
