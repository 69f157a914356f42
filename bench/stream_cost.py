"""What a long streamed reply costs: IOPub messages and bytes, wall time, kernel CPU and memory.

The reply is ``[[words:N]]`` (default N = 10,000) from the local stand-in's
chatgpt4online site: N pieces ``w1 w2 … wN`` streamed as N AI Engine ``live`` events.
Everything runs on 127.0.0.1.

1. In a real kernel (jupyter_client ``KernelManager``, this venv's ``python3`` kernel):
   ``%load_ext chatmagic``, ``%chat sandbox`` (the stand-in inside the kernel, as a user
   would run it), then ``%%chat -p chatgpt4online --new`` with ``[[words:N]]``. For each
   run: the IOPub messages of the cell (display_data, update_display_data, stream) and the
   bytes of their content (``json.dumps(content)``, UTF-8), the reply's size, the wall
   time from sending execute_request until the kernel is idle again, the kernel's CPU
   time by thread, and its peak RSS above the level before the cell (psutil, sampled every
   10 ms). The first run is reported apart: it imports the rendering and HTTP modules.
   The same cell is then run with ``--base-url`` pointing at a stand-in in another
   process, to separate the in-kernel server's share.
2. Next to it, computed (not measured): what a naive display would cost, one
   ``update_display_data`` per chunk re-sending the whole reply so far, each bundle made
   by chatmagic's own ``reply_bundle``.
3. The same stream read outside Jupyter from a stand-in started by this script
   (``python -m chatmagic.sandbox --port 0`` in a subprocess): with bare aiohttp
   (start_session for the nonce, then chats/submit, ``iter_any()``, counting ``live``
   events), and through the provider alone (``get_provider("chatgpt4online").stream``).

    .venv/bin/python bench/stream_cost.py [--words 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from typing import Any

import psutil

MSG_TYPES = ("display_data", "update_display_data", "stream")
SITE = "chatgpt4online"


def words(n: int) -> str:
    """The stand-in's ``[[words:N]]`` reply, written out here so it is checked, not assumed."""
    return "".join(f"w{i} " for i in range(1, n + 1))


def size(content: Any) -> int:
    return len(json.dumps(content, ensure_ascii=False).encode())


def median(xs: list[float]) -> float:
    return statistics.median(xs)


# -- the stand-in in a subprocess -----------------------------------------------------


class SandboxProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chatmagic.sandbox", "--port", "0", "--host", "127.0.0.1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()  # "chatmagic sandbox listening on http://127.0.0.1:PORT"
        if "listening on" not in line:
            self.proc.kill()
            raise SystemExit(f"the stand-in did not start: {line!r} {self.proc.stderr.read()[-2000:]}")
        self.url = line.rsplit(" ", 1)[1].strip()
        assert self.url.startswith("http://127.0.0.1:"), self.url

    def base_url(self, site: str) -> str:
        return f"{self.url}/{site}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- outside Jupyter: bare aiohttp and the provider ------------------------------------


async def bare_aiohttp(base: str, n: int) -> tuple[float, int, int]:
    """(seconds, live events, reply characters) reading the stream with aiohttp alone."""
    import aiohttp

    t0 = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.post(f"{base}/wp-json/mwai/v1/start_session") as r:
            nonce = (await r.json(content_type=None))["restNonce"]
        body = {"botId": "default", "newMessage": f"[[words:{n}]]", "stream": True}
        async with http.post(
            f"{base}/wp-json/mwai-ui/v1/chats/submit", json=body, headers={"X-WP-Nonce": nonce}
        ) as r:
            r.raise_for_status()
            buf = b""
            live = chars = 0
            async for data in r.content.iter_any():
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    line = line.rstrip(b"\r")
                    if not line.startswith(b"data:"):
                        continue
                    event = json.loads(line[5:])
                    if event.get("type") == "live":
                        live += 1
                        chars += len(event["data"])
    return time.perf_counter() - t0, live, chars


