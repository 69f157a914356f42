"""The exchange log in use: panels' exchanges survive a kernel restart; %chat log searches."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient

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
def notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # a log of the test's own (kernels take it from the environment): no test sees another's
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
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


def test_a_cells_exchange_is_found_in_the_log(sandbox_thread: Sandbox, notebook: Path) -> None:
    kernel = NotebookKernel(sandbox_thread, notebook)
    try:
        kernel.text("%%chat\ntell me about the heron")
        found = kernel.text("%chat log heron").splitlines()
        assert found[0].endswith('analysis.ipynb · default · chatgptt · gpt-4o  "tell me about the heron"')
        assert "«heron»" in found[1]
    finally:
        kernel.stop()


#: asked in turns by cells (saved in the notebook, and logged) and a panel (logged only)
PROMPTS = [
    "first, from a cell: heron",
    "second, from the panel: ibis",
    "third, from a cell: crane",
    "fourth, from the panel: stork",
]


def run_and_save(sandbox: Sandbox, notebook: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the notebook in a kernel of its own, as a frontend does, and save it with its outputs."""
    urls = {site: sandbox.base_url(site) for site in SITES}
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"%load_ext chatmagic\n%config ChatMagics.base_urls = {urls!r}"),
        nbformat.v4.new_code_cell(f"%%chat\n{PROMPTS[0]}"),
        nbformat.v4.new_code_cell(
            f"from chatmagic.panel import ChatPanel\npanel = ChatPanel()\n"
            f"panel.send({PROMPTS[1]!r}).result(30); panel.wait(10)"
        ),
        nbformat.v4.new_code_cell(f"%%chat\n{PROMPTS[2]}"),
        nbformat.v4.new_code_cell(f"panel.send({PROMPTS[3]!r}).result(30); panel.wait(10)"),
    ]
    with monkeypatch.context() as env:
        env.setenv("JPY_SESSION_NAME", str(notebook))
        NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    nbformat.write(nb, notebook)


def prompts_of(kernel: NotebookKernel, command: str = "%chat history --all") -> list[str]:
    shown = kernel.text(command)
    return [part.removeprefix("user: ") for part in shown.split("\n\n") if part.startswith("user: ")]


def test_restore_takes_the_notebooks_exchanges_and_the_logs_in_their_order(
    sandbox_thread: Sandbox, notebook: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_and_save(sandbox_thread, notebook, monkeypatch)
    kernel = NotebookKernel(sandbox_thread, notebook)  # after a restart: nothing in memory
    try:
        assert "default: 4 added" in kernel.text("%chat restore")
        assert prompts_of(kernel) == PROMPTS  # each once, in the order they were asked
        assert "default: 4 kept." in kernel.text("%chat restore")  # again: nothing doubled
        assert prompts_of(kernel) == PROMPTS
    finally:
        kernel.stop()


def test_restore_after_chatting_in_the_restarted_kernel(
    sandbox_thread: Sandbox, notebook: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # after a restart, a cell and a panel are both refused until restored (the notebook
    # holds this conversation); restored, the panel's exchange goes on from it and is
    # logged with it, and restoring again doubles nothing
    run_and_save(sandbox_thread, notebook, monkeypatch)
    kernel = NotebookKernel(sandbox_thread, notebook)
    try:
        assert "%chat restore brings them back" in kernel.text("%%chat\nfifth, after the restart: egret")
        refused = kernel.text(
            "from chatmagic.panel import ChatPanel\npanel = ChatPanel()\n"
            "print(panel.send('fifth, after the restart: egret'), panel.draft, panel.status)"
        )
        assert (
            refused.startswith("None fifth, after the restart: egret")
            and "%chat restore brings them back" in refused
        )
        assert "default: 4 added." in kernel.text("%chat restore")
        kernel.text("panel.send().result(30); panel.wait(10)")
        assert prompts_of(kernel) == [*PROMPTS, "fifth, after the restart: egret"]
        assert "default: 5 kept." in kernel.text("%chat restore")
    finally:
        kernel.stop()


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


def test_log_search_takes_quotes_and_operators_as_text(ip: Any, fresh: None, tmp_path: Path) -> None:
    from IPython.utils.capture import capture_output

    def shown(line: str) -> str:
        with capture_output() as io:
            ip.run_line_magic("chat", line)
        return io.stdout

    ip.run_line_magic("config", f"ChatMagics.log_path = {str(tmp_path / 'log.sqlite3')!r}")
    try:
        with capture_output():
            ip.run_cell('%%chat\nWhy don\'t (NOT or AND) "quoted" words about the heron* count?')
        for query in (
            "don't",
            "heron",
            '"heron" AND (not)',
            "(heron don't)",
            "heron*",
            "about-the-heron",
            'quoted"',
        ):
            found = shown(f"log {query}").splitlines()
            assert found[0].endswith('"Why don\'t (NOT or AND) "quoted" words about the heron* coun…"'), query
        assert shown("log -n 1 heron's").startswith("No exchange in the log matches")
        for query in (
            "sk-proj-Ab12Cd34Ef56Gh78Ij90",
            "ghp_0123456789abcdefABCDEF0123",
            "https://u:pw@host",
            "'",
        ):
            assert shown(f"log {query}").startswith("No exchange in the log matches"), query
    finally:
        ip.run_line_magic("config", "ChatMagics.log_path = None")
