"""The real-kernel part of bench/stream_watch.py: a ``%%chat`` cell measured from its IOPub messages.

A stand-in in another process trickles the reply (``[[delay:D]][[reply]]…``, D so that it takes
the given time less what each piece costs beyond its delay). In a real kernel, each reply is
run twice: once as a frontend without widgets sees it (no hello: display updates), once with
the reply view's hello sent on a kernel subshell each time a display shows the view (JupyterLab
>= 4.4 with ipykernel 7 delivers widget messages on subshells while a cell runs). The warm-up
cell opens the kernel's one reply view: its opening is not counted in the replies measured. Every message the
cell sends before its final update counts (``json.dumps(content)``, UTF-8): the stylesheet,
displays, the widget's opening, its patches. Times are the kernel's (each header's date).
"""

from __future__ import annotations

import json
import time
from typing import Any

from _reply_text import pieces
from display_cost import piece_overhead
from stream_cost import SITE, Kernel, SandboxProcess, load_average

SHOWN = ("display_data", "update_display_data")
WIDGET = "application/vnd.jupyter.widget-view+json"


def _date(msg: dict[str, Any]) -> float:
    date = msg["header"]["date"]
    return float(date.timestamp() if hasattr(date, "timestamp") else date)


def _subshell(k: Kernel) -> str:
    kc = k.kc
    msg = kc.session.msg("create_subshell_request", {})
    kc.control_channel.send(msg)
    while True:
        reply = kc.control_channel.get_msg(timeout=10)
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            return str(reply["content"]["subshell_id"])


def run_cell(k: Kernel, cell: str, subshell: str | None, timeout: float) -> tuple[float, float, int]:
    """(longest wait s, streaming bytes, patches) of one %%chat cell."""
    kc = k.kc
    msg_id = kc.execute(cell)
    deadline = time.monotonic() + timeout
    got: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except Exception:  # noqa: BLE001 - queue.Empty: keep waiting
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        got.append(msg)
        content = msg["content"]
        view = content.get("data", {}).get(WIDGET) if msg["msg_type"] in SHOWN else None
        if view and subshell is not None:  # a frontend draws the view, and the view says hello
            hello = kc.session.msg(
                "comm_msg",
                {"comm_id": view["model_id"], "data": {"method": "custom", "content": {"type": "hello"}}},
            )
            hello["header"]["subshell_id"] = subshell
            kc.shell_channel.send(hello)
        if msg["msg_type"] == "status" and content["execution_state"] == "idle":
            break
    final = max(i for i, m in enumerate(got) if "chatmagic" in m["content"].get("metadata", {}))
    streaming = [m for m in got[:final] if m["msg_type"] in (*SHOWN, "comm_open", "comm_msg")]
    size = sum(len(json.dumps(m["content"], ensure_ascii=False).encode()) for m in streaming)
    visible = [
        _date(m)
        for m in streaming
        if m["msg_type"] in SHOWN
        or (m["msg_type"] == "comm_msg" and m["content"]["data"].get("method") == "custom")
    ]
    patches = sum(m["msg_type"] == "comm_msg" for m in streaming)
    # while text arrives: from the first text shown (the message after the first display) to the end
    start, end = visible[1] if len(visible) > 1 else visible[0], _date(got[final])
    marks = [t for t in visible if start <= t <= end] + [end]
    wait = max(b - a for a, b in zip(marks, marks[1:], strict=False)) if len(marks) > 1 else end - start
    return wait, size, patches


def run_real(replies: dict[str, str], durations: list[float]) -> None:
    sb = SandboxProcess()
    k = None
    try:
        base = sb.base_url(SITE)
        overhead = piece_overhead(base)
        k = Kernel()
        k.run("%load_ext chatmagic")
        sub = _subshell(k)
        print(f"\nMEASURED in a real kernel (each piece costs {overhead * 1000:.2f} ms beyond its delay):")
        head = f"{'reply':<12}{'s':>5}  {'cell wait':>10}{'bytes':>7}{'patches':>8}  {'plain wait':>11}{'bytes':>7}"
        print(head)
        print("-" * len(head))
        warm = f"%%chat -p {SITE} --new --base-url {base}\n[[words:50]]"
        run_cell(k, warm, None, 60)
        for name, text in replies.items():
            n = len(pieces(text))
            for seconds in durations:
                delay = max(0.0, seconds / n - overhead)
                cell = f"%%chat -p {SITE} --new --base-url {base}\n[[delay:{delay:.6f}]][[reply]]{text}"
                cw, cb, patches = run_cell(k, cell, sub, seconds * 3 + 60)
                pw, pb, _ = run_cell(k, cell, None, seconds * 3 + 60)
                print(
                    f"{name:<12}{seconds:>5.0f}  {cw:>10.2f}{cb / len(text):>7.2f}{patches:>8}"
                    f"  {pw:>11.2f}{pb / len(text):>7.2f}"
                )
        print(load_average(after=True))
    finally:
        if k is not None:
            k.stop()
        sb.stop()
