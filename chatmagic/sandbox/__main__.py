"""``python -m chatmagic.sandbox --port PORT``: serve the stand-in until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from ._server import Sandbox
from ._state import SITES


async def _serve(host: str, port: int) -> None:
    async with Sandbox(host=host, port=port) as sb:
        print(f"chatmagic sandbox listening on {sb.url}")
        for site in SITES:
            print(f"  {site}: {sb.base_url(site)}")
        sys.stdout.flush()  # a parent process waits for these lines
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="chatmagic-sandbox",
        description="Serve the local stand-in of the five chat sites on one port.",
    )
    parser.add_argument("--port", type=int, default=8765, help="The port to listen on; 0 picks a free one.")
    parser.add_argument("--host", default="127.0.0.1", help="The address to bind (keep it on loopback).")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
