"""What the kernel adds to reading a stream: %%chat against bare aiohttp, the same 10,000 chunks.

The reply is ``[[words:N]]`` (default N = 10,000) from chatgpt4online, served by the
stand-in in another process (``python -m chatmagic.sandbox --port 0``). In one run, the
three readers take turns (A B C, A B C, ...; one unmeasured warm-up each), 7 times each:

A. bare aiohttp in this process: one ``ClientSession`` and one nonce kept across reads
   (as the provider keeps them), ``chats/submit`` read with ``iter_any()``, ``live`` events
   counted; timed from the request to the last event.
B. the same bare aiohttp code in a real kernel (jupyter_client, this venv's ``python3``),
   as a cell with top-level ``await``; timed from execute_request until the kernel is idle.
C. ``%%chat -p chatgpt4online --new --base-url …`` in the same kernel; timed the same way.

It prints the medians, C / A (the kernel and chatmagic together against the bare read) and
C / B (what chatmagic adds inside the same kernel), and checks that every reader received
exactly the N words.

    .venv/bin/python bench/kernel_overhead.py [--words 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from stream_cost import SITE, Kernel, SandboxProcess, load_average, machine, words

BARE = '''
import aiohttp, json, time

class _Bare:
    """One session and one nonce, kept across reads (as chatmagic's provider keeps them)."""

    def __init__(self, base):
        self.base, self.http, self.nonce = base, None, None

    async def read(self, n):
        if self.http is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
            self.http = aiohttp.ClientSession(timeout=timeout)
            async with self.http.post(f"{self.base}/wp-json/mwai/v1/start_session") as r:
                self.nonce = (await r.json(content_type=None))["restNonce"]
        body = {"botId": "default", "newMessage": f"[[words:{n}]]", "stream": True}
        t0 = time.perf_counter()
        async with self.http.post(
            f"{self.base}/wp-json/mwai-ui/v1/chats/submit", json=body, headers={"X-WP-Nonce": self.nonce}
        ) as r:
            r.raise_for_status()
            buf, live, chars = b"", 0, 0
            async for data in r.content.iter_any():
                buf += data
                *lines, buf = buf.split(b"\\n")
                for line in lines:
                    line = line.rstrip(b"\\r")
                    if line.startswith(b"data:"):
                        event = json.loads(line[5:])
                        if event.get("type") == "live":
                            live += 1
                            chars += len(event["data"])
        return time.perf_counter() - t0, live, chars

    async def close(self):
        if self.http is not None:
            await self.http.close()
'''


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--words", type=int, default=10_000, help="Chunks in the reply (default 10000).")
    parser.add_argument("--repeat", type=int, default=7, help="Measured reads of each reader (default 7).")
    args = parser.parse_args()
    n, rep = args.words, args.repeat
    expected = words(n)
    print(
        f"{machine()}\n"
        f"reply: [[words:{n}]] from {SITE} = {n} chunks, {len(expected):,} characters; "
        f"{rep} reads each, taking turns\n"
    )
    ns: dict[str, Any] = {}
    exec(BARE, ns)  # the very code the kernel runs for B
    sb = SandboxProcess()
    loop = asyncio.new_event_loop()
    k = None
    try:
        base = sb.base_url(SITE)
        bare = ns["_Bare"](base)
        k = Kernel()
        k.run(BARE)
        k.run(f"_bare = _Bare({base!r})")
        k.run("%load_ext chatmagic")
        k.run("import chatmagic")
        cell = f"%%chat -p {SITE} --new --base-url {base}\n[[words:{n}]]"

        def kernel_cpu() -> float:
            t = k.proc.cpu_times()
            return float(t.user + t.system)

        def a() -> tuple[float, float]:
            cpu0 = time.thread_time()
            t, live, chars = loop.run_until_complete(bare.read(n))
            assert live == n and chars == len(expected), (live, chars)
            return float(t), time.thread_time() - cpu0

        def b() -> tuple[float, float]:
            cpu0, t0 = kernel_cpu(), time.perf_counter()
            k.run(f"_r = await _bare.read({n})")
            wall, cpu = time.perf_counter() - t0, kernel_cpu() - cpu0
            _, live, chars = k.expr("_r")
            assert live == n and chars == len(expected), (live, chars)
            return wall, cpu

        def c() -> tuple[float, float]:
            cpu0, t0 = kernel_cpu(), time.perf_counter()
            k.run(cell)
            wall, cpu = time.perf_counter() - t0, kernel_cpu() - cpu0
            reply = k.expr("chatmagic.get_session().conversation().exchanges[-1].assistant.content")
            assert reply == expected, len(reply)
            return wall, cpu

        readers = {"A": a, "B": b, "C": c}
        for fn in readers.values():  # warm-up: imports, connections, nonces
            fn()
        times: dict[str, list[float]] = {name: [] for name in readers}
        cpus: dict[str, list[float]] = {name: [] for name in readers}
        for _ in range(rep):
            for name, fn in readers.items():
                wall, cpu = fn()
                times[name].append(wall)
                cpus[name].append(cpu)
        k.run("await _bare.close()")
        loop.run_until_complete(bare.close())
    finally:
        if k is not None:
            k.stop()
        loop.close()
        sb.stop()

    med = {name: statistics.median(xs) for name, xs in times.items()}
    labels = {
        "A": "A bare aiohttp, this process",
        "B": "B bare aiohttp, in the kernel (cell)",
        "C": "C %%chat, in the kernel",
    }
    print(f"  {'':40}{'median':>9}   {'min–max':<15}{'chunks/s':>10}{'CPU':>10}")
    for name, xs in times.items():
        print(
            f"  {labels[name]:<40}{med[name]:>7.3f} s   {min(xs):.3f}–{max(xs):.3f}    "
            f"{n / med[name]:>9,.0f}{statistics.median(cpus[name]):>8.3f} s"
        )
    print("  (CPU, median: A the reading thread; B and C the whole kernel process, every thread)")
    print(f"\n  C / A = {med['C'] / med['A']:.2f}x   (%%chat in a kernel against bare aiohttp)")
    print(f"  C / B = {med['C'] / med['B']:.2f}x   (what chatmagic adds inside the same kernel)")
    print("  runs (s): " + json.dumps({k_: [round(x, 3) for x in v] for k_, v in times.items()}))
    print(f"  {load_average(after=True)}")


if __name__ == "__main__":
    main()
