"""The exchange log in use: panels' exchanges survive a kernel restart; %chat log searches."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client import KernelManager

from chatmagic.sandbox import Sandbox

from .conftest import SITES


class NotebookKernel:
    """A real kernel that believes it runs ``notebook`` (as JupyterLab tells it: JPY_SESSION_NAME)."""

    def __init__(self, sandbox: Sandbox, notebook: Path) -> None:
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env={**os.environ, "JPY_SESSION_NAME": str(notebook)}, cwd=str(notebook.parent))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        urls = {site: sandbox.base_url(site) for site in SITES}
        self.text("%load_ext chatmagic")
        self.text(f"%config ChatMagics.base_urls = {urls!r}")

    def text(self, code: str) -> str:
        out: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            c = msg["content"]
            if msg["msg_type"] == "stream":
                out.append(c["text"])
            elif msg["msg_type"] in ("execute_result", "display_data"):
                out.append(c["data"].get("text/plain", ""))
            elif msg["msg_type"] == "error":
                out.append(f"{c['ename']}: {c['evalue']}")

        self.kc.execute_interactive(code, timeout=60, output_hook=hook)
        return "".join(out)

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    path = tmp_path / "analysis.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    return path


def test_a_panels_exchange_survives_a_kernel_restart(sandbox_thread: Sandbox, notebook: Path) -> None:
    first = NotebookKernel(sandbox_thread, notebook)
    try:
        out = first.text(
            "from chatmagic.panel import ChatPanel\n"
            "panel = ChatPanel()\n"
            "turn = panel.send('remember the word pelican')\n"
            "print(turn.result(30)[:60]); panel.wait(10)"
        )
        assert "You said: remember the word pelican" in out
    finally:
        first.stop()
    second = NotebookKernel(sandbox_thread, notebook)  # the kernel restarted: nothing in memory
    try:
        assert (
            "0" == second.text("import chatmagic\nprint(len(chatmagic.get_session().conversation()))").strip()
        )
        restored = second.text("%chat restore")
        assert "default: 1 added" in restored
        history = second.text("%chat history")
        assert "remember the word pelican" in history
        found = second.text("%chat log pelican")
        assert "analysis.ipynb" in found and "pelican" in found
        assert "No exchange in the log matches" in second.text("%chat log walrus")
    finally:
        second.stop()


def test_the_log_can_be_turned_off(sandbox_thread: Sandbox, notebook: Path) -> None:
    kernel = NotebookKernel(sandbox_thread, notebook)
    try:
        kernel.text("%config ChatMagics.log_path = ''")
        kernel.text("%%chat\nnot to be logged: ibis")
        assert "The exchange log is off" in kernel.text("%chat log ibis")
        kernel.text("%config ChatMagics.log_path = None")
        assert "No exchange in the log matches" in kernel.text("%chat log ibis")
    finally:
        kernel.stop()
