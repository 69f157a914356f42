"""Shared fixtures: the local stand-in (in the test's loop, or on a thread) and a shell.

Nothing leaves loopback. The network guard (``tests/_netguard``) refuses any lookup or
connection beyond 127.0.0.1 / ::1, in this process and, through ``sitecustomize`` on
``PYTHONPATH``, in every Python process the session starts (notebook kernels, JupyterLab).
A test during which anything was refused fails, even if some code swallowed the error.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatmagic._defaults import DEFAULT_MAX_HISTORY_CHARS
from chatmagic._state import get_session
from chatmagic.providers.endpoints import PRESETS
from chatmagic.sandbox import Sandbox

from ._netguard import netguard

SITES = ("chatgptt", "chatgptes", "chatgpt4online", "chatgptfree", "opchatgpts")
NETGUARD_DIR = Path(__file__).parent / "_netguard"


class _Refusals:
    """What the guard refused and nobody has reported yet: here, and in subprocesses (their log)."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self._seen = 0
        self._offset = 0

    def take(self) -> list[str]:
        ours = netguard.refusals()
        new, self._seen = ours[self._seen :], len(ours)
        with self.log.open("rb") as f:
            f.seek(self._offset)
            logged = f.read()
        self._offset += len(logged)
        return new + logged.decode("utf-8", "replace").splitlines()


_REFUSALS = pytest.StashKey[_Refusals]()
_SAVED_ENV = pytest.StashKey[dict[str, str | None]]()


def pytest_configure(config: pytest.Config) -> None:
    # before any test runs, so before any kernel starts (nbval starts them when it runs a notebook)
    fd, log = tempfile.mkstemp(prefix="chatmagic-netguard-", suffix=".log")
    os.close(fd)
    netguard.install()  # this process: refusals are kept in memory
    names = ("PYTHONPATH", netguard.LOG_VARIABLE, "JUPYTER_DATA_DIR")
    config.stash[_SAVED_ENV] = {name: os.environ.get(name) for name in names}
    config.stash[_REFUSALS] = _Refusals(Path(log))
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(NETGUARD_DIR), *([path] if path else [])])
    os.environ[netguard.LOG_VARIABLE] = log
    # the exchange log (chatmagic.log) of every kernel the tests start goes to a folder of
    # the run, never into the user's Jupyter data directory
    os.environ["JUPYTER_DATA_DIR"] = tempfile.mkdtemp(prefix="chatmagic-jupyter-data-")


def pytest_unconfigure(config: pytest.Config) -> None:
    for name, value in config.stash.get(_SAVED_ENV, {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    netguard.uninstall()
    if _REFUSALS in config.stash:
        config.stash[_REFUSALS].log.unlink(missing_ok=True)


def _fail_on(refused: list[str], when: str) -> None:
    if refused:
        listed = "\n  ".join(refused)
        pytest.fail(
            f"The network guard refused traffic beyond loopback {when}:\n  {listed}\n"
            "A code path lost its base URL: point it at the stand-in (Sandbox.base_url)."
        )


@pytest.fixture(autouse=True, scope="session")
def _session_stays_on_loopback(pytestconfig: pytest.Config) -> Iterator[None]:
    """Catches what no test did itself: module fixtures, notebook kernels (nbval)."""
    yield
    _fail_on(pytestconfig.stash[_REFUSALS].take(), "during this session")


@pytest.fixture(autouse=True)
def _test_stays_on_loopback(pytestconfig: pytest.Config) -> Iterator[None]:
    yield
    _fail_on(pytestconfig.stash[_REFUSALS].take(), "during this test")


@pytest.fixture
def take_refusals(pytestconfig: pytest.Config) -> Callable[[], list[str]]:
    """For tests of the guard itself: what it refused since the last call, then forgotten."""
    return pytestconfig.stash[_REFUSALS].take


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """The stand-in, serving on the test's own event loop."""
    async with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def sandbox_thread() -> Iterator[Sandbox]:
    """The stand-in on its own thread, for synchronous code (IPython shells, sessions)."""
    sb = Sandbox().start_in_thread()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture(scope="session")
def ip(sandbox_thread: Sandbox) -> Iterator[Any]:
    """A real IPython shell with chatmagic loaded, its providers pointed at the stand-in."""
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython()
    shell.run_line_magic("load_ext", "chatmagic")
    # every provider, openai included, talks to the stand-in: no test can reach a real site
    urls = {site: sandbox_thread.base_url(site) for site in (*SITES, "openai", *PRESETS)}
    shell.run_line_magic("config", f"ChatMagics.base_urls = {urls!r}")
    yield shell
    shell.run_line_magic("unload_ext", "chatmagic")
    get_session().close()


@pytest.fixture
def fresh(ip: Any, sandbox_thread: Sandbox) -> Iterator[None]:
    """No conversations, default settings, an empty request log."""
    session = get_session()
    session.conversations.clear()
    ip.run_line_magic("config", "ChatMagics.default_provider = 'chatgptt'")
    ip.run_line_magic("config", "ChatMagics.default_model = ''")
    ip.run_line_magic("config", "ChatMagics.retries = 0")
    ip.run_line_magic("config", f"ChatMagics.max_history_chars = {DEFAULT_MAX_HISTORY_CHARS}")
    ip.run_line_magic("config", "ChatMagics.log_path = None")  # a test that turned the log off
    sandbox_thread.clear()
    yield
