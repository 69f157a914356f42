"""The chat panel in a real JupyterLab, driven by headless Chromium.

Set up with ``.ci/browser-setup.sh``. The notebook starts the local stand-in in its
kernel (``%chat sandbox``), so nothing leaves 127.0.0.1. Screenshots of the panel go to
``test-artifacts/browser/``; what the kernel did with the widget messages (which thread
ran the Stop click, and whether it ran while another cell was busy) goes to
``test-artifacts/browser/observations.json``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # the browser, too, reaches nothing but the JupyterLab server on loopback
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]


def _missing() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (apt-get install -y chromium, or run .ci/browser-setup.sh)"
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        return "jupyterlab is not installed in this venv (run .ci/browser-setup.sh)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed in this venv (run .ci/browser-setup.sh)"
    return None


if (_reason := _missing()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402 - after the skip

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
        "panel.text.on_msg(note_thread)\n"
        "panel.stop_button.on_click(note_thread)\n"
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


def _notebook() -> dict[str, Any]:
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"cell{i}",
                "metadata": {},
                "outputs": [],
                "source": src,
            }
            for i, src in enumerate(CELLS)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """JupyterLab on 127.0.0.1 serving a directory with the test notebook; yields its URL."""
    root = tmp_path_factory.mktemp("lab")
    (root / "panel.ipynb").write_text(json.dumps(_notebook()))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    # the kernel imports chatmagic from this checkout; Jupyter's state stays in the temp dir
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["JUPYTER_RUNTIME_DIR"] = str(root / ".runtime")
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(root / ".workspaces")
    env["JUPYTERLAB_SETTINGS_DIR"] = str(root / ".settings")
    log = open(root / "lab.log", "wb")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            "--allow-root",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.port_retries=0",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError(
                        "JupyterLab did not start:\n" + (root / "lab.log").read_text()[-3000:]
                    ) from None
                time.sleep(0.3)
        yield f"{base}/lab/tree/panel.ipynb?token={token}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        if ARTIFACTS.exists():
            shutil.copy(root / "lab.log", ARTIFACTS / "lab.log")


@pytest.fixture(scope="module")
def page(lab: str) -> Iterator[Page]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1280, "height": 1000})
            pg.set_default_timeout(30_000)
            pg.goto(lab)
            pg.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=60_000)
            _wait_idle(pg, 60_000)
            # JupyterLab asks whether to fetch news (it cannot here): answer, so the toast
            # does not cover the page in the screenshots
            no = pg.locator(".jp-toast-button", has_text="No")
            if no.count():
                no.first.click()
            yield pg
        finally:
            browser.close()


def _wait_idle(page: Page, timeout: float = 30_000) -> None:
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout)


def _cell(page: Page, i: int) -> Any:
    return page.locator(".jp-Notebook .jp-Cell").nth(i)


def _run_cell(page: Page, i: int) -> None:
    """Select cell ``i`` and run it (Shift+Enter), without waiting for it to finish."""
    _cell(page, i).locator(".cm-content").click()
    page.keyboard.press("Escape")  # command mode: Shift+Enter runs the selected cell
    page.keyboard.press("Shift+Enter")


def _output_text(page: Page, i: int) -> str:
    return str(_cell(page, i).locator(".jp-OutputArea").inner_text())


def test_panel_in_jupyterlab(page: Page) -> None:
    try:
        _drive(page)
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / "failure.png"))
        raise


def _drive(page: Page) -> None:
    observations: dict[str, Any] = {}

    # the first run can be lost while the fresh kernel's connection settles (the indicator
    # already says idle): try again rather than fail on the frontend's start-up
    for attempt in range(3):
        _run_cell(page, 0)
        try:
            expect(_cell(page, 0).locator(".jp-OutputArea")).to_contain_text("Local stand-in", timeout=20_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
    observations["first_cell_attempts"] = attempt + 1
    _run_cell(page, 1)
    panel = page.locator(".chatmagic-panel")
    expect(panel).to_be_visible(timeout=30_000)
    _wait_idle(page)

    # a streaming site, chosen in the provider dropdown; the model dropdown follows
    # (a Dropdown's <option> values are its labels, "Label (name)")
    provider_select = panel.locator("select").first
    label = next(t for t in provider_select.locator("option").all_inner_texts() if "(opchatgpts)" in t)
    provider_select.select_option(label=label)
    expect(panel.locator(".chatmagic-status")).to_contain_text("opchatgpts", timeout=10_000)
    box = panel.locator("input[type='text']")

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
    send = panel.locator("button", has_text="Send")
    expect(send).to_be_disabled()
    started = time.monotonic()
    _run_cell(page, 2)
    expect(_cell(page, 2).locator(".jp-OutputArea-output")).to_have_text("2", timeout=15_000)
    observations["other_cell_s"] = round(time.monotonic() - started, 2)
    expect(panel.locator(".chatmagic-assistant").last).to_contain_text("streaming…")
    page.screenshot(path=str(ARTIFACTS / "panel-streaming-and-cell.png"))

    # Stop while a cell keeps the main shell busy: whether the click is handled now or
    # only after the cell depends on subshells (ipykernel >= 7 with JupyterLab >= 4.4)
    _run_cell(page, 3)
    page.wait_for_timeout(500)
    clicked = time.monotonic()
    panel.locator("button", has_text="Stop").click()
    expect(panel.locator(".chatmagic-status")).to_contain_text("stopped", timeout=15_000)
    observations["stop_shown_s"] = round(time.monotonic() - clicked, 2)
    expect(_cell(page, 3).locator(".jp-OutputArea")).to_contain_text("slept", timeout=15_000)
    observations["sleep_cell_done_s"] = round(time.monotonic() - clicked, 2)
    observations["stop_honoured_during_busy_cell"] = (
        observations["stop_shown_s"] < observations["sleep_cell_done_s"] - 0.5
    )
    expect(send).to_be_enabled()
    expect(panel.locator(".chatmagic-assistant").last).to_contain_text("■ stopped")
    _wait_idle(page)
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
    _run_cell(page, 4)
    expect(_cell(page, 4).locator(".jp-OutputArea")).to_contain_text("THREADS", timeout=15_000)
    report = _output_text(page, 4)
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
    _wait_idle(page)
    # the reply streams into the cell: its text grows while the cell runs
    _run_cell(page, 5)
    out = _cell(page, 5).locator(".jp-OutputArea")
    expect(out).to_contain_text("streaming…", timeout=15_000)
    seen = [out.inner_text()]
    page.wait_for_timeout(700)
    seen.append(out.inner_text())
    expect(out).to_contain_text("w150", timeout=30_000)
    expect(out).to_contain_text("first text")
    assert len(seen[0]) < len(seen[1]), seen
    _wait_idle(page)

    # Markdown renders; model HTML and javascript: links never run
    _run_cell(page, 6)
    out = _cell(page, 6).locator(".jp-OutputArea")
    expect(out.locator("table")).to_be_visible(timeout=15_000)
    expect(out.locator("strong")).to_have_text("bold")
    _wait_idle(page)
    assert page.evaluate("window.__pwned") is None
    assert out.locator("img, script, iframe").count() == 0
    _cell(page, 6).screenshot(path=str(ARTIFACTS / "cell-markdown.png"))

    # interrupting the kernel (I, I) stops the reply at once and keeps its text
    _run_cell(page, 7)
    out = _cell(page, 7).locator(".jp-OutputArea")
    expect(out).to_contain_text("w20 ", timeout=15_000)
    page.keyboard.press("Escape")
    page.keyboard.press("i")
    page.keyboard.press("i")
    expect(out).to_contain_text("■ stopped", timeout=15_000)
    expect(out).to_contain_text("TurnStopped")
    assert "w3000" not in out.inner_text()
    _wait_idle(page)
    _cell(page, 7).screenshot(path=str(ARTIFACTS / "cell-stopped.png"))

    # re-running a cell replaces its own exchange (JupyterLab sends the cell id)
    _run_cell(page, 5)
    expect(_cell(page, 5).locator(".jp-OutputArea")).to_contain_text("w150", timeout=30_000)
    _wait_idle(page)
    _run_cell(page, 8)
    out = _cell(page, 8).locator(".jp-OutputArea")
    expect(out).to_contain_text("CELLS", timeout=15_000)
    assert "CELLS 3 ['cell', 'cell', 'cell'] [False, False, True]" in out.inner_text()
