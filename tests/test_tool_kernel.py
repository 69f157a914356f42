"""The tool loop in a real kernel against the stand-in: a named tool called and its result
used; a call waiting for approval while another cell runs, then approved, and the same
output going on; deny; "always" for one function; headless declines; replay and Run All
call nothing; parallel calls; argument fragments across reads; the step limit; Stop; a
tool that raises; a secret in a result scrubbed; a call of a tool not offered refused."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from chatmagic.sandbox import Sandbox

from ._tool_schemas import KEY
from .conftest import SITES

TOOLS = """
import os, time
calls = []
def get_weather(city: str, days: int = 1) -> str:
    '''The weather in a city.

    Args:
        city: The city.
        days: How many days.
    '''
    calls.append(("get_weather", city))
    print("looking it up")
    return f"sunny in {city} for {days} days"
def broken(n: int) -> int:
    '''Always fails.'''
    calls.append(("broken", n))
    raise KeyError(f"no row {n}")
def leak() -> str:
    '''Returns a secret by mistake.'''
    calls.append(("leak",))
    return "the key is " + os.environ["MY_SERVICE_TOKEN"]
def slow(seconds: float) -> str:
    '''Takes its time.'''
    calls.append(("slow", seconds))
    time.sleep(seconds)
    return "slept"
"""

#: a cell that waits, without blocking the kernel, until the conversation's turn ended
SETTLE = """
import asyncio
from chatmagic._state import get_session
_conv = get_session().conversation({name!r})
for _ in range(400):
    if _conv.active is None:
        break
    await asyncio.sleep(0.025)
