"""Chatting *with* the notebook, in a real kernel against the stand-in: errors, context,
code into cells, the history budget, secrets, DataFrame summaries and replay."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from chatmagic.sandbox import Sandbox

from .conftest import SITES


class Kernel:
    """A real ipykernel with chatmagic loaded and every provider pointed at the stand-in."""

    def __init__(self, sandbox: Sandbox) -> None:
        from jupyter_client import KernelManager

        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel()
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        urls = {site: sandbox.base_url(site) for site in (*SITES, "openai")}
        self.run("%load_ext chatmagic")
        self.run(f"%config ChatMagics.base_urls = {urls!r}")
        self.run("%config ChatMagics.retries = 0")

    def run(self, code: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Execute a cell; returns the execute reply's content and the outputs it published."""
        msgs: list[dict[str, Any]] = []
        reply = self.kc.execute_interactive(code, timeout=60, output_hook=msgs.append)
        return reply["content"], [m for m in msgs if m["msg_type"] != "status"]

    def shown(self, code: str) -> str:
        """What the cell shows as text: the reply's final plain text, printed text, errors."""
        content, msgs = self.run(code)
        texts = []
        for m in msgs:
            c = m["content"]
            if m["msg_type"] in ("display_data", "update_display_data", "execute_result"):
                texts.append(c["data"].get("text/plain", ""))
            elif m["msg_type"] == "stream":
                texts.append(c["text"])
            elif m["msg_type"] == "error":
                texts.append(f"{c['ename']}: {c['evalue']}")
        return texts[-1] if texts else ""

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernel(sandbox_thread: Sandbox) -> Iterator[Kernel]:
    k = Kernel(sandbox_thread)
    sandbox_thread.clear()
    try:
        yield k
    finally:
        k.stop()


def sent(sandbox: Sandbox) -> list[str]:
    """What each chat request carried (its form or JSON body), as text."""
    out = []
    for r in sandbox.requests:
        if r.method == "POST":
            out.append(json.dumps(r.form if r.form is not None else r.json, ensure_ascii=False))
    return out


def test_fix_sends_the_error_and_the_failing_line(kernel: Kernel, sandbox_thread: Sandbox) -> None:
    assert "There is no error yet" in kernel.shown("%chat fix -p opchatgpts")
    assert sent(sandbox_thread) == []
    kernel.run("def ratio(a, b):\n    return a / b\n")
    kernel.run("ratio(1, 0)")
    shown = kernel.shown("%chat fix -p opchatgpts")
    assert shown.startswith("[opchatgpts] You said: Context from my Jupyter notebook:")
    (request,) = sent(sandbox_thread)
    assert "ZeroDivisionError" in request and "division by zero" in request
    assert "return a / b" in request and "ratio(1, 0)" in request
    # the exchange is kept in the conversation 'fix', started afresh: %%chat -c fix continues it
    assert "Earlier messages: 2." in kernel.shown("%%chat -c fix\nthanks")
    assert "Earlier messages: 0." in kernel.shown("%%chat -p opchatgpts\nthanks")


def test_error_option_attaches_the_error_to_my_message(kernel: Kernel, sandbox_thread: Sandbox) -> None:
    kernel.run("import json\njson.loads('{broken')")
    kernel.shown("%%chat -e -p opchatgpts\nWhy does this fail?")
    (request,) = sent(sandbox_thread)
    assert "JSONDecodeError" in request and "Why does this fail?" in request
    # library frames are summarized, not listed
    assert "frame(s) inside" in request and "decoder.py" not in request


def test_context_cells_and_vars_are_bounded_and_visible_in_a_dry_run(kernel: Kernel) -> None:
    kernel.run("data = list(range(100_000))\nname = 'x' * 50")
    kernel.run("len(data)")
    shown = kernel.shown("%%chat --context cells:1,vars --dry-run\nWhat do I have?")
    assert "In [" in shown and "len(data)" in shown and "100000" in shown
    assert "- data: list of 100000 items" in shown and "- name: str of length 50" in shown
    assert "nothing was sent" in shown
    assert len(shown) < 20_000
    assert "--context has no item 'frobs'" in kernel.shown("%%chat --context frobs\nhi")


