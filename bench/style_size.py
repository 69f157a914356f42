"""Styling saved with a notebook of chat cells: bytes of ``<style>`` per saved chat output.

Runs ``%%chat`` cells (20 by default: paragraphs, a code block, a table, a stopped and a
failed reply among them) in a real IPython shell against the stand-in (chatmagic.sandbox,
on a thread), each with its own cell id as JupyterLab sends it. What the notebook saves is
rebuilt from the display messages (an update replaces the output of its display id), written
as an .ipynb with nbformat, and measured:

- ``styling``: bytes inside ``<style>…</style>`` (tags included) across the saved outputs of
  the chat cells, divided by the number of chat cells (goal: under 400 a cell);
- ``notebook``: the size of the .ipynb.

``before`` is every reply carrying the whole stylesheet (as on main, dc00e9b: an output of its
own per cell), ``after`` the kernel session's first reply carrying it and the others
present.FALLBACK_STYLE (chatmagic._cellstream.SHEET).

    .venv/bin/python bench/style_size.py [--cells 20]
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import nbformat
from IPython.utils.capture import capture_output

from chatmagic._cellstream import SHEET

_STYLE = re.compile(r"<style>.*?</style>", re.S)

_TABLE = "| name | kind | size |\n|:--|:--|--:|\n| a | int | 1 |\n| b | str | 22 |\n| c | list | 333 |\n"
_CODE = (
    "Here is the fix:\n\n```python\ndef mean(xs: list[float]) -> float:\n"
    "    # an empty list has no mean\n    if not xs:\n        raise ValueError('empty')\n"
    "    return sum(xs) / len(xs)\n```\n"
)


def cell_sources(count: int) -> list[str]:
    """``count`` chat cells, cycling through the kinds of reply a notebook holds."""
    kinds = [
        "%%chat\nExplain this traceback in two sentences.",
        f"%%chat\n[[reply]]{_CODE}",
        f"%%chat\n[[reply]]A summary:\n\n{_TABLE}",
        "%%chat -f code\n[[reply]]```python\nprint('hi')\n```",
        "%%chat\n[[words:120]]",
        "%%chat -p chatgptt\n[[fault:http500]]hi",
    ]
    return [kinds[i % len(kinds)] for i in range(count)]


def saved_outputs(captured: Any) -> list[dict[str, Any]]:
    """The outputs a notebook saves from captured display messages (updates applied in place)."""
    outputs: list[dict[str, Any]] = []
    ids: dict[str, int] = {}
    for out in captured.outputs:
        display_id = (out.transient or {}).get("display_id")
        entry = {"data": dict(out.data), "metadata": dict(out.metadata or {})}
        if out.update:
            if display_id in ids:
                outputs[ids[display_id]] = entry
            continue
        if display_id:
            ids[display_id] = len(outputs)
        outputs.append(entry)
    return outputs


def styling_bytes(outputs: list[dict[str, Any]]) -> int:
    return sum(len(m.encode()) for o in outputs for m in _STYLE.findall(o["data"].get("text/html", "")))


@contextmanager
def sheet_every_time() -> Iterator[None]:
    """As before: every reply carries the whole stylesheet in an output of its own."""
    claim = SHEET.claim
    SHEET.claim = lambda _cell_id: True  # type: ignore[method-assign]
    try:
        yield
    finally:
        SHEET.claim = claim  # type: ignore[method-assign]


def run_notebook(ip: Any, sources: list[str]) -> tuple[nbformat.NotebookNode, list[list[dict[str, Any]]]]:
    """Run ``sources`` as notebook cells in ``ip``; the notebook as saved, and each cell's outputs."""
    SHEET.reset()  # a new kernel session
    nb = nbformat.v4.new_notebook()
    per_cell = []
    for n, source in enumerate(sources):
        cell = nbformat.v4.new_code_cell(source)
        cell.id = f"cell-{n:03d}"
        with capture_output() as io:
            ip.run_cell(source, cell_id=cell.id)
        outputs = saved_outputs(io)
        per_cell.append(outputs)
        cell.outputs = [
            nbformat.v4.new_output("display_data", o["data"], metadata=o["metadata"]) for o in outputs
        ]
        nb.cells.append(cell)
    return nb, per_cell


def measure(ip: Any, count: int) -> dict[str, float]:
    nb, per_cell = run_notebook(ip, cell_sources(count))
    styling = sum(styling_bytes(outputs) for outputs in per_cell)
    saved = sum(len(outputs) for outputs in per_cell)
    return {
        "cells": count,
        "saved_outputs": saved,
        "styling_per_cell": styling / count,
        "styling_per_output": styling / saved,
        "notebook_bytes": len(nbformat.writes(nb).encode()),
    }


def main() -> None:
    from IPython.testing.globalipapp import start_ipython

    from chatmagic.sandbox import Sandbox

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20)
    args = parser.parse_args()
    sb = Sandbox().start_in_thread()
    try:
        ip = start_ipython()
        ip.run_line_magic("load_ext", "chatmagic")
        ip.run_line_magic(
            "config", f"ChatMagics.base_urls = {json.dumps({'chatgptt': sb.base_url('chatgptt')})}"
        )
        with sheet_every_time():
            before = measure(ip, args.cells)
        after = measure(ip, args.cells)
    finally:
        sb.stop()
    print(f"{args.cells} %%chat cells, saved notebook (nbformat), styling = bytes of <style>…</style>")
    print(f"{'':8}{'styling/cell':>14}{'styling/output':>16}{'outputs':>9}{'notebook':>10}")
    for name, row in (("before", before), ("after", after)):
        print(
            f"{name:8}{row['styling_per_cell']:>14.0f}{row['styling_per_output']:>16.0f}"
            f"{row['saved_outputs']:>9}{row['notebook_bytes']:>10,}"
        )


if __name__ == "__main__":
    main()
