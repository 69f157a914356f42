"""Saved notebooks for tests: one ``%%chat`` cell per exchange record, as a notebook holds them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

__all__ = ["save_records"]


def save_records(path: Path, *records: dict[str, Any]) -> Path:
    """Write a notebook at ``path`` with one %%chat cell per record (its output's metadata)."""
    nb = nbformat.v4.new_notebook()
    for record in records:
        cell = nbformat.v4.new_code_cell("%%chat")
        cell.outputs = [
            nbformat.v4.new_output("display_data", data={"text/plain": ""}, metadata={"chatmagic": record})
        ]
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path
