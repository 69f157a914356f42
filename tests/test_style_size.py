"""The stylesheet a notebook of chat cells saves: once a kernel session, not once a reply."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from chatmagic import present
from chatmagic._cellstream import SHEET

sys.path.insert(0, str(Path(__file__).parents[1] / "bench"))
from style_size import cell_sources, run_notebook, saved_outputs, styling_bytes  # noqa: E402

from .test_magics import run  # noqa: E402

pytestmark = pytest.mark.usefixtures("fresh")


def test_twenty_chat_cells_save_under_400_bytes_of_styling_each(ip: Any) -> None:
    nb, per_cell = run_notebook(ip, cell_sources(20))
    styling = [styling_bytes(outputs) for outputs in per_cell]
    assert sum(styling) / len(styling) < 400, styling  # on main: 2,860 a cell
    # the whole sheet once, in the first reply's cell; every other reply the small fallback
    first = [o["data"]["text/html"] for o in per_cell[0]]
    assert first.count(present.STYLE) == 1
    for outputs in per_cell[1:]:
        page = "".join(o["data"].get("text/html", "") for o in outputs)
        assert present.STYLE not in page and present.FALLBACK_STYLE in page


def test_the_carrying_cell_carries_the_sheet_again_when_run_again(ip: Any) -> None:
    SHEET.reset()
    _, first = run(ip, "%%chat\nhello", cell_id="a")
    _, other = run(ip, "%%chat\nhello", cell_id="b")
    _, again = run(ip, "%%chat\nhello", cell_id="a")  # its outputs, the sheet with them, are replaced
    assert present.STYLE in [o["data"]["text/html"] for o in saved_outputs(first)]
    assert all(present.STYLE not in o["data"]["text/html"] for o in saved_outputs(other))
    assert present.STYLE in [o["data"]["text/html"] for o in saved_outputs(again)]


def test_the_fallback_never_outranks_the_sheet() -> None:
    # every rule of the fallback has zero specificity (:where): the whole sheet, wherever it is
    # in the page, decides every property it sets, so the look with it is unchanged
    rules = re.findall(r"([^{}]+)\{[^}]*\}", present.FALLBACK_STYLE.removeprefix("<style>"))
    assert rules and all(sel.startswith(":where(") and sel.endswith(")") for sel in rules)
    assert len(present.FALLBACK_STYLE) < 200


def test_tables_carry_the_fallback_not_the_sheet(ip: Any) -> None:
    # --dry-run and %chat providers: a table and note lines, which need only the status style
    _, dry = run(ip, "%%chat --dry-run\nhello")
    _, providers = run(ip, "%chat providers")
    for io in (dry, providers):
        page = "".join(o.data.get("text/html", "") for o in io.outputs)
        assert 'class="chatmagic-table"' in page and present.STYLE not in page
        assert styling_bytes(saved_outputs(io)) < 400
