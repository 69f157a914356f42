"""``%chat compact`` and ``--context plots`` in a real IPython shell and a real kernel, against
the stand-in: what the user sees, what the next request carries, undo, failures, restore."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.utils.capture import capture_output
from nbclient import NotebookClient

from chatmagic._state import get_session
from chatmagic.errors import ChatMagicError
from chatmagic.sandbox import Sandbox

from .conftest import SITES

SITE = "opchatgpts"


def posts(sandbox: Sandbox) -> list[str]:
    return [
        json.dumps(r.form if r.form is not None else r.json, ensure_ascii=False)
        for r in sandbox.requests
        if r.method == "POST"
    ]


def chats(sandbox: Sandbox) -> list[Any]:
    """The chat requests (not a server's description of its model, /api/show)."""
    return [r for r in sandbox.requests if r.method == "POST" and not r.path.endswith("/api/show")]


def shown(ip: Any, line: str) -> str:
    with capture_output() as out:
        ip.run_line_magic("chat", line)
    return out.stdout + "".join(o.data.get("text/plain", "") for o in out.outputs)


def five_exchanges(ip: Any) -> None:
    for word in ("heron", "ibis", "crane", "stork", "egret"):
        ip.run_cell_magic("chat", f"-p {SITE}", f"tell me about the {word}")


def test_compact_history_next_request_and_undo(ip: Any, fresh: None, sandbox_thread: Sandbox) -> None:
    five_exchanges(ip)
    conv = get_session().conversation()
    out = shown(ip, "compact")
    assert "Summary of 3 earlier exchanges" in out and "the newest 2 kept as they are" in out
    assert "You said: Summarize our conversation so far" in out
    # %chat history: the compacted view; --all: every original too
    history = shown(ip, "history")
    assert "tell me about the heron" not in history
    assert "Summary of 3 earlier exchanges" in history and "tell me about the stork" in history
    every = shown(ip, "history --all")
    for word in ("heron", "ibis", "crane", "stork", "egret"):
        assert f"tell me about the {word}" in every
    # the glass box names it as what it is
    assert "exchange 1: summary of 3 earlier exchanges" in shown(ip, "context")
    # the next request: the summary and the two kept exchanges, not the originals
    sandbox_thread.clear()
    ip.run_cell_magic("chat", "", "and the flamingo?")
    (request,) = posts(sandbox_thread)
    assert "Summarize our conversation so far" in request and "tell me about the stork" in request
    assert "tell me about the heron" not in request
    assert conv.exchanges[-1].assistant.content.endswith("Earlier messages: 6.")
    out = shown(ip, "compact --undo")
    assert "summary of 3 earlier exchanges is taken out" in out
    sandbox_thread.clear()
    ip.run_cell_magic("chat", "", "and the spoonbill?")
    assert "tell me about the heron" in posts(sandbox_thread)[0]
    with pytest.raises(ChatMagicError, match="holds no summary"):
        ip.run_line_magic("chat", "compact --undo")


def test_usage_counts_the_summary_and_every_original(ip: Any, fresh: None) -> None:
    for word in ("heron", "ibis", "crane"):
        ip.run_cell_magic("chat", "-p ollama", f"tell me about the {word}")  # the server counts tokens
    before = shown(ip, "usage")
    assert before.endswith("over 3 replies.\n"), before
    shown(ip, "compact --keep 1")
    after = shown(ip, "usage")
    assert after.endswith("over 4 replies.\n"), after  # the three, and the summary's own turn


def test_a_failed_compaction_changes_nothing(ip: Any, fresh: None, sandbox_thread: Sandbox) -> None:
    five_exchanges(ip)
    conv = get_session().conversation()
    before = list(conv.exchanges)
    sandbox_thread.inject(SITE, "http500")
    with pytest.raises(ChatMagicError, match="The summary was not written: failed .* Nothing changed"):
        ip.run_line_magic("chat", "compact")
    assert conv.exchanges == before
    assert "Nothing to compact in 'default': it holds 5 exchanges" in shown(ip, "compact --keep 5")
    assert conv.exchanges == before


def test_restore_after_a_restart_gives_the_compacted_view(
    ip: Any, fresh: None, sandbox_thread: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    urls = {site: sandbox_thread.base_url(site) for site in SITES}
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"%load_ext chatmagic\n%config ChatMagics.base_urls = {urls!r}")]
    nb.cells += [
        nbformat.v4.new_code_cell(f"%%chat -p {SITE}\ntell me about the {word}")
        for word in ("heron", "ibis", "crane")
    ]
    nb.cells.append(nbformat.v4.new_code_cell("%chat compact --keep 1"))
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    path = tmp_path / "birds.ipynb"
    nbformat.write(nb, path)
    ip.run_line_magic("config", "ChatMagics.log_path = ''")
    report = shown(ip, f"restore {path}")
    assert "2 added" in report and "2 inside summaries" in report
    conv = get_session().conversation()
    assert [ex.user.content.split(":")[0] for ex in conv.exchanges][1:] == ["tell me about the crane"]
    assert "Summary of 2 earlier exchanges" in shown(ip, "history")
    every = shown(ip, "history --all")
    assert "tell me about the heron" in every and "tell me about the ibis" in every
    again = shown(ip, f"restore {path}")  # restoring twice keeps the compacted view as it is
    assert "2 kept" in again and len(conv.exchanges) == 2, again
    shown(ip, "compact --undo")
    assert len(conv.exchanges) == 3
    shown(ip, f"restore {path}")  # the notebook keeps no undo: its summary comes back (docs/compact.md)
    assert len(conv.exchanges) == 2 and conv.exchanges[0].summarizes
    # the notebook run again after the restore meets its compact cell with the work done: said, not raised
    assert "already one summary" in shown(ip, "compact --keep 1")
    sandbox_thread.clear()
    ip.run_cell_magic("chat", "", "and the stork?")
    (request,) = posts(sandbox_thread)
    assert "Summarize our conversation" in request and "tell me about the heron" not in request


