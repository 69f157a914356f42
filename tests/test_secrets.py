"""No secret in anything sent, kept or shown (issue 16, "Secrets"), and a turn whose cost does not
grow with the conversation (issue 15): cells in a real IPython shell against the local stand-in,
or small local servers for what the stand-in never does (echo a key, echo a proxy's credentials).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from IPython.utils.capture import CapturedIO, capture_output

from chatmagic import _secrets
from chatmagic._state import get_session
from chatmagic.errors import ProviderConnectionError
from chatmagic.export import to_json, to_markdown
from chatmagic.options import TurnOptions
from chatmagic.record import exchange_record
from chatmagic.sandbox import ForwardProxy, Sandbox
from chatmagic.sandbox._loop import ThreadedServer
from chatmagic.session import ChatSession

from ._chat_server import ChatServer

pytestmark = pytest.mark.usefixtures("fresh")

TOKEN_ENV = "MY_SERVICE_TOKEN"
TOKEN = "tok-4f9a8b7c6d5e"


def run(ip: Any, source: str) -> tuple[Any, CapturedIO]:
    with capture_output() as io:
        result = ip.run_cell(source, store_history=True)
    return result, io


def said(io: CapturedIO) -> str:
    shown = [str(v) for o in io.outputs for v in o.data.values()]
    return "\n".join([io.stdout, io.stderr, *shown])


def sent(sandbox: Sandbox) -> str:
    """Everything the stand-in received."""
    return json.dumps([r.to_dict() for r in sandbox.requests])


@pytest.fixture(autouse=True)
def _forget_registered_credentials() -> Any:
    """Credentials registered by a test (a proxy's, an endpoint's) are secrets for the rest of
    the process, as they are for a user's kernel; later tests of other files must not inherit
    them (a registered 'EndpointPassw0rd' redacts the fragment 'Endpoint' in their messages)."""
    saved = dict(_secrets._registered)
    yield
    with _secrets._lock:
        _secrets._registered.clear()
        _secrets._registered.update(saved)


# -- everything sent or kept goes through the same scrubbing -------------------------------


def test_the_system_prompt_is_scrubbed_wherever_it_goes(
    ip: Any, sandbox_thread: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    log = tmp_path / "log.sqlite3"
    ip.run_line_magic("config", f"ChatMagics.log_path = {str(log)!r}")
    try:
        result, io = run(ip, f"%%chat -c s -p opchatgpts -s 'never reveal {TOKEN}'\nhello")
        assert result.error_in_exec is None, said(io)
        result, io = run(ip, "%%chat -c s\nand again")
        assert result.error_in_exec is None, said(io)
    finally:
        ip.run_line_magic("config", "ChatMagics.log_path = ''")
    conv = get_session().conversation("s")
    assert TOKEN not in sent(sandbox_thread)
    assert f"[redacted {TOKEN_ENV}]" in sent(sandbox_thread)
    assert conv.system == f"never reveal [redacted {TOKEN_ENV}]"
    for ex in conv.exchanges:
        assert TOKEN not in json.dumps(exchange_record(conv, ex))
    assert TOKEN.encode() not in log.read_bytes()
    assert TOKEN not in said(io)


def test_a_default_system_prompt_is_kept_scrubbed(
    ip: Any, sandbox_thread: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    ip.run_line_magic("config", f"ChatMagics.system_prompt = 'use {TOKEN}'")
    try:
        result, io = run(ip, "%%chat -c d -p opchatgpts\nhello")
        assert result.error_in_exec is None, said(io)
    finally:
        ip.run_line_magic("config", "ChatMagics.system_prompt = ''")
    conv = get_session().conversation("d")
    assert TOKEN not in sent(sandbox_thread)
    assert TOKEN not in json.dumps(exchange_record(conv, conv.exchanges[0]))
    assert TOKEN not in to_markdown(conv) and TOKEN not in to_json(conv)


class EchoServer(ChatServer):
    """An OpenAI-compatible server that puts the key it was sent into its reply and reasoning."""

    async def deltas(self, request: web.Request, body: Any) -> AsyncIterator[dict[str, str]]:
        auth = request.headers.get("Authorization", "")
        yield {"reasoning_content": f"they sent {auth}"}
        yield {"content": f"Your header: {auth} ok"}


def test_a_reply_echoing_the_key_is_kept_without_it(
    ip: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = "sk-proj-Zq9" + "x7Yw" * 20
    monkeypatch.setenv("OPENAI_API_KEY", key)
    server = EchoServer().start_in_thread()
    log = tmp_path / "log.sqlite3"
    ip.run_line_magic("config", f"ChatMagics.log_path = {str(log)!r}")
    try:
        result, io = run(ip, f"%%chat -c e -p openai -m m --base-url {server.url}\nwhat did I send?")
        assert result.error_in_exec is None, said(io)
        _, listing = run(ip, "%chat log header")
        export = tmp_path / "e.json"
        ip.run_line_magic("chat", f"export e {export}")
    finally:
        ip.run_line_magic("config", "ChatMagics.log_path = ''")
        server.stop()
    conv = get_session().conversation("e")
    (ex,) = conv.exchanges
    assert "[redacted OPENAI_API_KEY]" in ex.assistant.content and key not in ex.assistant.content
    assert ex.reasoning and key[:20] not in ex.reasoning
    assert key[:20] not in json.dumps(exchange_record(conv, ex))
    assert key[:20].encode() not in log.read_bytes()
    assert key[:20] not in export.read_text()
    assert key[:20] not in said(listing)
    assert key[:20] not in io.outputs[-1].data["text/plain"]  # the saved output
    assert "redacted from the reply: OPENAI_API_KEY" in said(io)


# -- secrets in no variable, found by their shape -------------------------------------------

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
    "aKYVs4Cq2eTsKJxW6pE9rL0bNk2y3yY9rWjE5tHbq5yE8bJ0P1jR3x0GHsWTiQ==\n"
    "-----END RSA PRIVATE KEY-----"
)
SHAPED = {
    "private key": PEM,
    "AWS key": "AKIAIOSFODNN7EXAMPLE",
    "GitHub token": "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8",
    "Slack token": "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp",
    "API key": "sk-proj-T3BlbkFJ8x9Y7z6W5v4U3t2S1r0Q",
    "password in a URL": "postgres://admin:Hunter2Hunter2@db.internal:5432/app",
}


@pytest.mark.parametrize("what", sorted(SHAPED))
@pytest.mark.parametrize("how", ["cell", "{var}", "printed", "Out[n]", "-e"])
def test_a_secret_shape_is_never_sent(ip: Any, sandbox_thread: Sandbox, what: str, how: str) -> None:
    secret = SHAPED[what]
    ip.user_ns["creds"] = secret
    if how == "cell":
        source = f"%%chat -c k -p opchatgpts\nis this ok?\n{secret}"
    elif how == "{var}":
        source = "%%chat -c k -p opchatgpts --interpolate\nis this ok? {creds}"
    elif how == "printed":
        run(ip, "print(creds)")
        source = "%%chat -c k -p opchatgpts --context cells:1\nwhat did it print?"
    elif how == "Out[n]":
        run(ip, "creds")
        source = "%%chat -c k -p opchatgpts --context cells:1\nwhat is that?"
    else:
        run(ip, "raise ValueError(creds)")
        source = "%%chat -c k -p opchatgpts -e\nwhy?"
    result, io = run(ip, source)
    assert result.error_in_exec is None, said(io)
    body = sent(sandbox_thread)
    for piece in secret.split("\n")[1:2] if what == "private key" else [secret.split("@")[0][-12:]]:
        assert json.dumps(piece)[1:-1] not in body, (what, how)
    assert f"redacted {what}" in body or what == "password in a URL"
    assert "redacted" in said(io) and what in said(io)  # the status line says what went


def test_ordinary_text_keeps_its_words() -> None:
    text = (
        "Use sk-learn-compatible-estimators, the task-force, gh_pages, xoxo-kisses, "
        "AKIA is a prefix, ASIAN markets, skeleton keys, -----BEGIN CERTIFICATE-----, "
        "Authorization is required, see https://example.com/a@b and ghp_short."
    )
    found: list[str] = []
    assert _secrets.scrub(text, found=[], replaced=found) == text
    assert found == []


def test_a_cut_private_key_block_goes_whole() -> None:
    cut = repr(PEM[:120])  # a shortened value, as a repr shows it
    assert "MIIEpAIBAAKCAQEA" not in _secrets.scrub(cut, found=[])


# -- userinfo is *** wherever a setting is shown -------------------------------------------


def test_config_listing_and_reprs_hide_passwords(ip: Any) -> None:
    ip.run_line_magic("config", "ChatMagics.proxy = 'http://alice:Pr0xyPassw0rd@127.0.0.1:3128'")
    ip.run_line_magic(
        "config",
        "ChatMagics.endpoints = {'cred': {'base_url': 'http://bob:EndpointPassw0rd@127.0.0.1:9/v1'}}",
    )
    try:
        _, listing = run(ip, "%config ChatMagics")
        _, value = run(ip, "%config ChatMagics.proxy")
        _, refused = run(
            ip, "%config ChatMagics.endpoints = {'cred': 'http://bob:EndpointPassw0rd@127.0.0.1:9/v1'}"
        )
        _, providers = run(ip, "%chat providers")
        shown = said(listing) + said(value) + said(refused) + said(providers)
        assert "Passw0rd" not in shown
        assert "Current: 'http://***@127.0.0.1:3128'" in said(listing)
        assert "'http://***@127.0.0.1:9/v1'" in said(listing)
        assert "http://***@127.0.0.1:3128" in said(value)
        # the setting still works: the URL itself keeps its credentials
        assert str(ip.run_line_magic("config", "ChatMagics.proxy")).startswith("http://alice:Pr0xy")
    finally:
        ip.run_line_magic("config", "ChatMagics.proxy = ''")
        ip.run_line_magic("config", "ChatMagics.endpoints = {}")


# -- credentials in a base URL go as Basic auth ------------------------------------------------


def test_a_base_url_with_credentials_sends_basic_auth(
    ip: Any, sandbox_thread: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sandbox_thread.base_url("ollama").replace("http://", "http://bob:EndpointPassw0rd@")
    ip.run_line_magic("config", f"ChatMagics.endpoints = {{'cred': {{'base_url': {url!r}}}}}")
    try:
        result, io = run(ip, "%%chat -c b -p cred -m llama3.2\nhello")
        assert result.error_in_exec is None, said(io)
        assert "Cannot combine" not in said(io)
        (chat,) = [r for r in sandbox_thread.requests if r.method == "POST"]
        auth = {k.lower(): v for k, v in chat.headers.items()}["authorization"]
        assert auth == "Basic " + base64.b64encode(b"bob:EndpointPassw0rd").decode()
        # with a key as well: one line, nothing sent
        sandbox_thread.clear()
        monkeypatch.setenv("CRED_KEY", "sk-local-123456")
        ip.run_line_magic(
            "config", f"ChatMagics.endpoints = {{'cred': {{'base_url': {url!r}, 'key_env': 'CRED_KEY'}}}}"
        )
        result, io = run(ip, "%%chat -c b2 -p cred -m llama3.2\nhello")
        assert result.error_in_exec is not None
        assert "carries a user and password" in said(io) and "Traceback" not in said(io)
        assert "Passw0rd" not in said(io) and "sk-local-123456" not in said(io)
    finally:
        ip.run_line_magic("config", "ChatMagics.endpoints = {}")


# -- a proxy that echoes its credentials ---------------------------------------------------------


class EchoingProxy(ThreadedServer):
    """Refuses every request, quoting the Proxy-Authorization it got in its headers and body."""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        auth = next(
            (ln.split(":", 1)[1].strip() for ln in head.split("\r\n") if ln.lower().startswith("proxy-auth")),
            "",
        )
        body = f"denied: Proxy-Authorization: {auth}".encode()
        writer.write(
            f"HTTP/1.1 403 Forbidden\r\nProxy-Authorization: {auth}\r\nX-Echo: {auth}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1")
            + body
        )
        await writer.drain()
        writer.close()

    async def start(self) -> EchoingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def aclose(self) -> None:
        self._server.close()


@pytest.mark.parametrize("target", ["https", "http"])
def test_a_proxy_echoing_its_credentials_shows_none(target: str) -> None:
    proxy = EchoingProxy().start_in_thread()
    password = "Pr0xyPassw0rd"
    encoded = base64.b64encode(f"alice:{password}".encode()).decode()
    session = ChatSession()
    session.retries = 0
    session.base_urls = {"opchatgpts": f"{target}://127.0.0.1:9/opchatgpts"}
    try:
        turn = session.send(
            "hi", options=TurnOptions(provider="opchatgpts", proxy=f"http://alice:{password}@{proxy.url[7:]}")
        )
        turn.wait(30)
    finally:
        session.close()
        proxy.stop()
    error = turn.error
    assert error is not None
    seen, todo = [], [error]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__]
    for e in seen:
        for text in (str(e), repr(e), repr(e.args)):
            assert password not in text and encoded not in text, (type(e).__name__, text)
    assert isinstance(error, ProviderConnectionError) or "403" in str(error)


# -- request options are compared as the server reads them ------------------------------------


@pytest.mark.parametrize(
    "option, expected",
    [
        ("-o Model=evil", "choose the model with -m"),
        ("-o ' model'=evil", "choose the model with -m"),
        ("-o api_key=sk-abcdefghijklmnop1234", "environment variable"),
        ("-o API-Key=x", "environment variable"),
        ("-o Authorization=Bearer", "environment variable"),
        ('-o \'tools=[{"type": "function"}]\'', "runs no tools"),
        ("-o Tool_Choice=auto", "runs no tools"),
        ("-o Stream=false", "always streams"),
        ("-o x=" + "[" * 5000 + "]" * 5000, "nests"),
    ],
)
def test_options_chatmagic_writes_or_cannot_honour_are_refused(
    ip: Any, sandbox_thread: Sandbox, option: str, expected: str
) -> None:
    result, io = run(ip, f"%%chat -p openai {option}\nhello")
    assert type(result.error_in_exec).__name__ == "UsageError", said(io)
    assert expected in said(io) and "Traceback" not in said(io)
    assert "sk-abcdefghijklmnop1234" not in said(io)
    assert sandbox_thread.requests == []


def test_config_options_are_compared_without_case(ip: Any, caplog: pytest.LogCaptureFixture) -> None:
    _, io = run(ip, "%config ChatMagics.options = {'Stream': False}")
    assert "always streams" in said(io) + caplog.text
    assert ip.run_line_magic("config", "ChatMagics.options") == {}


@pytest.mark.parametrize(
    "proxy", ["http://\udcff.example:3128", "http://" + "a" * 64 + ".example:3128", "http://a..b:3128"]
)
def test_a_proxy_host_that_cannot_be_encoded_is_refused_in_one_line(ip: Any, proxy: str) -> None:
    with capture_output() as io:
        with pytest.raises(Exception) as info:
            ip.run_cell_magic("chat", f"--proxy {proxy}", "hello")
    assert type(info.value).__name__ == "UsageError"
    assert "not a valid address" in str(info.value) and "Please report" not in str(info.value), io.stdout


# -- a turn's cost does not grow with the conversation ------------------------------------------


def test_kept_messages_are_scrubbed_once(monkeypatch: pytest.MonkeyPatch, sandbox_thread: Sandbox) -> None:
    """The 1,000th turn scrubs what the first did: its prompt and reply, not the history."""
    session = ChatSession()
    session.base_urls = {"opchatgpts": sandbox_thread.base_url("opchatgpts")}
    session.max_history_chars = 0
    calls = 0
    real = _secrets.scrub

    def counted(*args: Any, **kwargs: Any) -> str:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    monkeypatch.setattr("chatmagic.session.conversation.scrub", counted)  # every scrub of a turn
    try:
        per_turn = []
        for i in range(30):
            calls = 0
            session.send(f"question {i}", options=TurnOptions(provider="opchatgpts")).result(30)
            per_turn.append(calls)
        assert per_turn[-1] == per_turn[1] <= 3, per_turn
        # a new secret: every kept message is scrubbed again, once
        monkeypatch.setenv(TOKEN_ENV, "question 1")  # a "secret" the history holds
        calls = 0
        turn = session.send("one more", options=TurnOptions(provider="opchatgpts"))
        turn.result(30)
        assert calls >= 60 and TOKEN_ENV in turn.redacted
        assert "question 1" not in json.dumps(turn.messages)
        calls = 0
        session.send("and again", options=TurnOptions(provider="opchatgpts")).result(30)
        assert calls <= 3
    finally:
        session.close()


def test_a_turn_at_exchange_1000_costs_what_the_first_did(sandbox_thread: Sandbox) -> None:
    session = ChatSession()
    conv = session.conversation()
    from chatmagic.session import Exchange, Message

    def prepare_s() -> float:
        start = time.perf_counter()
        for _ in range(5):
            session.prepare("and now?", options=TurnOptions(provider="opchatgpts"))
        return (time.perf_counter() - start) / 5

    conv.record(Exchange(Message("user", "q"), Message("assistant", "a" * 150), "opchatgpts", ""))
    session.prepare("warm", options=TurnOptions(provider="opchatgpts"))
    first = min(prepare_s() for _ in range(3))
    for i in range(1000):
        conv.record(Exchange(Message("user", f"q{i}"), Message("assistant", "a" * 150), "opchatgpts", ""))
    session.prepare("warm", options=TurnOptions(provider="opchatgpts"))  # scrubs the new ones once
    late = min(prepare_s() for _ in range(3))
    # the sent history is bounded by the budget; its scrubbing is done once
    assert late < max(first * 20, 0.004), (first, late)


def test_request_options_are_sent_without_secrets(
    ip: Any, sandbox_thread: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    ip.run_line_magic("config", f"ChatMagics.options = {{'metadata': {{'note': 'x {TOKEN}'}}}}")
    try:
        base = sandbox_thread.base_url("ollama")
        result, io = run(ip, f"%%chat -c o -p ollama -m llama3.2 --base-url {base} -o user={TOKEN}\nhello")
    finally:
        ip.run_line_magic("config", "ChatMagics.options = {}")
    assert result.error_in_exec is None, said(io)
    (chat,) = [r for r in sandbox_thread.requests if r.method == "POST"]
    assert TOKEN not in json.dumps(chat.json)
    assert chat.json["user"] == f"[redacted {TOKEN_ENV}]"
    assert f"redacted from the options: {TOKEN_ENV}" in said(io)


def test_log_listing_shows_no_secret_a_row_holds(
    ip: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A row logged before replies were scrubbed (or by another tool) is shown scrubbed."""
    from chatmagic.log import ExchangeLog

    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    log = tmp_path / "log.sqlite3"
    with ExchangeLog(log) as raw:
        raw.add(
            {
                "conversation": "old",
                "epoch": "e",
                "key": None,
                "seq": 0,
                "finished_at": time.time(),
                "provider": "openai",
                "model": "m",
                "user": f"my token {TOKEN}",
                "assistant": f"it is {TOKEN}",
            },
            None,
        )
    ip.run_line_magic("config", f"ChatMagics.log_path = {str(log)!r}")
    try:
        _, io = run(ip, "%chat log token")
    finally:
        ip.run_line_magic("config", "ChatMagics.log_path = ''")
    assert "my token" in said(io) and TOKEN not in said(io)


def test_an_attachment_name_shows_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatmagic.options import Attachment

    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert TOKEN not in Attachment(f"/tmp/{TOKEN}.png", "image/png", b"x").describe()


def test_a_proxy_password_typed_in_a_cell_is_not_sent(ip: Any, sandbox_thread: Sandbox) -> None:
    password = "Zq8-Pr0xy-S3cret"
    proxy = ForwardProxy("alice", password).start_in_thread()
    try:
        url = proxy.url.replace("http://", f"http://alice:{password}@")
        result, io = run(ip, f"%%chat -c px -p opchatgpts --proxy {url}\nmy proxy password is {password}")
    finally:
        proxy.stop()
    assert result.error_in_exec is None, said(io)
    assert password not in sent(sandbox_thread) and "[redacted proxy password]" in sent(sandbox_thread)
    assert password not in said(io)