async def provider_alone(base: str, n: int) -> tuple[float, int, int]:
    """(seconds, chunks, reply characters) through chatmagic's provider, no IPython."""
    from chatmagic.providers import get_provider

    t0 = time.perf_counter()
    chunks = chars = 0
    async with get_provider(SITE)(base_url=base) as provider:
        async for chunk in provider.stream([{"role": "user", "content": f"[[words:{n}]]"}]):
            chunks += 1
            chars += len(chunk)
    return time.perf_counter() - t0, chunks, chars


# -- in a kernel ----------------------------------------------------------------------


class Kernel:
    def __init__(self) -> None:
        from jupyter_client import KernelManager

        self.km = KernelManager(kernel_name="python3")
        env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}
        self.km.start_kernel(env=env)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.proc = psutil.Process(self.km.provisioner.process.pid)

    def run(self, code: str, timeout: float = 120, **kw: Any) -> tuple[dict, list[tuple[float, dict]]]:
        """Execute; returns (reply, [(receive time, iopub msg)]) once the kernel is idle."""
        msgs: list[tuple[float, dict]] = []
        reply = self.kc.execute_interactive(
            code, timeout=timeout, output_hook=lambda m: msgs.append((time.perf_counter(), m)), **kw
        )
        if reply["content"]["status"] != "ok":
            errors = [m["content"] for _, m in msgs if m["msg_type"] == "error"]
            raise SystemExit(f"kernel error running {code[:60]!r}: {reply['content'].get('evalue')} {errors}")
        return reply, msgs

    def expr(self, expression: str) -> Any:
        reply, _ = self.run("", user_expressions={"x": expression})
        value = reply["content"]["user_expressions"]["x"]
        if value["status"] != "ok":
            raise SystemExit(f"kernel error evaluating {expression}: {value}")
        import ast

        return ast.literal_eval(value["data"]["text/plain"])

    def thread_times(self) -> dict[int, float]:
        return {t.id: t.user_time + t.system_time for t in self.proc.threads()}

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


