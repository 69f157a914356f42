"""A slow reply streaming into a cell in a real JupyterLab: it keeps changing, light and dark.

The cell's tail display is the reply view (chatmagic._replyview): in JupyterLab >= 4.4 with
ipykernel 7 its hello reaches the kernel while the cell runs, and the reply then arrives as
patches. A one-paragraph reply and a code block are trickled by the stand-in for about 20 s;
the text on screen is sampled every 0.4 s and must grow at every sample (no wait of a second
or more), and at the end the view is replaced by the static output. Screenshots mid-stream
in the light and the dark theme go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import pytest

from .conftest import ARTIFACTS, cell, missing, run_cell, start_kernel_cell, wait_idle

pytestmark = pytest.mark.browser

if (_reason := missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Page, expect  # noqa: E402 - after the skip

PARAGRAPH = " ".join(
    f"word{i} &lt;img src=x onerror=window.__pwned={i}&gt;" if i % 50 == 7 else f"word{i}" for i in range(700)
)
CODE = "\n".join(f"    total += item_{i} * {i}  # line {i}" for i in range(60))
REPLY = f"{PARAGRAPH}\n\n```python\ndef add(items):\n    total = 0\n{CODE}\n    return total\n```\n\nDone."

CELLS = [
    "%load_ext chatmagic\n%chat sandbox",
    f"%%chat -p chatgpt4online --new\n[[delay:0.015]][[reply]]{REPLY}",
    "p = %chat panel\np",
    "p.close()",
]


def _set_theme(page: Page, name: str, light: bool) -> None:
    page.evaluate(f"() => window.jupyterapp.commands.execute('apputils:change-theme', {{theme: {name!r}}})")
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{str(light).lower()}'")


def test_a_slow_reply_keeps_changing_in_the_cell(page: Page) -> None:
    try:
        _drive(page)
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / "stream-cell-failure.png"))
        raise


def _drive(page: Page) -> None:
    start_kernel_cell(page, 0, "Local stand-in")
    wait_idle(page)
    run_cell(page, 1)
    out = cell(page, 1).locator(".jp-OutputArea")
    view = out.locator(".chatmagic-reply > .cm-tail")
    expect(view).to_have_count(1, timeout=20_000)  # the reply view is drawn and patched
    sizes = []
    for i in range(24):
        page.wait_for_timeout(400)
        sizes.append(len(out.inner_text()))
        if i == 6:
            out.screenshot(path=str(ARTIFACTS / "stream-cell-light.png"))
            _set_theme(page, "JupyterLab Dark", light=False)
        if i == 12:
            out.screenshot(path=str(ARTIFACTS / "stream-cell-dark.png"))
            _set_theme(page, "JupyterLab Light", light=True)
    grew = [b > a for a, b in zip(sizes, sizes[1:], strict=False)]
    assert all(grew[:20]), sizes  # every 0.4 s the reply on screen had more text
    expect(out).to_contain_text("Done.", timeout=60_000)
    wait_idle(page)
    expect(view).to_have_count(0)  # the static output replaced the view
    assert page.evaluate("window.__pwned") is None
    assert out.locator(".chatmagic-reply").locator("img, script, iframe, svg").count() == 0
    out.screenshot(path=str(ARTIFACTS / "stream-cell-done.png"))


def test_a_closed_panel_leaves_a_line_saying_how_to_reopen_it(page: Page) -> None:
    wait_idle(page)
    run_cell(page, 2)
    out = cell(page, 2).locator(".jp-OutputArea")
    expect(out.locator(".chatmagic-panel")).to_be_visible(timeout=30_000)
    expect(out.locator(".cm-reopen")).to_be_hidden()  # while the panel is drawn
    wait_idle(page)
    run_cell(page, 3)
    expect(out.locator(".chatmagic-panel")).to_have_count(0, timeout=15_000)
    expect(out.locator(".cm-reopen")).to_be_visible()
    expect(out).to_contain_text("run this cell again, or %chat panel, to reopen it")
    out.screenshot(path=str(ARTIFACTS / "panel-closed.png"))
