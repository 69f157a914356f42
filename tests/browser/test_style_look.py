"""The stylesheet goes once a kernel session: the replies below still look the same, light and dark.

The first reply of the session carries the whole stylesheet (chatmagic._cellstream.SHEET); the
replies below carry only the small fallback. In JupyterLab a ``<style>`` in one output styles
the page, so the code block, the table and the status lines of the later cells take the
sheet's colours (measured from their computed styles); with the first output cleared they fall
back to legible defaults (a small status line, a red error). Screenshots, light and dark, with
and without the first output, go to ``test-artifacts/browser/style-*.png``.
"""

from __future__ import annotations

import pytest

from .conftest import ARTIFACTS, cell, missing, run_cell, start_kernel_cell, wait_idle

pytestmark = pytest.mark.browser

if (_reason := missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Page, expect  # noqa: E402 - after the skip

CODE = (
    "The fix:\n\n```python\n@cache\ndef mean(xs: list[float]) -> float:\n"
    "    # an empty list has no mean\n    if not xs:\n        raise ValueError('empty')\n"
    "    return sum(xs) / len(xs)\n```\n\nSee [the docs](https://docs.python.org/3/) and `mean()`."
)
TABLE = "| name | kind | size |\n|:--|:--|--:|\n| a | int | 1 |\n| b | str | 22 |"
CELLS = [
    "%load_ext chatmagic\n%chat sandbox",
    "%%chat -p chatgpt4online\n[[reply]]The first reply of the session.",
    f"%%chat -p chatgpt4online\n[[reply]]{CODE}",
    f"%%chat -p chatgpt4online\n[[reply]]A summary:\n\n{TABLE}",
    "%%chat -p chatgpt4online\n[[fault:http500]]hi",
]


def _set_theme(page: Page, name: str, light: bool) -> None:
    page.evaluate(f"() => window.jupyterapp.commands.execute('apputils:change-theme', {{theme: {name!r}}})")
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{str(light).lower()}'")
    page.wait_for_timeout(500)


def _style(page: Page, i: int, selector: str, prop: str) -> str:
    return str(
        cell(page, i)
        .locator(f".jp-OutputArea {selector}")
        .first.evaluate(f"e => getComputedStyle(e).getPropertyValue({prop!r})")
    )


def _shoot(page: Page, name: str) -> None:
    cell(page, 2).evaluate("e => e.scrollIntoView({block: 'start'})")  # the code, the table, the error
    page.wait_for_timeout(300)
    page.locator(".jp-NotebookPanel").screenshot(path=str(ARTIFACTS / f"style-{name}.png"))


def test_later_replies_take_the_sheet_of_the_first(page: Page) -> None:
    try:
        _drive(page)
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / "style-failure.png"))
        raise


def _drive(page: Page) -> None:
    start_kernel_cell(page, 0, "Local stand-in")
    wait_idle(page)
    for i in range(1, len(CELLS)):
        run_cell(page, i)
        expect(cell(page, i).locator(".chatmagic-status")).to_have_count(1, timeout=30_000)
        wait_idle(page)
    # the sheet, from the first reply's output, colours the replies below it
    light = {
        "code": _style(page, 2, "pre", "background-color"),
        "status": _style(page, 2, ".chatmagic-status", "color"),
        "th": _style(page, 3, "th", "background-color"),
        "error": _style(page, 4, ".chatmagic-status", "color"),
    }
    assert light == {
        "code": "rgb(245, 245, 245)",  # --cm-code-bg
        "status": "rgb(89, 89, 89)",  # --cm-muted
        "th": "rgb(245, 245, 245)",
        "error": "rgb(198, 40, 40)",  # --cm-error
    }, light
    _shoot(page, "light")
    _set_theme(page, "JupyterLab Dark", light=False)
    assert _style(page, 2, "pre", "background-color") == "rgb(22, 22, 22)"
    assert _style(page, 2, ".chatmagic-status", "color") == "rgb(179, 179, 179)"
    _shoot(page, "dark")
    # the first reply's output cleared: the sheet is gone, the fallback keeps the status line apart
    cell(page, 1).locator(".cm-content").click()
    page.keyboard.press("Escape")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-cell-output')")
    expect(cell(page, 1).locator(".chatmagic-reply")).to_have_count(0)
    assert _style(page, 2, ".chatmagic-status", "font-size") != _style(page, 2, "p", "font-size")
    assert _style(page, 4, ".chatmagic-status", "color") == "rgb(229, 72, 77)"  # the fallback red
    _shoot(page, "fallback-dark")
    _set_theme(page, "JupyterLab Light", light=True)
    _shoot(page, "fallback-light")
