"""A tool call waiting in a real JupyterLab cell: its card shows the call in full, the cell
ends so another cell runs, the reply view's Run button answers, and the same output goes on
with the result. Screenshots in the light and the dark theme go to ``test-artifacts/browser/``.
"""

from __future__ import annotations

import pytest

from .conftest import ARTIFACTS, cell, missing, run_cell, start_kernel_cell, wait_idle

pytestmark = pytest.mark.browser

if (_reason := missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Page, expect  # noqa: E402 - after the skip

CELLS = [
    "%load_ext chatmagic\n%chat sandbox",
    'def load_sales(region: str) -> str:\n    """Units sold in a region."""\n    return f"120 units in {region}"',
    '%%chat -p openai --new --tools load_sales\nHow did the north do? [[tool:load_sales {"region": "north <b>!</b>"}]]',
    "print('another cell ran')",
]


def _set_theme(page: Page, name: str, light: bool) -> None:
    page.evaluate(f"() => window.jupyterapp.commands.execute('apputils:change-theme', {{theme: {name!r}}})")
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{str(light).lower()}'")


def test_a_waiting_call_is_answered_by_its_button_and_the_output_goes_on(page: Page) -> None:
    try:
        _drive(page)
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / "tool-cell-failure.png"))
        raise


def _drive(page: Page) -> None:
    start_kernel_cell(page, 0, "Local stand-in")
    wait_idle(page)
    run_cell(page, 1)
    wait_idle(page)
    run_cell(page, 2)
    out = cell(page, 2).locator(".jp-OutputArea")
    expect(out).to_contain_text("waiting for your answer", timeout=30_000)
    expect(out).to_contain_text("north <b>!</b>")  # the argument in full, as text
    run_button = out.locator("button[data-answer='run']")
    expect(run_button).to_have_count(1, timeout=20_000)
    wait_idle(page)  # the cell ended while the call waits: the kernel is free
    run_cell(page, 3)
    expect(cell(page, 3).locator(".jp-OutputArea")).to_contain_text("another cell ran", timeout=20_000)
    out.screenshot(path=str(ARTIFACTS / "tool-cell-waiting-light.png"))
    _set_theme(page, "JupyterLab Dark", light=False)
    out.screenshot(path=str(ARTIFACTS / "tool-cell-waiting-dark.png"))
    _set_theme(page, "JupyterLab Light", light=True)
    run_button.click()
    expect(out).to_contain_text("120 units in north", timeout=30_000)
    expect(out).to_contain_text("done in")
    expect(out.locator("button[data-answer]")).to_have_count(0)
    assert out.locator("b").filter(has_text="!").count() == 0  # the model's markup stayed text
    out.screenshot(path=str(ARTIFACTS / "tool-cell-done-light.png"))
    _set_theme(page, "JupyterLab Dark", light=False)
    out.screenshot(path=str(ARTIFACTS / "tool-cell-done-dark.png"))
    _set_theme(page, "JupyterLab Light", light=True)
