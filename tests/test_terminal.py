"""%%chat in terminal IPython (under a pseudo-terminal): each word printed once, Ctrl-C stops.

The terminal has no rich frontend: a display updated N times would print the reply N
times. chatmagic prints the text as it arrives instead, then the status line.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")

IPYTHON = Path(sys.executable).with_name("ipython")
WORD = re.compile(r"\bw(\d+)\b")


@pytest.fixture(scope="module")
def stand_in() -> Iterator[str]:
    """The stand-in in a process of its own, as a user would start it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatmagic.sandbox", "--port", "0", "--host", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on" in line, line
    try:
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


@pytest.fixture
def terminal(stand_in: str, tmp_path: Path) -> Iterator[object]:
    """Terminal IPython with chatmagic loaded and every provider pointed at the stand-in."""
    child = pexpect.spawn(
        str(IPYTHON),
        ["--simple-prompt", "--colors=NoColor", "--no-banner", "--no-confirm-exit"],
        env={**_env(), "IPYTHONDIR": str(tmp_path / "ipython"), "TERM": "dumb"},
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 200),
    )
    try:
        child.expect(r"In \[1\]: ")
        sites = ("chatgptt", "chatgptes", "chatgpt4online", "chatgptfree", "opchatgpts")
        urls = {site: f"{stand_in}/{site}" for site in sites}
        for line in ("%load_ext chatmagic", f"%config ChatMagics.base_urls = {urls!r}"):
            child.sendline(line)
            child.expect(r"In \[\d+\]: ")
        yield child
    finally:
        child.sendeof()
        child.close(force=True)


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}


def _send_cell(child: object, *lines: str) -> None:
    for line in lines:
        child.sendline(line)  # type: ignore[attr-defined]
    # in the terminal a cell magic ends at two blank lines
    child.sendline("")  # type: ignore[attr-defined]
    child.sendline("")  # type: ignore[attr-defined]


def test_each_word_is_printed_once(terminal: object) -> None:
    child = terminal
    _send_cell(child, "%%chat -p opchatgpts", "[[words:60]][[delay:0.01]]")
    child.expect(r"— opchatgpts · gpt-3\.5-turbo · first text .* · total .*\r\n")  # type: ignore[attr-defined]
    shown = child.before  # type: ignore[attr-defined]
    counts = Counter(int(n) for n in WORD.findall(shown))
    assert counts == Counter(range(1, 61)), shown
    assert "<div" not in shown and "text/html" not in shown
    child.expect(r"In \[\d+\]: ")  # type: ignore[attr-defined]


def test_ctrl_c_stops_cleanly(terminal: object) -> None:
    child = terminal
    _send_cell(child, "%%chat -p chatgpt4online", "[[words:400]][[delay:0.05]]")
    child.expect(r"\bw5 ")  # type: ignore[attr-defined]
    child.sendintr()  # type: ignore[attr-defined]
    child.expect(r"■ stopped")  # type: ignore[attr-defined]
    # the terminal's echo of Ctrl-C is not put into the reply's text
    assert "^C" not in child.before  # type: ignore[attr-defined]
    child.expect(r"In \[\d+\]: ")  # type: ignore[attr-defined]
    shown = child.before  # type: ignore[attr-defined]
    assert "Stopped by the user" in shown and "Traceback" not in shown
    child.sendline("import chatmagic; ex = chatmagic.get_session().conversation().exchanges[-1]")  # type: ignore[attr-defined]
    child.expect(r"In \[\d+\]: ")  # type: ignore[attr-defined]
    child.sendline("print('kept', ex.stopped, 'w400' in ex.assistant.content)")  # type: ignore[attr-defined]
    child.expect(r"kept True False")  # type: ignore[attr-defined]


def test_the_panel_says_it_needs_a_notebook(terminal: object) -> None:
    child = terminal
    child.sendline("%chat panel")  # type: ignore[attr-defined]
    child.expect(r"In \[\d+\]: ")  # type: ignore[attr-defined]
    shown = child.before  # type: ignore[attr-defined]
    assert (
        "The chat panel needs a notebook" in shown and "<chatmagic" not in shown and "ChatPanel(" not in shown
    )
