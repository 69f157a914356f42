"""No test reaches beyond loopback: the guard refuses before anything is sent, and says why.

The guard (``tests/_netguard``) is installed for the whole session by ``tests/conftest.py``,
in this process and in every Python process the session starts. ``take_refusals`` reads
what it refused, so these tests, which provoke refusals on purpose, do not fail the way
any other test with a refusal would.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from chatmagic.errors import ChatMagicError
from chatmagic.providers import get_provider, provider_names
from chatmagic.sandbox import Sandbox

from ._netguard.netguard import LOG_VARIABLE, NetworkGuardError, is_loopback

TEST_NET = "192.0.2.1"  # TEST-NET-1 (RFC 5737): documentation only, routed nowhere
WHY = "a code path lost its base URL"

Take = Callable[[], list[str]]


def test_connecting_beyond_loopback_is_refused_before_connect(take_refusals: Take) -> None:
    with socket.socket() as s:
        with pytest.raises(NetworkGuardError, match=rf"a connection to {TEST_NET}:80\. .*{WHY}"):
            s.connect((TEST_NET, 80))
        with pytest.raises(NetworkGuardError):
            s.connect_ex((TEST_NET, 443))
        with pytest.raises(OSError) as info:
            s.getpeername()  # the socket never connected
        assert not isinstance(info.value, NetworkGuardError)
    assert take_refusals() == [f"a connection to {TEST_NET}:80", f"a connection to {TEST_NET}:443"]
    if socket.has_ipv6:
        with (
            socket.socket(socket.AF_INET6) as s,
            pytest.raises(NetworkGuardError, match=r"\[2001:db8::1\]:80"),
        ):
            s.connect(("2001:db8::1", 80))
        assert take_refusals() == ["a connection to [2001:db8::1]:80"]


async def test_asyncio_and_aiohttp_are_refused_too(take_refusals: Take) -> None:
    with pytest.raises(NetworkGuardError):
        await asyncio.open_connection(TEST_NET, 80)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorError, match=WHY):
            await http.get(f"http://{TEST_NET}/")
    assert take_refusals() == [f"a connection to {TEST_NET}:80"] * 2


def test_resolving_a_public_name_is_refused_without_a_lookup(take_refusals: Take) -> None:
    with pytest.raises(NetworkGuardError, match=rf"look up 'api\.openai\.com' .*{WHY}") as info:
        socket.getaddrinfo("api.openai.com", 443)
    # a lookup that had been sent and failed would be a gaierror
    assert not isinstance(info.value, socket.gaierror)
    for lookup in (socket.gethostbyname, socket.gethostbyname_ex):
        with pytest.raises(NetworkGuardError, match="example.com"):
            lookup("example.com")
    refused = take_refusals()
    assert [r.split(" (")[0] for r in refused] == [
        "to look up 'api.openai.com'",
        "to look up 'example.com'",
        "to look up 'example.com'",
    ]


def test_a_swallowed_refusal_is_still_seen(take_refusals: Take) -> None:
    # code that catches OSError cannot hide a refusal: the session fails the test anyway
    try:
        socket.create_connection(("example.com", 80), timeout=1)
    except OSError:
        pass
    assert len(take_refusals()) == 1


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "localhost", "LOCALHOST.", "a.localhost", None],
)
def test_what_counts_as_loopback(host: str | None) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", [TEST_NET, "10.0.0.1", "2001:db8::1", "example.com", "localhost.example"])
def test_what_does_not(host: str) -> None:
    assert not is_loopback(host)


async def test_loopback_still_works(sandbox: Sandbox, take_refusals: Take) -> None:
    assert socket.getaddrinfo("localhost", 80)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        for host in ("127.0.0.1", "localhost"):
            with socket.create_connection((host, port), timeout=5):
                pass
    if socket.has_ipv6:
        try:
            server6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
        except OSError:
            pass  # no IPv6 loopback here
        else:
            with server6, socket.create_connection(("::1", server6.getsockname()[1]), timeout=5):
                pass
    async with aiohttp.ClientSession() as http, http.get(sandbox.url + "/_sandbox/health") as r:
        assert (await r.json())["ok"] is True
    assert take_refusals() == []


@pytest.mark.parametrize("name", provider_names())
async def test_a_provider_without_a_base_url_is_stopped(
    name: str, take_refusals: Take, monkeypatch: pytest.MonkeyPatch
) -> None:
    # with a key, the openai provider would go to api.openai.com
    monkeypatch.setenv("OPENAI_API_KEY", "sk-netguard-test")
    provider = get_provider(name)()
    with pytest.raises((ChatMagicError, NetworkGuardError)) as info:
        async with provider:
            async for _chunk in provider.stream([{"role": "user", "content": "hi"}]):
                pass
    # aiohttp's providers report a connection error with the guard's words inside; curl_cffi's
    # meet the guard before chatmagic's error mapping
    host = urlsplit(provider.site).hostname
    assert host and WHY in str(info.value) and host in str(info.value)
    (refused,) = take_refusals()
    assert host in refused


def test_a_python_subprocess_is_guarded(tmp_path: Path) -> None:
    log = tmp_path / "refused.log"
    env = {**os.environ, LOG_VARIABLE: str(log)}  # PYTHONPATH carries the guard (conftest)
    code = "import socket; socket.getaddrinfo('example.com', 80)"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "NetworkGuardError" in proc.stderr and "'example.com'" in proc.stderr and WHY in proc.stderr
    assert "to look up 'example.com'" in log.read_text()
    code = "import socket; print(socket.getaddrinfo('localhost', 80)[0][4][0])"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() in ("127.0.0.1", "::1")


def test_a_notebook_kernel_is_guarded(take_refusals: Take) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import socket\nsocket.getaddrinfo('api.openai.com', 443)")]
    with pytest.raises(CellExecutionError, match="NetworkGuardError"):
        NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    # the kernel's refusal reached the session through the guard's log
    (refused,) = take_refusals()
    assert "to look up 'api.openai.com'" in refused
