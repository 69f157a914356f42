"""Tool cards and their buttons in JupyterLab, in the panel and in a cell (headless Chromium).

- a panel turn whose tool call waits: its card (name, arguments, "waiting") and Run / Deny /
  Always; a click on Run runs the tool in the kernel (no cell runs) and the result card and
  the answer appear; the same in the dark theme (Deny there) and in a narrow window;
- a panel turn over ``ChatMagics.max_input_tokens``: the glass box with Send anyway / Cancel;
  Cancel gives the message back, nothing sent;
- a ``%%chat --tools forecast`` cell whose call waits ("Always" was for load_sales only): the
  cell's Run button, then its answer.

Screenshots go to ``test-artifacts/browser/`` (``tools-*.png``).
"""

from __future__ import annotations

import pytest

from .conftest import ARTIFACTS, cell, missing, run_cell, start_kernel_cell, wait_idle

pytestmark = pytest.mark.browser

if (_reason := missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Locator, Page, expect  # noqa: E402 - after the skip

from .test_panel_ui import CONTRAST_JS  # noqa: E402 - after the skip

CELLS = [
    "%load_ext chatmagic\n%chat sandbox",
    (
        "ran = []\n"
        "def load_sales(region: str, note: str = '') -> str:\n"
        "    '''Sales of a region, as a short line.'''\n"
        "    ran.append(region)\n"
        "    return f'120 units in {region} <b>(not bold)</b>'\n"
        "def forecast(region: str) -> str:\n"
        "    '''Next month's sales of a region.'''\n"
        "    ran.append(f'forecast {region}')\n"
        "    return f'about 130 units in {region}'\n"
        "from chatmagic.panel import ChatPanel\n"
        "panel = ChatPanel('tools', tools='load_sales,notebook')\n"
        "panel.provider = 'openai'\n"
        "panel"
    ),
    "%config ChatMagics.max_input_tokens = 5\nprint('budget: 5 tokens')",
    "%config ChatMagics.max_input_tokens = 0\nprint('budget: none')",
    '%%chat -p openai -c cell --tools forecast\nAnd the west? [[tool:forecast {"region": "west"}]]',
    "print('RAN', ran)",
]

NORTH = 'How did the north do? [[tool:load_sales {"region": "north", "note": "' + "a long note " * 20 + '"}]]'


def test_tool_cards_in_the_panel_and_a_cell(page: Page) -> None:
    try:
        _drive(page)
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / "tools-failure.png"))
        raise


def _set_theme(page: Page, name: str, light: bool) -> None:
    page.evaluate(f"() => window.jupyterapp.commands.execute('apputils:change-theme', {{theme: {name!r}}})")
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{str(light).lower()}'")
    page.wait_for_timeout(300)


def _contrast(page: Page, theme: str) -> None:
    """Every text of the cards and buttons reaches 4.5:1 (measured as test_panel_ui does)."""
    result = page.evaluate(CONTRAST_JS)
    tools = [f for f in result["failures"] if "cm-" in f["where"] or "button" in f["where"]]
    print(theme, result["count"], result["min"], tools)
    assert not tools, (theme, tools)


def _send(panel: Locator, text: str) -> None:
    box = panel.locator("textarea")
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")


def _waiting(panel: Locator) -> Locator:
    """The buttons of the call that waits (visible once the card is drawn)."""
    ask = panel.locator(".cm-panel-tools .cm-ask").last
    expect(ask).to_be_visible(timeout=30_000)
    expect(panel.locator(".cm-tool-waiting").last).to_contain_text("waiting for your answer")
    return ask


