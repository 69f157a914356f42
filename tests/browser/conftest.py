"""Real-browser tests: JupyterLab on 127.0.0.1 and headless Chromium, shared by the modules.

Each module names its notebook's cells in ``CELLS``; the ``lab`` fixture serves a notebook of
them from a JupyterLab of its own (the kernel imports chatmagic from this checkout), and
``page`` opens it. Set up with ``.ci/browser-setup.sh``; without Chromium, JupyterLab or
Playwright the modules are skipped. Screenshots go to ``test-artifacts/browser/``.
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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives JupyterLab in headless Chromium (needs .ci/browser-setup.sh)"
    )


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
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


def _notebook(cells: list[str]) -> dict[str, Any]:
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
            for i, src in enumerate(cells)
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
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """JupyterLab on 127.0.0.1 serving the module's notebook (``CELLS``); yields its URL."""
    root = tmp_path_factory.mktemp("lab")
    (root / "panel.ipynb").write_text(json.dumps(_notebook(request.module.CELLS)))
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
            # window.jupyterapp: the tests switch the theme with JupyterLab's own command
            "--LabApp.expose_app_in_browser=True",
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
            shutil.copy(root / "lab.log", ARTIFACTS / f"lab-{request.module.__name__.rsplit('.', 1)[-1]}.log")


@pytest.fixture(scope="module")
def page(lab: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            # a real paste (Ctrl+V) reads the system clipboard
            context.grant_permissions(["clipboard-read", "clipboard-write"])
            pg = context.new_page()
            pg.set_default_timeout(30_000)
            # under load JupyterLab may ask which kernel to start although the notebook names
            # one (seen in 3 runs of 10 on a busy machine): whenever that dialog covers the
            # page, before any action, take the kernel the notebook names
            pg.add_locator_handler(
                pg.locator(".jp-Dialog", has_text="Select Kernel"),
                lambda dialog: dialog.get_by_role("button", name="Select", exact=True).click(),
            )
            pg.goto(lab)
            pg.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=60_000)
            wait_idle(pg, 60_000)
            # JupyterLab asks whether to fetch news (it cannot here): answer, so the toast
            # does not cover the page in the screenshots
            no = pg.locator(".jp-toast-button", has_text="No")
            if no.count():
                no.first.click()
            yield pg
        finally:
            browser.close()


def wait_idle(page: Any, timeout: float = 30_000) -> None:
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout)


def cell(page: Any, i: int) -> Any:
    return page.locator(".jp-Notebook .jp-Cell").nth(i)


def run_cell(page: Any, i: int) -> None:
    """Select cell ``i`` and run it (Shift+Enter), without waiting for it to finish."""
    cell(page, i).locator(".cm-content").click()
    page.keyboard.press("Escape")  # command mode: Shift+Enter runs the selected cell
    page.keyboard.press("Shift+Enter")


def output_text(page: Any, i: int) -> str:
    return str(cell(page, i).locator(".jp-OutputArea").inner_text())


def start_kernel_cell(page: Any, i: int, expected: str) -> int:
    """Run the notebook's first cell until it answers; returns the tries it took.

    The first run can be lost while the fresh kernel's connection settles (the indicator
    already says idle): try again rather than fail on the frontend's start-up.
    """
    from playwright.sync_api import expect

    for attempt in range(3):
        run_cell(page, i)
        try:
            expect(cell(page, i).locator(".jp-OutputArea")).to_contain_text(expected, timeout=20_000)
            return attempt + 1
        except AssertionError:
            if attempt == 2:
                raise
    return 3
