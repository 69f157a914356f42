"""The chat panel in a real JupyterLab, driven by headless Chromium.

Set up with ``.ci/browser-setup.sh``. The notebook starts the local stand-in in its
kernel (``%chat sandbox``), so nothing leaves 127.0.0.1. Screenshots of the panel go to
``test-artifacts/browser/``; what the kernel did with the widget messages (which thread
ran the Stop click, and whether it ran while another cell was busy) goes to
``test-artifacts/browser/observations.json``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .conftest import ARTIFACTS, cell, missing, output_text, run_cell, start_kernel_cell, wait_idle

pytestmark = pytest.mark.browser

if (_reason := missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Page, expect  # noqa: E402 - after the skip

#: the notebook's cells, run one by one with Shift+Enter
CELLS = [
    "%load_ext chatmagic\n%chat sandbox",
    (
        "panel = %chat panel\n"
        "# the test's own record of the thread that ran each widget message (Enter, Stop)\n"
        "import threading\n"
        "threads = []\n"
        "def note_thread(*_args):\n"
        "    threads.append(threading.current_thread().name)\n"
        "panel.on_msg(note_thread)  # every message of the page: Enter, Stop, ...\n"
        "panel"
    ),
    "1+1",
    "import time; time.sleep(4); 'slept'",
    (
        "from chatmagic._state import get_session\n"
        "conv = get_session().conversation()\n"
        "print('HISTORY', [(m.role, m.content[:60], m.stopped) for m in conv.history()])\n"
        "print('THREADS', sorted(set(threads)), threading.main_thread().name)"
    ),
    # 5-8: %%chat cells in the same kernel
    "%%chat -c cells -p opchatgpts\nCount for me [[words:150]][[delay:0.02]]",
    (
        "%%chat -c cells\n[[reply]]| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> '
        "[link](javascript:window.__pwned=3) **bold**"
    ),
    "%%chat -c cells\nA long one [[words:3000]][[delay:0.05]]",
    (
        "import chatmagic\n"
        "c = chatmagic.get_session().conversation('cells')\n"
        "print('CELLS', len(c), [ex.key.split(':')[0] for ex in c.exchanges], [ex.stopped for ex in c.exchanges])"
    ),
]


def test_panel_in_jupyterlab(page: Page) -> None:
    try:
        _drive(page)
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / "failure.png"))
        raise


def _drive(page: Page) -> None:
    observations: dict[str, Any] = {}

    observations["first_cell_attempts"] = start_kernel_cell(page, 0, "Local stand-in")
    run_cell(page, 1)
    panel = page.locator(".chatmagic-panel")
    expect(panel).to_be_visible(timeout=30_000)
    wait_idle(page)

    # a streaming site, chosen in the provider picker; the model box follows
    panel.locator(".cm-provider select").select_option(value="opchatgpts")
    expect(panel.locator(".chatmagic-status")).to_contain_text("opchatgpts", timeout=10_000)
    expect(panel.locator(".cm-model input")).to_have_value("gpt-3.5-turbo")
    box = panel.locator("textarea")

    # Enter sends; the reply streams in
    box.fill("Hello from the browser [[words:40]][[delay:0.02]]")
    box.press("Enter")
    expect(panel.locator(".chatmagic-user").last).to_contain_text("Hello from the browser")
    assistant = panel.locator(".chatmagic-assistant").last
    expect(panel.locator(".chatmagic-status")).to_contain_text("first text", timeout=30_000)
    expect(box).to_have_value("")
    assert len(assistant.inner_text().split()) >= 40
    panel.screenshot(path=str(ARTIFACTS / "panel-reply.png"))

    # a slow reply: the kernel stays free (another cell runs) while it streams
    box.fill("Take your time [[words:300]][[delay:0.1]]")
    box.press("Enter")
    expect(panel.locator(".chatmagic-assistant").last).to_contain_text("streaming…", timeout=15_000)
    send = panel.locator("button.cm-send")
    expect(send).to_be_disabled()
    started = time.monotonic()
    run_cell(page, 2)
    expect(cell(page, 2).locator(".jp-OutputArea-output")).to_have_text("2", timeout=15_000)
    observations["other_cell_s"] = round(time.monotonic() - started, 2)
    expect(panel.locator(".chatmagic-assistant").last).to_contain_text("streaming…")
    page.screenshot(path=str(ARTIFACTS / "panel-streaming-and-cell.png"))

    # Stop while a cell keeps the main shell busy: whether the click is handled now or
    # only after the cell depends on subshells (ipykernel >= 7 with JupyterLab >= 4.4)
    run_cell(page, 3)
    page.wait_for_timeout(500)
    clicked = time.monotonic()
    panel.locator("button.cm-stop").click()
    expect(panel.locator(".chatmagic-status")).to_contain_text("stopped", timeout=15_000)
    observations["stop_shown_s"] = round(time.monotonic() - clicked, 2)
    expect(cell(page, 3).locator(".jp-OutputArea")).to_contain_text("slept", timeout=15_000)
    observations["sleep_cell_done_s"] = round(time.monotonic() - clicked, 2)
    observations["stop_honoured_during_busy_cell"] = (
        observations["stop_shown_s"] < observations["sleep_cell_done_s"] - 0.5
    )
    expect(send).to_be_enabled()
    expect(panel.locator(".chatmagic-assistant").last).to_contain_text("■ stopped")
    wait_idle(page)
    panel.screenshot(path=str(ARTIFACTS / "panel-stopped.png"))

    # a reply taller than the transcript: the view stays on its newest lines
    box.fill("A long one [[words:900]][[delay:0.002]]")
    box.press("Enter")
    expect(panel.locator(".chatmagic-assistant").last).to_contain_text("w900", timeout=30_000)
    expect(send).to_be_enabled()
    gap = panel.locator(".chatmagic-transcript").evaluate(
        """el => {
            const last = el.querySelectorAll('.chatmagic-assistant');
            const box = el.getBoundingClientRect(), msg = last[last.length - 1].getBoundingClientRect();
            return {overflows: el.scrollHeight > el.clientHeight + 10, gap: box.bottom - msg.bottom};
        }"""
    )
    observations["long_reply_scroll"] = gap
    assert gap["overflows"] and 0 <= gap["gap"] < 40, gap
    panel.screenshot(path=str(ARTIFACTS / "panel-long.png"))

    # the kernel's view: the history, and which threads ran the panel's callbacks
    run_cell(page, 4)
    expect(cell(page, 4).locator(".jp-OutputArea")).to_contain_text("THREADS", timeout=15_000)
    report = output_text(page, 4)
    observations["kernel_report"] = report
    (ARTIFACTS / "observations.json").write_text(json.dumps(observations, indent=2))
    print(json.dumps(observations, indent=2))
    assert "Hello from the browser" in report
    assert "THREADS []" not in report  # the notebook's own handlers saw Enter and Stop
    assert "Take your time" in report and "True)" in report  # the stopped exchange is kept


def test_chat_cells_in_jupyterlab(page: Page) -> None:
    """%%chat in a real frontend: streaming, safe Markdown, Ctrl-C, re-run by cell id."""
    try:
        _drive_cells(page)
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / "cells-failure.png"))
        raise


def _drive_cells(page: Page) -> None:
    wait_idle(page)
    # the reply streams into the cell: its text grows while the cell runs
    run_cell(page, 5)
    out = cell(page, 5).locator(".jp-OutputArea")
    expect(out).to_contain_text("streaming…", timeout=15_000)
    seen = [out.inner_text()]
    page.wait_for_timeout(700)
    seen.append(out.inner_text())
    expect(out).to_contain_text("w150", timeout=30_000)
    expect(out).to_contain_text("first text")
    assert len(seen[0]) < len(seen[1]), seen
    wait_idle(page)

    # Markdown renders; model HTML and javascript: links never run
    run_cell(page, 6)
    out = cell(page, 6).locator(".jp-OutputArea")
    expect(out.locator("table")).to_be_visible(timeout=15_000)
    expect(out.locator("strong")).to_have_text("bold")
    wait_idle(page)
    assert page.evaluate("window.__pwned") is None
    assert out.locator("img, script, iframe").count() == 0
    cell(page, 6).screenshot(path=str(ARTIFACTS / "cell-markdown.png"))

    # interrupting the kernel (I, I) stops the reply at once and keeps its text
    run_cell(page, 7)
    out = cell(page, 7).locator(".jp-OutputArea")
    expect(out).to_contain_text("w20 ", timeout=15_000)
    page.keyboard.press("Escape")
    page.keyboard.press("i")
    page.keyboard.press("i")
    expect(out).to_contain_text("■ stopped", timeout=15_000)
    expect(out).to_contain_text("TurnStopped")
    assert "w3000" not in out.inner_text()
    wait_idle(page)
    cell(page, 7).screenshot(path=str(ARTIFACTS / "cell-stopped.png"))

    # re-running a cell replaces its own exchange (JupyterLab sends the cell id)
    run_cell(page, 5)
    expect(cell(page, 5).locator(".jp-OutputArea")).to_contain_text("w150", timeout=30_000)
    wait_idle(page)
    run_cell(page, 8)
    out = cell(page, 8).locator(".jp-OutputArea")
    expect(out).to_contain_text("CELLS", timeout=15_000)
    assert "CELLS 3 ['cell', 'cell', 'cell'] [False, False, True]" in out.inner_text()