class RssSampler(threading.Thread):
    def __init__(self, proc: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.proc, self.peak, self.done = proc, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def stop(self) -> int:
        self.done.set()
        self.join()
        return max(self.peak, self.proc.memory_info().rss)


def chat_cell(
    k: Kernel, n: int, names: dict[int, str], base_url: str | None = None, delay: float = 0.0
) -> dict[str, Any]:
    extra = f" --base-url {base_url}" if base_url else ""
    pace = f"[[delay:{delay}]]" if delay else ""
    code = f"%%chat -p {SITE} --new{extra}\n[[words:{n}]]{pace}"
    rss0 = k.proc.memory_info().rss
    cpu0 = k.thread_times()
    sampler = RssSampler(k.proc)
    sampler.start()
    t0 = time.perf_counter()
    _, msgs = k.run(code)
    wall = time.perf_counter() - t0
    peak = sampler.stop()
    cpu1 = k.thread_times()
    by_thread: dict[str, float] = {}
    for tid, t in cpu1.items():
        name = names.get(tid, "other")
        by_thread[name] = by_thread.get(name, 0.0) + t - cpu0.get(tid, 0.0)
    counts = {t: 0 for t in MSG_TYPES}
    nbytes = {t: 0 for t in MSG_TYPES}
    arrivals = []
    last = None
    for at, m in msgs:
        t = m["msg_type"]
        if t in counts:
            counts[t] += 1
            nbytes[t] += size(m["content"])
            arrivals.append(at - t0)
            if t != "stream":
                last = m["content"]
    reply = k.expr("chatmagic.get_session().conversation().exchanges[-1].assistant.content")
    if reply != words(n):
        raise SystemExit(f"the reply is not the expected {n} words (got {len(reply)} characters)")
    plain = (last or {}).get("data", {}).get("text/plain", "")
    return {
        "wall": wall,
        "counts": counts,
        "bytes": nbytes,
        "msgs": sum(counts.values()),
        "total_bytes": sum(nbytes.values()),
        "first_output": arrivals[0] if arrivals else None,
        "last_output": arrivals[-1] if arrivals else None,
        "reply_chars": len(reply),
        "final_bundle_bytes": size(last) if last else 0,
        "final_parts": {
            "data text/html": len((last or {}).get("data", {}).get("text/html", "").encode()),
            "data text/plain": len(plain.encode()),
            "metadata": size((last or {}).get("metadata", {})),
        },
        "final_status": plain.rsplit("— ", 1)[-1] if plain else "",
        "cpu": sum(by_thread.values()),
        "cpu_by_thread": by_thread,
        "rss_growth": peak - rss0,
        "rss_after": k.proc.memory_info().rss - rss0,
        "all_iopub": len(msgs),
    }


# -- naive display, computed ----------------------------------------------------------


def naive_cost(n: int, first_bytes: int, final_bytes: int, stride: int = 100) -> tuple[int, int, int]:
    """Messages and bytes of one update per chunk re-sending the growing reply.

    Every ``stride``-th bundle is built exactly with chatmagic's ``reply_bundle``; the
    ones between are interpolated linearly in the text's length (exact for this reply,
    whose words need no escaping; checked against exact bundles at random chunks, the
    largest error is returned).
    """
    from _legacy_pacer import reply_bundle

    text = words(n)
    ends = []  # text length after each chunk
    pos = 0
    for i in range(1, n + 1):
        pos += len(f"w{i} ")
        ends.append(pos)
    status = f"{SITE} · gpt-4 · streaming…"
    transient = {"display_id": "0" * 32}

    def exact(k: int) -> int:  # bytes of the update after chunk k (1-based)
        return size(
            {
                "data": reply_bundle(text[: ends[k - 1]], "markdown", status),
                "metadata": {},
                "transient": transient,
            }
        )

    marks = sorted(set(list(range(1, n + 1, stride)) + [n]))
    at = {k: exact(k) for k in marks}
    total = 0
    for a, b in itertools.pairwise(marks):
        slope = (at[b] - at[a]) / (ends[b - 1] - ends[a - 1])
        for k in range(a, b):
            total += round(at[a] + slope * (ends[k - 1] - ends[a - 1]))
    total += at[n]
    err = 0
    rng = random.Random(1)
    for k in rng.sample(range(1, n + 1), 20):
        a = max(m for m in marks if m <= k)
        b = min(m for m in marks if m >= k)
        est = (
            at[a]
            if a == b
            else round(at[a] + (at[b] - at[a]) * (ends[k - 1] - ends[a - 1]) / (ends[b - 1] - ends[a - 1]))
        )
        err = max(err, abs(est - exact(k)))
    # the first display (before any text) and the final update are what chatmagic sends too
    return n + 2, total + first_bytes + final_bytes, err


def simulate_pacer(n: int, seconds: float) -> tuple[int, int]:
    """(updates, characters re-sent) by ``UpdatePacer`` for n chunks arriving evenly over ``seconds``.

    The magic's loop asks the pacer when a chunk has arrived; the simulation asks it at
    every chunk's arrival time. No kernel, no network: this is arithmetic on the pacer.
    """
    from _legacy_pacer import UpdatePacer

    pacer, pos, sent = UpdatePacer(), 0, 0
    for i in range(1, n + 1):
        pos += len(f"w{i} ")
        now = seconds * (i - 1) / n
        if pacer.due(pos, now):
            pacer.sent(pos, now)
            sent += pos
    return pacer.updates, sent


# -- main -----------------------------------------------------------------------------


def load_average(after: bool = False) -> str:
    """The machine's load average, printed with every figure: a busy machine skews timings."""
    one, five, fifteen = os.getloadavg()
    return f"load average{' after:' if after else ''} {one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> str:
    """The line that heads a bench's output: when, which Python, how many CPUs, how busy."""
    return f"{datetime.now():%Y-%m-%d %H:%M}  Python {sys.version.split()[0]}  {os.cpu_count()} CPUs  {load_average()}"


def fmt_bytes(b: float) -> str:
    return f"{b / 1e6:.2f} MB" if b >= 1e6 else f"{b / 1e3:.1f} kB"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--words", type=int, default=10_000, help="Chunks in the reply (default 10000).")
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each measurement (default 3).")
    parser.add_argument(
        "--paced-delay",
        type=float,
        default=0.001,
        help="Seconds between chunks in the paced run (a reply that takes a while to "
        "arrive, so that the update pacing shows); 0 skips it. Default 0.001.",
    )
    args = parser.parse_args()
    n, rep = args.words, args.repeat
    expected = words(n)
    started = time.perf_counter()
    print(
        f"{datetime.now():%Y-%m-%d %H:%M}  Python {sys.version.split()[0]}  {os.cpu_count()} CPUs  "
        f"reply: [[words:{n}]] = {n} chunks, {len(expected):,} characters\n"
    )

    sb = SandboxProcess()
    try:
        # -- outside Jupyter
        base = sb.base_url(SITE)
        bare, prov = [], []
        asyncio.run(bare_aiohttp(base, 10))  # warm-up: imports and the first connection
        asyncio.run(provider_alone(base, 10))
        for _ in range(rep):
            t, live, chars = asyncio.run(bare_aiohttp(base, n))
            assert live == n and chars == len(expected), (live, chars)
            bare.append(t)
            t, chunks, chars = asyncio.run(provider_alone(base, n))
            assert chunks == n and chars == len(expected), (chunks, chars)
            prov.append(t)

        # -- in a kernel
        k = Kernel()
        try:
            k.run("%load_ext chatmagic")
            k.run("%chat sandbox")
            k.run("import chatmagic, threading")
            names = {}
            cold = chat_cell(k, n, names)  # also starts the runner thread, so it can be named
            names = k.expr("{t.native_id: t.name for t in threading.enumerate()}")
            warm = [chat_cell(k, n, names) for _ in range(rep)]
            ext = [chat_cell(k, n, names, base_url=base) for _ in range(rep)]
            paced = [
                chat_cell(k, n, names, base_url=base, delay=args.paced_delay)
                for _ in range(rep if args.paced_delay else 0)
            ]
        finally:
            k.stop()
    finally:
        sb.stop()

    # -- report
    columns = [("%chat sandbox", warm, cold), ("subprocess", ext, None)]
    if paced:
        columns.append((f"subproc, {args.paced_delay * 1000:g} ms/chunk", paced, None))
    print(
        f"In a kernel: %%chat -p {SITE} --new, {rep} runs per column, median "
        "(the cold first run in brackets). Column = where the stand-in runs:"
    )
    print(f"  {'':32}" + "".join(f"{title:>26}" for title, _, _ in columns))
    rows = [
        ("wall: execute_request → idle", lambda r: f"{r['wall']:.2f} s", "wall"),
        ("first output after", lambda r: f"{r['first_output'] * 1000:.0f} ms", "first_output"),
        ("IOPub display_data", lambda r: f"{r['counts']['display_data']}", None),
        ("IOPub update_display_data", lambda r: f"{r['counts']['update_display_data']}", None),
        ("IOPub stream", lambda r: f"{r['counts']['stream']}", None),
        ("bytes of those (content JSON)", lambda r: fmt_bytes(r["total_bytes"]), "total_bytes"),
        ("  of which the final update", lambda r: fmt_bytes(r["final_bundle_bytes"]), "final_bundle_bytes"),
        ("reply (characters)", lambda r: f"{r['reply_chars']:,}", None),
        ("kernel CPU (all threads)", lambda r: f"{r['cpu']:.2f} s", "cpu"),
        ("kernel peak RSS growth", lambda r: fmt_bytes(r["rss_growth"]), "rss_growth"),
    ]

    def cell(runs: list[dict], cold_run: dict | None, show: Any, key: str | None) -> str:
        if key is None:  # counts: every distinct value seen
            text = "/".join(sorted({show(r) for r in runs}, key=lambda v: float(v.replace(",", ""))))
        else:
            text = show(sorted(runs, key=lambda r: r[key])[len(runs) // 2])
        return text + (f" [{show(cold_run)}]" if cold_run is not None else "")

    for label, show, key in rows:
        print(f"  {label:<32}" + "".join(f"{cell(runs, c, show, key):>26}" for _, runs, c in columns))
    print("  kernel CPU by thread (median):")
    for name in sorted({t for _, runs, _ in columns for r in runs for t in r["cpu_by_thread"]}):
        vals = [median([r["cpu_by_thread"].get(name, 0.0) for r in runs]) for _, runs, _ in columns]
        if max(vals) >= 0.005:
            print(f"    {name:<30}" + "".join(f"{v:>24.2f} s" for v in vals))
    for title, runs, _ in columns:
        print(
            f"  runs ({title}): wall "
            + ", ".join(f"{r['wall']:.2f}" for r in runs)
            + " s; messages "
            + ", ".join(str(r["msgs"]) for r in runs)
            + f"; status: {runs[-1]['final_status']}"
        )
    parts = warm[-1]["final_parts"]
    print(
        "  the final update_display_data: "
        + ", ".join(f"{k} {fmt_bytes(v)}" for k, v in parts.items())
        + " (the metadata is the exchange saved for %chat restore)"
    )

    base_runs = paced or warm
    mid = sorted(base_runs, key=lambda r: r["total_bytes"])[len(base_runs) // 2]
    naive_msgs, naive_bytes, err = naive_cost(n, mid["bytes"]["display_data"], mid["final_bundle_bytes"])
    which = columns[-1][0]
    print(
        f"\nNaive display, COMPUTED, not measured: one update_display_data per chunk re-sending the whole\n"
        f"reply so far, bundles from bench/_legacy_pacer.reply_bundle (every 100th built exactly, the rest\n"
        f"interpolated; largest error at 20 random chunks checked exactly: {err} B):"
    )
    print(f"  {'':40}{'messages':>12}{'bytes':>14}")
    print(f"  {f'chatmagic, measured ({which})':<40}{mid['msgs']:>12,}{fmt_bytes(mid['total_bytes']):>14}")
    print(f"  {'naive, computed':<40}{naive_msgs:>12,}{fmt_bytes(naive_bytes):>14}")
    print(
        f"  naive / chatmagic: {naive_msgs / mid['msgs']:,.0f}x the messages, "
        f"{naive_bytes / mid['total_bytes']:,.0f}x the bytes"
    )
    for title, runs, _ in columns:
        print(
            f"  naive over the wall time of '{title}': ~{naive_msgs / median([r['wall'] for r in runs]):,.0f} "
            "msgs/s (jupyter_server drops IOPub beyond 1000 msgs/s averaged over 3 s)"
        )

    print(
        f"\nUpdatePacer (the panel's pacer, and the cell's before ReplyStream) over slower replies\n"
        f"of the same {n} chunks, SIMULATED (chunks evenly spread;"
        "\nthe streaming updates only, without the first display and the final update):"
    )
    print(f"  {'reply lasts':>12}{'updates':>10}{'text re-sent':>16}{'× the reply':>14}")
    durations = [60.0, 120.0, 300.0]
    if paced:
        durations.insert(0, median([r["wall"] for r in paced]))
    for secs in durations:
        ups, chars = simulate_pacer(n, secs)
        print(f"  {secs:>10.1f} s{ups:>10}{chars:>16,}{chars / len(expected):>13.1f}x")
    if paced:
        print(
            "  (measured in the paced column: "
            + ", ".join(str(r["counts"]["update_display_data"] - 1) for r in paced)
            + " streaming updates)"
        )

    print(f"\nReading the same stream, stand-in in a subprocess, {rep} runs (median; min–max):")
    lines = [
        ("bare aiohttp (iter_any)", bare),
        ("provider alone (.stream)", prov),
        ("%%chat in a kernel, same stand-in", [r["wall"] for r in ext]),
        ("%%chat in a kernel, %chat sandbox", [r["wall"] for r in warm]),
    ]
    for label, xs in lines:
        print(
            f"  {label:<36}{median(xs):>7.3f} s   ({min(xs):.3f}–{max(xs):.3f})   "
            f"{n / median(xs):>9,.0f} chunks/s"
        )
    print(f"\n(total bench time {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
