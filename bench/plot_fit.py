"""What ``--context plots`` sends of a figure: its pixels and bytes before and after
``chatmagic.plots.fit_plot`` (1024 px on the longer side, 256 KB), and the time it takes.

Figures as matplotlib's inline backend shows them (``savefig(bbox_inches="tight")``): a line
plot and a scatter of 20,000 points at 100 and 200 dpi, an image plot (``imshow`` of noise:
the worst case for a palette), and a photo-like 3000×2000 RGB noise PNG (the worst case for
bytes). Each is fitted ``--repeat`` times; the median time is shown.

    .venv/bin/python bench/plot_fit.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

from chatmagic.plots import MAX_PLOT_BYTES, MAX_PLOT_SIDE, Plot, fit_plot  # noqa: E402


def figure(kind: str, dpi: int) -> bytes:
    fig, ax = plt.subplots(figsize=(12, 8), dpi=dpi)
    rng = __import__("random").Random(1)
    if kind == "line":
        ax.plot(range(1000), [x * x for x in range(1000)], label="x²")
        ax.legend()
        ax.set_title("A line plot")
    elif kind == "scatter":
        ax.scatter([rng.gauss(0, 1) for _ in range(20_000)], [rng.gauss(0, 1) for _ in range(20_000)], s=2)
    else:
        ax.imshow([[rng.random() for _ in range(300)] for _ in range(200)])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def noise(width: int = 3000, height: int = 2000) -> bytes:
    buf = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(buf, format="PNG")
    return buf.getvalue()


def size(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as img:
        return f"{img.size[0]}×{img.size[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cases = [
        (f"{kind} {dpi} dpi", figure(kind, dpi))
        for kind in ("line", "scatter", "imshow")
        for dpi in (100, 200)
    ]
    cases.append(("RGB noise", noise()))
    print(f"caps: {MAX_PLOT_SIDE} px, {MAX_PLOT_BYTES:,} bytes")
    print(f"{'figure':<18} {'shown':>10} {'bytes':>10}  {'sent':>10} {'bytes':>9}  {'median ms':>9}")
    for name, data in cases:
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            fitted = fit_plot(Plot(1, "image/png", data))
            times.append((time.perf_counter() - start) * 1000)
        print(
            f"{name:<18} {size(data):>10} {len(data):>10,}  {size(fitted.data):>10} {len(fitted.data):>9,}"
            f"  {statistics.median(times):>9.0f}"
        )


if __name__ == "__main__":
    main()