_ex = _conv.exchanges[-1] if _conv.exchanges else None
_steps = [s.to_dict() for s in _ex.tools] if _ex else []
print(json.dumps({{"steps": _steps, "text": _ex.assistant.content if _ex else None, "calls": calls}}))
"""


class Kernel:
    """A real ipykernel; every IOPub message it publishes is kept (a paused cell's output
    goes on after the cell ended)."""

    def __init__(self, sandbox: Sandbox) -> None:
        from jupyter_client import KernelManager

        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env={**os.environ, "MY_SERVICE_TOKEN": "tok-0123456789abcdef"})
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.seen: list[dict[str, Any]] = []
        urls = {site: sandbox.base_url(site) for site in (*SITES, "openai")}
        self.run("%load_ext chatmagic\nimport json")
        self.run(f"%config ChatMagics.base_urls = {urls!r}\n%config ChatMagics.retries = 0")
        self.run(f"import os; os.environ['OPENAI_API_KEY'] = {KEY!r}")
        self.run(TOOLS)

    def run(self, code: str, *, allow_stdin: bool = True, timeout: float = 60) -> tuple[str, dict[str, Any]]:
        """Run a cell; its message id and its execute reply."""
        msg_id = self.kc.execute(code, allow_stdin=allow_stdin)
        deadline = time.monotonic() + timeout
        idle = False
        while not idle:
            msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            self.seen.append(msg)
            idle = (
                msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
                and msg["parent_header"].get("msg_id") == msg_id
            )
        reply = self.kc.get_shell_msg(timeout=10)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=10)
        return msg_id, reply["content"]

    def outputs(self, msg_id: str) -> list[dict[str, Any]]:
        return [
            m for m in self.seen if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] != "status"
        ]

    def texts(self, msg_id: str) -> str:
        """Everything a cell showed, as text (plain text of every display and update, printed text, errors)."""
        out = []
        for m in self.outputs(msg_id):
            c = m["content"]
            if m["msg_type"] in ("display_data", "update_display_data", "execute_result"):
                out.append(c["data"].get("text/plain", "") + c["data"].get("text/html", ""))
            elif m["msg_type"] == "stream":
                out.append(c["text"])
            elif m["msg_type"] == "error":
                out.append(f"{c['ename']}: {c['evalue']}")
        return "\n".join(out)

    def printed(self, code: str) -> str:
        msg_id, reply = self.run(code)
        assert reply["status"] == "ok", self.texts(msg_id)
        return "".join(m["content"]["text"] for m in self.outputs(msg_id) if m["msg_type"] == "stream")

    def settle(self, conversation: str) -> dict[str, Any]:
        return json.loads(self.printed(SETTLE.format(name=conversation)).strip().splitlines()[-1])

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def kernel(sandbox_thread: Sandbox) -> Iterator[Kernel]:
    k = Kernel(sandbox_thread)
    try:
        yield k
    finally:
        k.stop()


def chat(
    kernel: Kernel, conversation: str, prompt: str, tools: str = "get_weather", **kw: Any
) -> tuple[str, str]:
    msg_id, reply = kernel.run(f"%%chat -p openai -c {conversation} --new --tools {tools}\n{prompt}", **kw)
    return msg_id, kernel.texts(msg_id)


def tool_messages(sandbox: Sandbox) -> list[list[dict[str, Any]]]:
    """The tool answers each chat request carried."""
    return [
        [m for m in r.json["messages"] if m.get("role") == "tool"]
        for r in sandbox.requests
        if r.method == "POST" and isinstance(r.json, dict) and "messages" in r.json
    ]


def test_a_call_waits_other_cells_run_then_approve_and_the_same_output_goes_on(
    kernel: Kernel, sandbox_thread: Sandbox
) -> None:
    sandbox_thread.clear()
    cell, shown = chat(kernel, "w", 'Weather? [[tool:get_weather {"city": "Oslo", "days": 2}]]')
    assert "waiting for your answer" in shown and "%chat approve t" in shown
    # the kernel is free: another cell runs, and the tool has not
    assert kernel.printed("print(6 * 7, calls)").strip() == "42 []"
    ask = shown.split("%chat approve ")[1].split()[0].rstrip("<·")
    approve, reply = kernel.run(f"%chat approve {ask}")
    assert reply["status"] == "ok", kernel.texts(approve)
    result = kernel.settle("w")
    assert result["calls"] == [["get_weather", "Oslo"]]
    (step,) = result["steps"]
    assert (
        step["state"] == "done"
        and step["by"] == "user"
        and json.loads(step["arguments"]) == {"city": "Oslo", "days": 2}
    )
    assert "get_weather: <tool_output" in result["text"] and "sunny in Oslo for 2 days" in result["text"]
    # the same output went on: its display was updated with the answer and the done card
    later = kernel.texts(cell)
    assert "sunny in Oslo for 2 days" in later and "done in" in later
    (answers,) = [t for t in tool_messages(sandbox_thread) if t]
    assert "Printed:\nlooking it up" in answers[0]["content"]


def test_deny_and_always_for_one_function(kernel: Kernel) -> None:
    _, shown = chat(kernel, "d", "[[tool:get_weather]]")
    kernel.run("%chat deny")
    result = kernel.settle("d")
    assert result["steps"][0]["state"] == "declined" and "The user declined this call" in result["text"]
    assert all(c[0] != "get_weather" or c[1] != "" for c in result["calls"])
    chat(kernel, "a", '[[tool:get_weather {"city": "Rome"}]]')
    kernel.run("%chat approve --always")
    assert kernel.settle("a")["steps"][0]["by"] == "user"
    # the next call of the same function asks no more; another function still asks
    _, shown = chat(kernel, "a2", '[[tool:get_weather {"city": "Lima"}]]')
    assert "waiting for your answer" not in shown
    steps = kernel.settle("a2")["steps"]
    assert steps[0]["state"] == "done" and steps[0]["by"] == "always"
    _, shown = chat(kernel, "a3", "[[tool:broken]]", tools="get_weather,broken")
    assert "waiting for your answer" in shown
    kernel.run("%chat deny")
    kernel.settle("a3")


def test_headless_declines_at_once_and_runs_nothing(kernel: Kernel) -> None:
    before = kernel.settle("nothing")["calls"]
    started = time.monotonic()
    _, shown = chat(kernel, "h", "[[tool:broken]]", tools="broken", allow_stdin=False)
    assert time.monotonic() - started < 20
    result = kernel.settle("h")
    assert result["steps"][0]["state"] == "declined" and result["steps"][0]["by"] == "no one to ask"
    assert "no one can give it" in result["text"] and result["calls"] == before


def test_built_ins_run_without_asking_parallel_calls_and_the_step_limit(
    kernel: Kernel, sandbox_thread: Sandbox
) -> None:
    sandbox_thread.clear()
    _, shown = chat(
        kernel, "p", '[[tool:list_variables]] [[tool:describe_variable {"name": "calls"}]]', tools="notebook"
    )
    steps = kernel.settle("p")["steps"]
    assert [s["state"] for s in steps] == ["done", "done"] and {s["by"] for s in steps} == {"read-only"}
    answered = [t for t in tool_messages(sandbox_thread) if t]
    assert len(answered) == 1 and len(answered[0]) == 2  # both answers in one request
    sandbox_thread.clear()
    kernel.run("%config ChatMagics.max_tool_steps = 2")
    try:
        _, shown = chat(kernel, "s", "[[tool:list_variables]] [[steps:5]]", tools="list_variables")
        result = kernel.settle("s")
        assert [s["state"] for s in result["steps"]] == ["done", "skipped"]
        assert "stopped after 2 model calls" in kernel.texts(_)
        assert len([r for r in sandbox_thread.requests if r.method == "POST"]) == 2
    finally:
        kernel.run("%config ChatMagics.max_tool_steps = 8")


def test_fragments_a_tool_that_raises_a_secret_and_a_tool_not_offered(
    kernel: Kernel, sandbox_thread: Sandbox
) -> None:
    kernel.run(
        "from chatmagic._state import get_session\nfor _n in ('broken', 'leak'): get_session().pauses.allow(_n)"
    )
    sandbox_thread.clear()
    long_city = "Zürich «" + "x" * 200 + "»"
    chat(kernel, "f", f"[[fault:tiny_writes]][[tool:get_weather {json.dumps({'city': long_city})}]]")
    kernel.run("%chat approve")
    result = kernel.settle("f")
    assert result["calls"][-1] == ["get_weather", long_city] and result["steps"][0]["state"] == "done"
    chat(kernel, "r", '[[tool:broken {"n": 7}]]', tools="broken")
    result = kernel.settle("r")
    assert result["steps"][0]["state"] == "failed" and result["steps"][0]["error"] == "KeyError: 'no row 7'"
    assert "The tool raised an error: KeyError: 'no row 7'" in result["text"]
    sandbox_thread.clear()
    _, shown = chat(kernel, "k", "[[tool:leak]]", tools="leak")
    result = kernel.settle("k")
    assert (
        "tok-0123456789abcdef" not in json.dumps(result) + json.dumps(tool_messages(sandbox_thread)) + shown
    )
    assert "[redacted MY_SERVICE_TOKEN]" in json.dumps(tool_messages(sandbox_thread))
    before = len(kernel.settle("k")["calls"])
    _, shown = chat(kernel, "n", '[[tool:leak]] [[tool:os.remove {"path": "x"}]]', tools="get_weather")
    result = kernel.settle("n")
    assert [s["state"] for s in result["steps"]] == ["refused", "refused"]
    assert "a tool that was not offered" in result["steps"][0]["error"] and len(result["calls"]) == before


def test_stop_mid_loop_keeps_what_was_said(kernel: Kernel) -> None:
    kernel.run("from chatmagic._state import get_session\nget_session().pauses.allow('slow')")
    msg_id = kernel.kc.execute(
        '%%chat -p openai -c stop --new --tools slow\n[[tool:slow {"seconds": 0.6}]] [[steps:50]]'
    )
    time.sleep(2.5)
    kernel.km.interrupt_kernel()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        msg = kernel.kc.get_iopub_msg(timeout=30)
        kernel.seen.append(msg)
        if msg["parent_header"].get("msg_id") == msg_id and msg["content"].get("execution_state") == "idle":
            break
    result = kernel.settle("stop")
    states = [s["state"] for s in result["steps"]]
    assert 1 <= states.count("done") < 50 and states[-1] in ("done", "stopped")
    assert "■ stopped" in kernel.texts(msg_id) and "TurnStopped: Stopped by the user." in kernel.texts(msg_id)


def test_a_waiting_turn_is_stopped_from_a_later_cell_without_an_interrupt(kernel: Kernel) -> None:
    nothing, _ = kernel.run("%chat stop")
    assert "No turn is running or waiting in any conversation: nothing to stop." in kernel.texts(nothing)
    kernel.run(
        'def fetch(url: str) -> str:\n    """Fetches."""\n    calls.append(("fetch", url))\n    return "page"'
    )
    cell, shown = chat(kernel, "halt", '[[tool:fetch {"url": "x"}]] [[reply]]Let me look.', tools="fetch")
    assert "waiting for your answer" in shown  # the cell ended; the turn waits in a thread
    before = kernel.settle("nothing")["calls"]
    stop, reply = kernel.run("%chat stop halt")
    assert reply["status"] == "ok", kernel.texts(stop)
    assert (
        "Stopped the turn of 'halt'; the call waiting for your answer (fetch) was not run. "
        "The text so far is kept in the conversation, marked as stopped." in kernel.texts(stop)
    )
    result = kernel.settle("halt")
    (step,) = result["steps"]
    assert step["state"] == "stopped" and step["by"] == "stopped" and result["calls"] == before
    assert result["text"].startswith("Let me look.")
    # the question was answered: nothing waits, and its cell's card and status say stopped
    assert "Nothing is waiting for an answer." in kernel.texts(kernel.run("%chat approve")[0])
    deadline = time.monotonic() + 10
    while "stopped: not run" not in kernel.texts(cell) and time.monotonic() < deadline:
        kernel.printed("import time; time.sleep(0.2)")
    assert "stopped: not run" in kernel.texts(cell) and "■ stopped" in kernel.texts(cell)
    # the conversation is free again
    msg_id, reply = kernel.run("%%chat -p openai -c halt\nGo on.")
    assert reply["status"] == "ok", kernel.texts(msg_id)


def test_replay_and_run_all_call_nothing(kernel: Kernel, tmp_path: Path, sandbox_thread: Sandbox) -> None:
    urls = {site: sandbox_thread.base_url(site) for site in (*SITES, "openai")}
    marker = tmp_path / "ran.txt"
    setup = (
        f"%load_ext chatmagic\n%config ChatMagics.base_urls = {urls!r}\n%config ChatMagics.retries = 0\n"
        f"import os; os.environ['OPENAI_API_KEY'] = {KEY!r}\n"
        f"def wipe() -> str:\n    '''Wipes.'''\n    open({str(marker)!r}, 'w').write('ran')\n    return 'wiped'"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(setup),
        nbformat.v4.new_code_cell("%%chat -p openai --tools wipe\n[[tool:wipe]]"),
    ]
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    assert not marker.exists()  # headless: declined
    # someone edits the saved record so that the call says it was approved and done
    for out in nb.cells[1].outputs:
        record = out.get("metadata", {}).get("chatmagic")
        if record:
            assert record["tools"][0]["state"] == "declined"
            record["tools"][0].update(state="done", by="user", ask="t1")
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, path)
    for replay in (True, False):
        again = nbformat.read(path, as_version=4)
        again.cells.insert(
            1, nbformat.v4.new_code_cell(f"%config ChatMagics.replay = {replay}\n%chat restore {path}")
        )
        NotebookClient(
            again, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
        assert not marker.exists()
    # replay shows the saved steps and sends nothing
    sandbox_thread.clear()
    kernel.run('def sky() -> str:\n    """The sky."""\n    calls.append(("sky",))\n    return "blue"')
    chat(kernel, "rp", "[[tool:sky]]", tools="sky")
    kernel.run("%chat deny")
    kernel.settle("rp")
    kernel.run("%config ChatMagics.replay = True")
    try:
        sandbox_thread.clear()
        count = len(kernel.settle("rp")["calls"])
        msg_id, _ = kernel.run("%%chat -p openai -c rp --tools sky\n[[tool:sky]]")
        assert [r for r in sandbox_thread.requests if r.method == "POST"] == []
        assert "declined by you" in kernel.texts(msg_id) and len(kernel.settle("rp")["calls"]) == count
    finally:
        kernel.run("%config ChatMagics.replay = False")