def test_restore_of_a_summary_of_a_summary_whose_first_cell_was_run_again(
    ip: Any, fresh: None, sandbox_thread: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    urls = {site: sandbox_thread.base_url(site) for site in SITES}
    cells = [f"%load_ext chatmagic\n%config ChatMagics.base_urls = {urls!r}"]
    cells += [f"%%chat -p {SITE}\ntell me about the {word}" for word in ("heron", "ibis", "crane")]
    cells += [
        "%chat compact --keep 1",
        f"%%chat -p {SITE}\ntell me about the stork",
        "%chat compact --keep 0",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    nb.cells[4].outputs = []  # its record gone: the second summary's record carries the first
    path = tmp_path / "birds.ipynb"
    nbformat.write(nb, path)
    ip.run_line_magic("config", "ChatMagics.log_path = ''")
    assert "1 added, 4 inside summaries" in shown(ip, f"restore {path}")
    (summary,) = get_session().conversation().exchanges
    assert "Summary of 4 earlier exchanges" in shown(ip, "history")
    every = shown(ip, "history --all")
    assert all(f"tell me about the {w}" in every for w in ("heron", "ibis", "crane", "stork"))
    assert every.count("Summary of 2 earlier exchanges") == 1


# -- --context plots, in a real kernel ---------------------------------------------------


@pytest.fixture
def kernel(sandbox_thread: Sandbox) -> Any:
    from .test_notebook_context import Kernel

    k = Kernel(sandbox_thread)
    urls = {site: sandbox_thread.base_url(site) for site in (*SITES, "ollama")}
    k.run(f"%config ChatMagics.base_urls = {urls!r}")
    sandbox_thread.clear()
    try:
        yield k
    finally:
        k.stop()


def test_plots_go_downscaled_to_a_vision_model_and_are_refused_without_vision(
    kernel: Any, sandbox_thread: Sandbox
) -> None:
    import base64
    import io

    from PIL import Image

    from chatmagic.plots import MAX_PLOT_BYTES, MAX_PLOT_SIDE

    vision = "-p ollama -m gpt-4o"  # the stand-in's Ollama says gpt-4o sees images, llama3.2 does not
    assert "no cell has displayed a figure yet" in kernel.shown(f"%%chat {vision} --context plots\nWhat?")
    kernel.run(
        "%matplotlib inline\nimport matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=(12, 8), dpi=200)\nax.plot([1, 4, 9, 16])\nplt.show()"
    )
    refused = kernel.shown("%%chat -p chatgptt --context plots\nWhat does the plot show?")
    assert refused.startswith("UsageError: --context plots sends images, and chatgptt takes none")
    refused = kernel.shown("%%chat -p ollama -m llama3.2 --context plots\nWhat does the plot show?")
    assert refused.startswith("UsageError: --context plots sends images, and llama3.2 on ollama takes none")
    assert chats(sandbox_thread) == []  # asking the server about its model is no chat
    dry = kernel.shown(f"%%chat {vision} --context plots:1 --dry-run\nWhat does the plot show?")
    # the inline backend cuts the figure to its content (bbox_inches="tight"): about 1955×1319
    assert "plot of In [" in dry and re.search(r"downscaled from (19|20)\d\d×1\d\d\d to 1024×6\d\d", dry)
    # the glass box counts the plot as the image part it is (OpenAI's 4-tile high-detail cost, estimated)
    assert re.search(r"attached plot of In \[\d+\] \(image/png, \d+ KB;.*≈765", dry)
    reply = kernel.shown(f"%%chat {vision} --context plots\nWhat does the plot show?")
    assert "Images: 1." in reply and "attached plot of In [" in reply
    (request,) = chats(sandbox_thread)
    (part,) = [p for p in request.json["messages"][-1]["content"] if p["type"] == "image_url"]
    data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
    with Image.open(io.BytesIO(data)) as img:
        assert max(img.size) == MAX_PLOT_SIDE and f"to {img.size[0]}×{img.size[1]}" in dry
    assert len(data) <= MAX_PLOT_BYTES


def headless(kernel: Any, code: str, interrupt_after: float | None = None) -> list[str]:
    """The errors of a cell run with no one at the input line (``allow_stdin=False``), the
    kernel interrupted (Ctrl-C) ``interrupt_after`` seconds in."""
    import time

    msg_id = kernel.kc.execute(code, allow_stdin=False)
    if interrupt_after is not None:
        time.sleep(interrupt_after)
        kernel.km.interrupt_kernel()
    errors = []
    while True:
        msg = kernel.kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "error":
            errors.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return errors


def test_ctrl_c_while_the_summary_is_written_changes_nothing(kernel: Any, sandbox_thread: Sandbox) -> None:
    for word in ("heron", "ibis", "crane"):
        kernel.run(f"%%chat -p {SITE}\ntell me about the {word}")
    sandbox_thread.inject(SITE, "stall")
    errors = headless(kernel, "%chat compact --keep 1", interrupt_after=1.5)
    assert errors == ["TurnStopped: Stopped by the user: no summary was written, nothing changed."]
    history = kernel.shown("%chat history")
    assert "tell me about the heron" in history and "Summary of" not in history
    assert "You said: and the stork?" in kernel.shown("%%chat\nand the stork?")  # not left busy


def test_a_summary_over_the_budget_is_asked_for_and_refused_with_no_one_to_ask(
    kernel: Any, sandbox_thread: Sandbox
) -> None:
    for word in ("heron", "ibis", "crane"):
        kernel.run(f"%%chat -p {SITE}\ntell me about the {word}")
    kernel.run("%config ChatMagics.max_input_tokens = 20")
    sandbox_thread.clear()
    refused = headless(kernel, "%chat compact --keep 1")  # as nbclient runs it: no one to ask
    (line,) = refused
    assert line.startswith("NotSent: This turn is over budget: ") and "nothing was sent" in line
    assert chats(sandbox_thread) == []
    assert "Summary of" not in kernel.shown("%chat history")
