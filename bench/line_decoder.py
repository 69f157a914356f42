"""What framing a long line costs: ``LineDecoder`` fed one 32 MB line in small reads.

A reply can carry one very long line (a base64 image, a whole file in one JSON event),
and it arrives in reads of whatever size the network gives. The decoder must stay linear
in the bytes fed whatever the read size: before the fix, 32 MB in 16 KiB reads took 22 s
because every read copied the line so far.

For each read size the script feeds ``data: `` + 32 MB of ``x`` + ``\\n`` and prints the
best of ``--repeat`` runs, then, for scale, the same 32 MB as short 100-byte lines. The
bytes are built before the clock starts; only ``feed`` and ``close`` are timed.

    .venv/bin/python bench/line_decoder.py [--megabytes 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

from chatmagic.providers._lines import LineDecoder


def frame(reads: list[bytes]) -> tuple[float, int]:
    """Seconds to frame ``reads``, and the length of the longest line (checked by the caller)."""
    decoder = LineDecoder()
    longest = 0
    start = time.perf_counter()
    for read in reads:
        for line in decoder.feed(read):
            longest = max(longest, len(line))
    for line in decoder.close():
        longest = max(longest, len(line))
    return time.perf_counter() - start, longest


def cut(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--megabytes", type=int, default=32, help="Size of the long line in MB (10**6 bytes)."
    )
    parser.add_argument("--repeat", type=int, default=3, help="Runs per figure; the best is shown.")
    args = parser.parse_args()

    size = args.megabytes * 1_000_000
    one_line = b"data: " + b"x" * size + b"\n"
    short = b"".join([b"data: " + b"y" * 93 + b"\n"] * (size // 100))
    rows: list[tuple[str, int, int, float]] = []
    for label, data, expect, read_size in (
        ("one line", one_line, size + 6, 16 * 1024),
        ("one line", one_line, size + 6, 1024),
        ("100-byte lines", short, 99, 16 * 1024),
    ):
        reads = cut(data, read_size)
        best = float("inf")
        for _ in range(args.repeat):
            seconds, longest = frame(reads)
            if longest != expect:
                raise SystemExit(f"wrong framing: longest line {longest}, expected {expect}")
            best = min(best, seconds)
        rows.append((label, read_size, len(reads), best))

    print(f"LineDecoder, {args.megabytes} MB, best of {args.repeat}")
    print(f"{'input':<16} {'read size':>10} {'reads':>8} {'time':>9} {'MB/s':>8}")
    for label, read_size, reads, seconds in rows:
        print(
            f"{label:<16} {read_size // 1024:>7} KiB {reads:>8} {seconds:>8.3f}s "
            f"{args.megabytes / seconds:>8.0f}"
        )


if __name__ == "__main__":
    main()