def test_cells_context_sends_what_the_cells_printed(kernel: Kernel, sandbox_thread: Sandbox) -> None:
    kernel.run("import sys\nprint('PRINTED-OUTPUT')\nprint('ON-STDERR', file=sys.stderr)\n41 + 1")
    shown = kernel.shown("%%chat -p opchatgpts --context cells:1\nWhat happened?")
    # the reply still streams into the cell as usual
    assert shown.startswith("[opchatgpts] You said: Context from my Jupyter notebook:")
    (request,) = sent(sandbox_thread)
    assert "PRINTED-OUTPUT" in request and "ON-STDERR" in request
    # code, then what it printed, then its result
    assert request.index("print('PRINTED-OUTPUT')") < request.index("Printed:") < request.index("Out[")
    # newest last; the dry run shows the same
    dry = kernel.shown("%%chat --context cells:2 --dry-run\nAnd now?")
    assert "Printed:\n```\nPRINTED-OUTPUT\nON-STDERR\n```" in dry
    assert dry.index("PRINTED-OUTPUT") < dry.index("What happened?")
    # a flood of output keeps its first and last lines, the cut marked, within the budget
    kernel.run("for i in range(200_000):\n    print(f'line {i}')")
    dry = kernel.shown("%%chat --context cells:1 --dry-run\nToo much?")
    assert "line 0\n" in dry and "line 199999" in dry
    left_out = re.search(r"\[… ([\d,]+) characters of the printed output left out …\]", dry)
    assert left_out and int(left_out.group(1).replace(",", "")) > 2_000_000
    assert len(dry) < 8000


def test_printed_output_is_no_longer_watched_once_unloaded(kernel: Kernel) -> None:
    # a cell with a top-level await runs outside IPython's own output capture: what its
    # write is, is what chatmagic left in place
    probe = "import asyncio, sys\nawait asyncio.sleep(0)\nsys.stdout.write.__qualname__"
    assert "PrintedOutput" in kernel.shown(probe)
    kernel.run("%unload_ext chatmagic")
    assert "PrintedOutput" not in kernel.shown(probe)
    hooks = "[f.__qualname__ for f in get_ipython().events.callbacks['post_run_cell']]"
    assert "ChatMagics" not in kernel.shown(hooks)


def _on_the_cuts(secret: str, cut: Callable[[str], str], length: int) -> str:
    """A text of ``length`` characters with ``secret`` across both places where ``cut`` cuts it."""
    probe = cut("." * length)
    head, tail = len(probe) - len(probe.lstrip(".")), len(probe) - len(probe.rstrip("."))
    assert head + tail < length  # it is cut
    half = len(secret) // 2
    text = "." * length
    for start in (head - half, length - tail - half):
        text = text[:start] + secret + text[start + len(secret) :]
    return text


def test_a_secret_cut_in_two_leaves_no_piece(kernel: Kernel, sandbox_thread: Sandbox) -> None:
    from chatmagic.context import clip
    from chatmagic.interpolate import shorten

    secret = "sk-cut-0123456789abcdefXYZ"
    kernel.run(f"import os\nos.environ['MY_SERVICE_TOKEN'] = {secret!r}")
    # {v} keeps the two ends of a long value (ChatMagics.interpolate_max_chars, 2000)
    v = _on_the_cuts(secret, lambda text: shorten(text, 2000)[0], 5000)
    kernel.run(f"v = {v!r}")
    kernel.run("%%chat -i -p opchatgpts\nlook at {v}")
    # cells:1 keeps the two ends of the last cell's result (half of the 6,000-character budget)
    out = _on_the_cuts(secret, lambda text: clip(text, 3000, "the value"), 10_000)
    kernel.run(f"out = {out!r}")
    kernel.run("out")
    kernel.run("%%chat -c other -p opchatgpts --context cells:1\nwhat is this?")
    requests = sent(sandbox_thread)
    assert len(requests) == 2
    assert "characters of v left out" in requests[0] and "characters of the value left out" in requests[1]
    pieces = {secret[i : i + 8] for i in range(len(secret) - 7)}
    assert not [p for r in requests for p in pieces if p in r]


def test_a_default_context_goes_with_every_cell(kernel: Kernel, sandbox_thread: Sandbox) -> None:
    kernel.run("%config ChatMagics.context = 'cells:1,vars'")
    kernel.run("marker = 'DEFAULT-CONTEXT'")
    shown = kernel.shown("%%chat -p opchatgpts\nhi")
    (request,) = sent(sandbox_thread)
    assert "marker = 'DEFAULT-CONTEXT'" in request and "- marker: str of length 15" in request
    assert "with last 1 cell, variables" in shown
    # a bad default says so in one line, naming the setting, and keeps the one before
    shown = kernel.shown("%config ChatMagics.context = 'cells:1,frobs'")
    assert "ChatMagics.context has no item 'frobs'" in shown and shown.count("\n") <= 1
    assert kernel.shown("%config ChatMagics.context") == "'cells:1,vars'"


