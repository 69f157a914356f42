"""A restart that forgets nothing: the first turn of a conversation that the notebook (or
the log, for this notebook) holds and the kernel does not is refused in one line naming
%chat restore, never answered from an empty history."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from chatmagic._state import get_session
from chatmagic.record import exchange_record
from chatmagic.sandbox import Sandbox
from chatmagic.session import Conversation, Exchange, Message

from .conftest import SITES
from .test_log_session import NotebookKernel
from .test_magics import reply, run

REFUSED = (
    "This notebook holds 2 earlier exchanges of 'review' that this kernel does not (a restarted "
    "kernel starts empty): %chat restore brings them back; %%chat -c review --new starts the "
    "conversation afresh."
)


def _saved(path: Path, conv: Conversation, *exchanges: Exchange) -> Path:
    nb = nbformat.v4.new_notebook()
    for ex in exchanges:
        cell = nbformat.v4.new_code_cell(f"%%chat -c {conv.name}\n{ex.user.content}")
        cell.outputs = [
            nbformat.v4.new_output(
                "display_data", data={"text/plain": ""}, metadata={"chatmagic": exchange_record(conv, ex)}
            )
        ]
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


def _exchange(user: str, seq: int) -> Exchange:
    return Exchange(
        user=Message("user", user),
        assistant=Message("assistant", f"re: {user}"),
        provider="chatgptt",
        model="gpt-4o",
        key=f"cell:r{seq}",
        finished_at=100.0 + seq,
        seq=seq,
    )


@pytest.fixture
def open_notebook(ip: Any, fresh: None, tmp_path: Path) -> Iterator[Path]:
    """A saved notebook with two exchanges of 'review', open in the frontend (``__session__``)."""
    path = _saved(
        tmp_path / "analysis.ipynb", Conversation("review"), _exchange("one", 0), _exchange("two", 1)
    )
    ip.user_ns["__session__"] = str(path)
    try:
        yield path
    finally:
        ip.user_ns.pop("__session__", None)
        get_session().notebook = None


def _posts(sandbox: Sandbox) -> int:
    return sum(r.method == "POST" for r in sandbox.requests)


def test_the_first_turn_is_refused_until_restored(
    ip: Any, open_notebook: Path, sandbox_thread: Sandbox
) -> None:
    sandbox_thread.clear()
    result, io = run(ip, "%%chat -c review\nand now?")
    assert str(result.error_in_exec) == REFUSED
    assert "Traceback" not in io.stdout + io.stderr
    assert _posts(sandbox_thread) == 0 and len(get_session().conversation("review")) == 0
    result, io = run(ip, "%%chat -c review --dry-run\nand now?")
    assert str(result.error_in_exec) == REFUSED
    # restored: the conversation goes on with everything in it
    result, io = run(ip, "%chat restore")
    assert io.stdout.strip() == f"Restored from {open_notebook}: review: 2 added."
    assert "You said: and now?\n\nEarlier messages: 4." in reply(ip, "%%chat -c review\nand now?")


def test_what_the_turn_would_not_have_been_sent_with_refuses_nothing(
    ip: Any, open_notebook: Path, sandbox_thread: Sandbox
) -> None:
    # Restart & Run All: the cell of the first exchange has nothing before it; the next
    # one finds the conversation going
    assert "Earlier messages: 0." in reply(ip, "%%chat -c review\none", cell_id="r0")
    assert "Earlier messages: 2." in reply(ip, "%%chat -c review\ntwo", cell_id="r1")
    # a conversation the notebook does not hold, or one started afresh on purpose
    assert "Earlier messages: 0." in reply(ip, "%%chat -c elsewhere\nhi")
    assert "Earlier messages: 0." in reply(ip, "%%chat -c review2\nhi")


def test_new_starts_afresh_on_purpose(ip: Any, open_notebook: Path) -> None:
    assert "Earlier messages: 0." in reply(ip, "%%chat -c review --new\nfrom scratch")
    assert "Earlier messages: 2." in reply(ip, "%%chat -c review\nand on")


def test_the_log_of_this_notebook_counts_too(ip: Any, open_notebook: Path, tmp_path: Path) -> None:
    # a panel's exchanges live in the log only
    session = get_session()
    panel = Conversation("chat-1")
    log = session.log
    assert log is not None
    for ex in (_exchange("p1", 0), _exchange("p2", 1)):
        ex.key = None
        log.add(exchange_record(panel, ex), str(open_notebook))
    result, io = run(ip, "%%chat -c chat-1\nhello again")
    assert str(result.error_in_exec) == REFUSED.replace("'review'", "'chat-1'").replace(
        "-c review", "-c chat-1"
    )
    # the same log's records of another notebook are that notebook's
    other = tmp_path / "other.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), other)
    ip.user_ns["__session__"] = str(other)
    assert "Earlier messages: 0." in reply(ip, "%%chat -c chat-1\nhello again")


def test_a_restarted_kernel_refuses_then_restores(
    sandbox_thread: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    notebook = tmp_path / "analysis.ipynb"
    urls = {site: sandbox_thread.base_url(site) for site in SITES}
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"%load_ext chatmagic\n%config ChatMagics.base_urls = {urls!r}"),
        nbformat.v4.new_code_cell('%%chat -c review -s "You are a strict reviewer."\nfirst'),
        nbformat.v4.new_code_cell("%%chat -c review\nsecond"),
    ]
    with monkeypatch.context() as env:
        env.setenv("JPY_SESSION_NAME", str(notebook))
        NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    nbformat.write(nb, notebook)

    kernel = NotebookKernel(sandbox_thread, notebook)  # the kernel restarted: nothing in memory
    try:
        sandbox_thread.clear()
        refused = kernel.text("%%chat -c review\nthird")
        assert refused.strip() == f"UsageError: {REFUSED}"
        assert _posts(sandbox_thread) == 0
        restored = kernel.text("%chat restore")
        assert restored.splitlines() == [
            f"Restored from {notebook}: review: 2 added.",
            'Settings saved in the file, not applied: review: system prompt "You are a strict reviewer.". '
            "%chat restore --settings applies them.",
        ]
        restored = kernel.text("%chat restore --settings")
        assert "Settings from the file, now the conversation's: review: system prompt" in restored
        kernel.text("%%chat -c review\nthird")
        answer = kernel.text(
            "import chatmagic\nc = chatmagic.get_session().conversation('review')\n"
            "print(len(c), c.system, repr(c.exchanges[-1].assistant.content))"
        )
        # the system prompt and the four messages went with it
        assert answer.strip() == (
            "3 You are a strict reviewer. '[chatgptt] You said: third\\n\\nEarlier messages: 5.'"
        )
    finally:
        kernel.stop()


def test_the_panel_refuses_the_same_first_turn(ip: Any, open_notebook: Path, sandbox_thread: Sandbox) -> None:
    # the panel's Send goes through the same check: the text comes back and the status line
    # says what to do, nothing is sent
    sandbox_thread.clear()
    panel = run(ip, "%chat panel review")[0].result
    try:
        assert panel.send("and now?") is None
        assert html.unescape(re.sub("<[^>]+>", "", panel.status)) == REFUSED.replace(
            "%%chat -c review --new starts the conversation afresh", "New chat starts a new one"
        )
        assert panel.draft == "and now?"
        assert _posts(sandbox_thread) == 0 and len(get_session().conversation("review")) == 0
        # New chat is afresh on purpose, whatever a log of an earlier kernel named chat-N
        fresh = panel.new_chat()
        assert fresh.started_afresh and panel.conversation is fresh
    finally:
        panel.close()