def _drive(page: Page) -> None:
    start_kernel_cell(page, 0, "Local stand-in")
    run_cell(page, 1)
    panel = cell(page, 1).locator(".chatmagic-panel")
    expect(panel).to_be_visible(timeout=30_000)
    wait_idle(page)

    # -- light: a call waits, Run runs it, the answer follows ----------------------------
    _send(panel, NORTH)
    ask = _waiting(panel)
    expect(ask.get_by_role("button", name="Run", exact=True)).to_be_visible()
    expect(ask.get_by_role("button", name="Deny", exact=True)).to_be_visible()
    expect(ask.get_by_role("button", name="Always for load_sales in this session")).to_be_visible()
    panel.screenshot(path=str(ARTIFACTS / "tools-panel-waiting-light.png"))
    _contrast(page, "light")
    ask.get_by_role("button", name="Run", exact=True).click()
    answer = panel.locator(".chatmagic-assistant").last
    expect(answer).to_contain_text("Tool results", timeout=30_000)
    expect(answer.locator(".cm-tool-done")).to_contain_text("done in")
    expect(answer).to_contain_text("120 units in north <b>(not bold)</b>")  # as text, not HTML
    expect(panel.locator(".cm-send")).to_be_enabled()
    panel.screenshot(path=str(ARTIFACTS / "tools-panel-done-light.png"))

    # -- dark: another call waits; Deny tells the model ---------------------------------
    _set_theme(page, "JupyterLab Dark", light=False)
    _send(panel, '[[tool:load_sales {"region": "south"}]]')
    ask = _waiting(panel)
    panel.screenshot(path=str(ARTIFACTS / "tools-panel-waiting-dark.png"))
    _contrast(page, "dark")
    ask.get_by_role("button", name="Deny", exact=True).click()
    expect(panel.locator(".chatmagic-assistant").last.locator(".cm-tool-declined")).to_contain_text(
        "declined by you", timeout=30_000
    )
    expect(panel.locator(".cm-send")).to_be_enabled()
    panel.screenshot(path=str(ARTIFACTS / "tools-panel-done-dark.png"))
    _set_theme(page, "JupyterLab Light", light=True)

    # -- narrow: a waiting card fits, its buttons wrap and stay whole --------------------
    page.evaluate(
        "() => { window.jupyterapp.shell.collapseLeft(); window.jupyterapp.shell.collapseRight(); }"
    )
    page.set_viewport_size({"width": 460, "height": 900})
    page.wait_for_timeout(500)
    _send(panel, NORTH)
    ask = _waiting(panel)
    panel.scroll_into_view_if_needed()
    wide = panel.evaluate("p => [p.scrollWidth, p.clientWidth]")
    assert wide[0] <= wide[1] + 1, wide  # nothing sticks out sideways
    panel.screenshot(path=str(ARTIFACTS / "tools-panel-waiting-narrow.png"))
    ask.get_by_role("button", name="Always for load_sales in this session").click()
    expect(panel.locator(".chatmagic-assistant").last).to_contain_text("Tool results", timeout=30_000)
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.wait_for_timeout(300)

    # -- over budget: the glass box waits for Send anyway / Cancel ------------------------
    run_cell(page, 2)
    expect(cell(page, 2).locator(".jp-OutputArea")).to_contain_text("budget: 5 tokens", timeout=30_000)
    _send(panel, "A question well over a budget of five tokens, surely.")
    question = panel.locator(".cm-question")
    expect(question).to_contain_text("Send anyway", timeout=30_000)
    panel.screenshot(path=str(ARTIFACTS / "tools-panel-budget-light.png"))
    _set_theme(page, "JupyterLab Dark", light=False)
    _contrast(page, "dark, the budget question")
    panel.screenshot(path=str(ARTIFACTS / "tools-panel-budget-dark.png"))
    _set_theme(page, "JupyterLab Light", light=True)
    question.get_by_role("button", name="Cancel", exact=True).click()
    expect(panel.locator(".cm-status")).to_contain_text("Cancelled: nothing was sent", timeout=30_000)
    expect(panel.locator("textarea")).to_have_value("A question well over a budget of five tokens, surely.")
    expect(question).to_have_count(0)
    run_cell(page, 3)
    expect(cell(page, 3).locator(".jp-OutputArea")).to_contain_text("budget: none", timeout=30_000)

    # -- a cell: its card and Run button ------------------------------------------------
    out = cell(page, 4)
    run_cell(page, 4)
    run_button = out.get_by_role("button", name="Run", exact=True)
    expect(run_button).to_be_visible(timeout=30_000)
    out.screenshot(path=str(ARTIFACTS / "tools-cell-waiting.png"))
    run_button.click()
    expect(out.locator(".jp-OutputArea")).to_contain_text("Tool results", timeout=30_000)
    expect(out.locator(".jp-OutputArea")).to_contain_text("done in")
    out.screenshot(path=str(ARTIFACTS / "tools-cell-done.png"))
    run_cell(page, 5)
    expect(cell(page, 5).locator(".jp-OutputArea")).to_contain_text(
        "RAN ['north', 'north', 'forecast west']", timeout=30_000
    )

    # -- propose_cell: Insert as cell puts the code into a new cell below the panel --------
    _send(panel, '[[tool:propose_cell {"code": "answer = 41 + 1  # <not run>"}]]')
    insert = panel.locator(".chatmagic-assistant").last.locator("~ .cm-inserts button.cm-insert")
    expect(panel.locator(".chatmagic-assistant").last).to_contain_text("propose_cell", timeout=30_000)
    expect(insert.last).to_be_visible()
    panel.screenshot(path=str(ARTIFACTS / "tools-panel-propose.png"))
    insert.last.click()
    expect(insert.last).to_have_text("Inserted below the panel")
    expect(cell(page, 2).locator(".cm-content")).to_have_text("answer = 41 + 1  # <not run>")
    expect(cell(page, 2).locator(".jp-OutputArea-output")).to_have_count(0)  # never run