def test_a_bad_default_context_set_before_loading_is_one_line(sandbox_thread: Sandbox) -> None:
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        kc.execute_interactive("%config ChatMagics.context = 'frobs'", timeout=60)
        msgs: list[dict[str, Any]] = []
        kc.execute_interactive("%load_ext chatmagic", timeout=60, output_hook=msgs.append)
        shown = [m["content"] for m in msgs if m["msg_type"] in ("stream", "error")]
        (only,) = shown
        assert "ChatMagics.context has no item 'frobs'" in only["text"] and only["text"].count("\n") == 1
        assert "its default is used" in only["text"]  # loaded all the same, without the bad value
        msgs.clear()
        kc.execute_interactive("%config ChatMagics.context", timeout=60, output_hook=msgs.append)
        assert [m["content"]["data"]["text/plain"] for m in msgs if m["msg_type"] == "execute_result"] == [
            "''"
        ]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_a_refused_setting_does_not_stop_a_reload(sandbox_thread: Sandbox) -> None:
    """IPython keeps a value %config refused in the shell's config: a reload meets it."""
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    url = sandbox_thread.base_url("opchatgpts")

    def shown(code: str) -> str:
        msgs: list[dict[str, Any]] = []
        kc.execute_interactive(code, timeout=60, output_hook=msgs.append)
        return "".join(
            m["content"].get("text") or m["content"].get("data", {}).get("text/plain", "")
            for m in msgs
            if m["msg_type"] in ("stream", "execute_result", "error", "display_data", "update_display_data")
        )

    try:
        kc.wait_for_ready(timeout=60)
        shown("%load_ext chatmagic")
        shown(f"%config ChatMagics.base_urls = {{'opchatgpts': {url!r}}}")
        shown("%config ChatMagics.base_urls = {'opchatgpts': 'localhost:11434'}")  # refused
        said = shown("%reload_ext chatmagic")
        assert "Traceback" not in said and said.count("\n") == 1, said
        assert "ChatMagics.base_urls was not taken" in said and "the value it had is kept" in said
        assert shown("%config ChatMagics.base_urls") == repr({"opchatgpts": url})
        # one ChatMagics takes %config values: none left over from the load that failed, or
        # from before the reload, passing its own values on to the shared session
        count = "from chatmagic.magics import ChatMagics as M; sum(isinstance(c, M) for c in get_ipython().configurables)"
        assert shown(count) == "1"
        assert "You said: hi" in shown("%%chat -p opchatgpts\nhi")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_code_goes_into_a_new_cell(kernel: Kernel) -> None:
    reply_text = "[[reply]]Try this:\n\n```python\nprint('hi')\n```\n\nand then\n\n```\nx = 1\n```\nDone."
    content, msgs = kernel.run(f"%%chat -f code -p opchatgpts\n{reply_text}")
    payloads = [p for p in content.get("payload", []) if p.get("source") == "set_next_input"]
    assert len(payloads) == 1
    assert payloads[0]["text"] == "print('hi')\n\nx = 1"
    assert payloads[0]["replace"] is False
    # the reply itself is shown rendered, its code coloured
    html = [m for m in msgs if m["msg_type"] == "update_display_data"][-1]["content"]["data"]["text/html"]
    assert "Try this" in html and "<pre" in html
    content, msgs = kernel.run("%%chat -f code -p opchatgpts\n[[reply]]No code here, only prose.")
    assert not [p for p in content.get("payload", []) if p.get("source") == "set_next_input"]
    final = [m for m in msgs if m["msg_type"] == "update_display_data"][-1]["content"]["data"]["text/plain"]
    assert "no code block" in final


def test_history_budget_sends_the_newest_exchanges_that_fit(kernel: Kernel, sandbox_thread: Sandbox) -> None:
    for i in range(6):
        kernel.run(f"%%chat -p opchatgpts\nmessage {i} " + "pad " * 100)
    kernel.run("%config ChatMagics.max_history_chars = 3000")
    sandbox_thread.clear()
    shown = kernel.shown("%%chat\nlast")
    (request,) = sent(sandbox_thread)
    assert "message 5" in request and "message 4" in request
    assert "message 0" not in request
    assert "earlier exchanges" in shown and "of 6 earlier exchanges" in shown
    # the history itself is kept whole
    assert "7" in kernel.shown("import chatmagic\nlen(chatmagic.get_session().conversation())")


