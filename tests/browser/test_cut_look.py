"""A block cut across outputs while it streamed looks as it does uncut, in a real JupyterLab.

Without widgets a long open block is frozen piece by piece (chatmagic._cellstream): a code
fence after complete lines, a long paragraph after a sentence. The pieces are outputs of
their own; the stylesheet joins them (chatmagic.style: ``chatmagic-more`` / ``chatmagic-cont``).
One cell shows a reply as ReplyStream left it after a slow stream, the next the same reply
drawn whole: the code's pieces touch, no corner or padding between them, and are as tall as
the whole block; a cut paragraph goes on at the next line with no paragraph gap.
Screenshots (light, and the code's joints dark) go to ``test-artifacts/browser/cut-*.png``.
"""

from __future__ import annotations

import pytest

from .conftest import ARTIFACTS, cell, missing, run_cell, start_kernel_cell, wait_idle

pytestmark = pytest.mark.browser

if (_reason := missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Page, expect  # noqa: E402 - after the skip

SETUP = """
from IPython.display import display
from chatmagic._cellstream import ReplyStream
from chatmagic.present import STYLE, Status
from chatmagic.render import body_html
words = "the reply model token notebook kernel cell output memory thread loop".split()
sentences = [" ".join(words[(i + j) % 11] for j in range(9)).capitalize() + "." for i in range(40)]
code = "\\n".join(f"    total += item_{i} * {i}  # line {i}" for i in range(40))
REPLY = " ".join(sentences) + f"\\n\\n```python\\ndef add(items):\\n    total = 0\\n{code}\\n    return total\\n```\\n\\nDone."

def streamed(text, rate=90.0):
    s = ReplyStream(styled=True)
    handles = [display(s.start("p · m · waiting…", 0.0), raw=True, display_id=True)]
    now = 0.0
    while True:
        now += 0.1
        for op in s.step(text[: int(now * rate)], "p · m · streaming…", now):
            if op.kind == "open":
                handles.append(display(op.bundle, raw=True, display_id=True))
            else:
                handles[-1].update(op.bundle, raw=True)
            s.sent(op, now)
        if now * rate > len(text):
            break
    handles[-1].update(s.final(text, Status("p · m · 1.0 s")), raw=True)

display({"text/html": STYLE, "text/plain": ""}, raw=True)
print("ready")
"""
CELLS = [
    SETUP,
    "streamed(REPLY)",
    'display({"text/html": f\'<div class="chatmagic-reply">{body_html(REPLY, "markdown")}</div>\'}, raw=True)',
]


def _boxes(page: Page, i: int, selector: str) -> list[dict[str, float]]:
    return list(
        cell(page, i)
        .locator(f".jp-OutputArea {selector}")
        .evaluate_all(
            "els => els.map(e => { const r = e.getBoundingClientRect();"
            " const s = getComputedStyle(e);"
            " return {top: r.top, bottom: r.bottom, radius: parseFloat(s.borderBottomLeftRadius),"
            " line: parseFloat(s.lineHeight) || 20}; })"
        )
    )


def test_cut_pieces_join_without_a_seam(page: Page) -> None:
    start_kernel_cell(page, 0, "ready")
    wait_idle(page)
    for i in (1, 2):
        run_cell(page, i)
        wait_idle(page)
    expect(cell(page, 1).locator(".jp-OutputArea")).to_contain_text("Done.")
    expect(cell(page, 2).locator(".jp-OutputArea")).to_contain_text("Done.")
    for i, name in ((1, "pieces"), (2, "whole")):
        cell(page, i).evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)
        cell(page, i).locator(".jp-OutputArea").screenshot(path=str(ARTIFACTS / f"cut-{name}.png"))
        # the code's joints (pieces 2 and 3 of the cut reply) in the middle of the page
        cell(page, i).locator(".jp-OutputArea pre").nth(2 if i == 1 else 0).evaluate(
            "e => e.scrollIntoView({block: 'center'})"
        )
        page.wait_for_timeout(300)
        page.locator(".jp-NotebookPanel").screenshot(path=str(ARTIFACTS / f"cut-{name}-code.png"))
    # the dark theme: the same joints on its code background
    page.evaluate(
        "() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})"
    )
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
    cell(page, 1).locator(".jp-OutputArea pre").nth(2).evaluate("e => e.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(500)
    page.locator(".jp-NotebookPanel").screenshot(path=str(ARTIFACTS / "cut-pieces-code-dark.png"))
    page.evaluate(
        "() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})"
    )
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'true'")
    pieces, whole = _boxes(page, 1, "pre"), _boxes(page, 2, "pre")
    assert len(pieces) > 2 and len(whole) == 1, (len(pieces), len(whole))
    for above, below in zip(pieces, pieces[1:], strict=False):
        assert abs(below["top"] - above["bottom"]) <= 1, (above, below)  # they touch
        assert above["radius"] == 0  # no rounded corner at the joint
    tall = pieces[-1]["bottom"] - pieces[0]["top"]
    assert abs(tall - (whole[0]["bottom"] - whole[0]["top"])) <= 2, (tall, whole)
    paras = _boxes(page, 1, ".chatmagic-reply > p")
    assert len(paras) > 2  # the long paragraph was cut after sentences
    cut = [b["top"] - a["bottom"] for a, b in zip(paras, paras[1:], strict=False)][: len(paras) - 2]
    assert all(gap <= 1 for gap in cut), cut  # the next piece goes on at the next line
