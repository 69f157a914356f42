"""Imports run one way (issue 17): the core hands kept exchanges to sinks it is given, loads
alone, and the import-linter contracts in pyproject.toml hold."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatmagic.sandbox import Sandbox
from chatmagic.session import ChatSession, Conversation, Exchange, TurnOptions

from .conftest import SITES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def session(sandbox_thread: Sandbox) -> Iterator[ChatSession]:
    s = ChatSession()
    s.retries = 0
    s.base_urls.update({site: sandbox_thread.base_url(site) for site in SITES})
    yield s
    s.close()


def test_a_kept_exchange_goes_to_every_sink_and_a_failing_sink_fails_nothing(session: ChatSession) -> None:
    seen: list[tuple[str, str]] = []

    def broken(conv: Conversation, ex: Exchange) -> None:
        raise RuntimeError("a sink's own bug")

    session.sinks += [broken, lambda conv, ex: seen.append((conv.name, ex.user.content))]
    turn = session.send("hello", conversation="c", options=TurnOptions(provider="opchatgpts"))
    assert turn.result(timeout=30).startswith("[opchatgpts] You said: hello")
    assert turn.state == "done" and seen == [("c", "hello")]
    failed = session.send("[[fault:http500]] x", options=TurnOptions(provider="chatgptt"))
    assert failed.wait(30) and failed.state == "failed"
    assert seen == [("c", "hello")]  # nothing kept, nothing published


def test_the_core_loads_without_the_notebook_the_look_or_ipython() -> None:
    code = (
        "import sys, chatmagic.session\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('IPython', 'ipywidgets', 'anywidget',"
        " 'markdown_it', 'nh3') or m in ('chatmagic.record', 'chatmagic.present', 'chatmagic.render',"
        " 'chatmagic._logsink', 'chatmagic.magics'))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_import_contracts_hold() -> None:
    lint = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(lint).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    out = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]