def test_secrets_never_reach_the_provider(kernel: Kernel, sandbox_thread: Sandbox) -> None:
    secret = "sk-test-0123456789abcdef"
    kernel.run(f"import os\nos.environ['MY_SERVICE_TOKEN'] = {secret!r}\ntoken = {secret!r}")
    dry = kernel.shown("%%chat -i --dry-run -p opchatgpts\nmy token is {token}")
    assert secret not in dry and "[redacted MY_SERVICE_TOKEN]" in dry
    kernel.run("%%chat -i -p opchatgpts\nmy token is {token}, also " + secret)
    kernel.run(f"raise ValueError('bad token {secret}')")
    kernel.run("%chat fix")
    assert sent(sandbox_thread) and not any(secret in r for r in sent(sandbox_thread))
    assert not any(secret[:12] in r for r in sent(sandbox_thread))
    # the conversation keeps what was sent, not the secret
    history = kernel.shown(
        "import chatmagic\nstr([m.content for m in chatmagic.get_session().conversation().history()])"
    )
    assert secret not in history
    # and it can be turned off
    kernel.run("%config ChatMagics.redact_secrets = False")
    dry = kernel.shown("%%chat -i --dry-run -p opchatgpts\nmy token is {token}")
    assert secret in dry


def test_a_large_dataframe_goes_as_a_summary(kernel: Kernel, sandbox_thread: Sandbox) -> None:
    pytest.importorskip("pandas")
    kernel.run(
        "import numpy as np, pandas as pd\n"
        "df = pd.DataFrame({'a': np.arange(100_000), 'b': np.arange(100_000) * 0.5, 'c': ['x'] * 100_000})\n"
        "arr = np.arange(1_000_000).reshape(1000, 1000)\n"
    )
    kernel.run("%%chat -i -p opchatgpts\nDescribe {df} and {arr}")
    (request,) = sent(sandbox_thread)
    assert len(request) < 3000
    assert "100,000 rows and 3 columns" in request
    assert "a: int64" in request and ("c: object" in request or "c: str" in request)
    assert "shape (1000, 1000)" in request and "int64" in request


def _execute(cells: list[str], path: Path, sandbox: Sandbox) -> nbformat.NotebookNode:
    urls = {site: sandbox.base_url(site) for site in SITES}
    setup = f"%load_ext chatmagic\n%config ChatMagics.base_urls = {urls!r}\n%config ChatMagics.retries = 0"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(setup)] + [nbformat.v4.new_code_cell(src) for src in cells]
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    nbformat.write(nb, path)
    return nb


def _replies(nb: nbformat.NotebookNode) -> list[str]:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            record = o.get("metadata", {}).get("chatmagic")
            if record:
                out.append(record["assistant"])
    return out


def test_replay_reruns_a_saved_notebook_without_the_network(tmp_path: Path, sandbox_thread: Sandbox) -> None:
    chat_cells = [
        "%%chat -p opchatgpts\nfirst question",
        "%%chat\nsecond question",
        "%%chat -c other\nelsewhere",
    ]
    path = tmp_path / "saved.ipynb"
    first = _execute(chat_cells, path, sandbox_thread)
    assert len(_replies(first)) == 3
    # Restart & Run All: the saved notebook itself, with restore and replay at the top
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell(f"%config ChatMagics.replay = True\n%chat restore {path}"))
    sandbox_thread.clear()
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    assert sent(sandbox_thread) == []
    assert _replies(nb) == _replies(first)
    statuses = [
        o["data"]["text/plain"]
        for c in nb.cells[2:]
        for o in c.outputs
        if o.get("data", {}).get("text/plain")
    ]
    assert all("replayed" in s for s in statuses), statuses
    # a changed cell is sent for real
    nb.cells[3].source = "%%chat\na different second question"
    sandbox_thread.clear()
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    assert len(sent(sandbox_thread)) == 1


def test_replay_is_off_by_default(tmp_path: Path, sandbox_thread: Sandbox) -> None:
    path = tmp_path / "saved.ipynb"
    _execute(["%%chat -p opchatgpts\nonce"], path, sandbox_thread)
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell(f"%chat restore {path}"))
    sandbox_thread.clear()
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    assert len(sent(sandbox_thread)) == 1
