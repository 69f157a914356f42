"""No secret is shown while a reply streams (issue 16, "Secrets"): not for a moment, in no view.

A small OpenAI-compatible server streams scripted replies a few characters at a time, so each
secret arrives split over several chunks: the API key it was sent (the environment's), a token
from the environment, and secrets of well-known shapes. Every message each view sends while
the reply streams is read: the cell's outputs (a real IPython shell), the reply view's patches,
the panel's live messages, terminal IPython's printed words. None holds a piece of a secret;
near misses (a secret's beginning that goes on differently, words that start like a shape) are
shown in full.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from IPython.utils.capture import capture_output

from chatmagic._livescrub import LiveScrub
from chatmagic._replyview import ReplyView
from chatmagic._secrets import scrub
from chatmagic._state import get_session
from chatmagic.panel import ChatPanel
from chatmagic.present import streaming
from chatmagic.session import ChatSession, Turn, TurnOptions

from ._chat_server import ChatServer

pytestmark = pytest.mark.usefixtures("fresh")

KEY = "sk-proj-Zq9" + "x7Yw" * 20
TOKEN_ENV, TOKEN = "MY_SERVICE_TOKEN", "tok-4f9a8b7c6d5e"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
    "aKYVs4Cq2eTsKJxW6pE9rL0bNk2y3yY9rWjE5tHbq5yE8bJ0P1jR3x0GHsWTiQ==\n"
    "-----END RSA PRIVATE KEY-----"
)
AWS = "AKIAIOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"
URL_PASSWORD = "Hunter2Hunter2"
FILLER = " ".join(f"w{i}" for i in range(40))

#: what the server says for each message: reasoning, then text; ``{key}`` is the key it was sent
SCRIPTS = {
    "env": (
        "I will repeat {key} back.",
        f"Your key: {{key}} and your token {TOKEN}, as sent. {FILLER}",
    ),
    "shapes": (
        "",
        f"A block:\n{PEM}\nAn AWS key {AWS}, a database postgres://admin:{URL_PASSWORD}@db.internal:5432/app "
        f"and a token {GITHUB}. {FILLER}",
    ),
    "near": (
        "",
        "Near misses: AKIA is a prefix, sk-learn-compatible-estimators, https://example.com/a@b, "
        f"-----BEGIN CERTIFICATE-----, ghp_short and {TOKEN[:9]}xyz end. {FILLER}",
    ),
}
NEAR = (
    "AKIA is a prefix",
    "sk-learn-compatible-estimators",
    "https://example.com/a@b",
    "-----BEGIN CERTIFICATE-----",
    f"{TOKEN[:9]}xyz end",
)
#: what each script must never show: every 8-character piece of its secrets
SECRETS = {"env": [KEY, TOKEN], "shapes": [*PEM.split("\n")[1:3], AWS, URL_PASSWORD, GITHUB[4:]]}


def pieces(script: str) -> set[str]:
    return {s[i : i + 8] for s in SECRETS[script] for i in range(len(s) - 7)}


def leaks(script: str, shown: list[str]) -> list[str]:
    bad = pieces(script)
    return [text[:300] for text in shown if any(p in text for p in bad)]


class ScriptServer(ChatServer):
    """Streams the script a message names, four characters a chunk, 8 ms apart (30: "slowly")."""

    async def deltas(self, request: web.Request, body: Any) -> AsyncIterator[dict[str, str]]:
        last = body["messages"][-1]["content"]
        name = next(n for n in SCRIPTS if n in (last if isinstance(last, str) else json.dumps(last)))
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        for field, text in zip(("reasoning_content", "content"), SCRIPTS[name], strict=True):
            text = text.replace("{key}", key)
            for i in range(0, len(text), 4):
                yield {field: text[i : i + 4]}
                await asyncio.sleep(0.03 if "slowly" in str(last) else 0.008)


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptServer]:
    s = ScriptServer().start_in_thread()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def _secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


def _keep(states: list[str], turn: Turn | None, reasoning: bool = False) -> None:
    """A listener's note of what the turn holds now (what a view would draw)."""
    if turn is not None:
        states.append(turn.reasoning + turn.text if reasoning else turn.text)


# -- the turn every view reads ------------------------------------------------------------


@pytest.mark.parametrize("script", ["env", "shapes"])
def test_what_a_turn_holds_while_streaming_holds_no_secret(server: ScriptServer, script: str) -> None:
    """Every view reads the turn's text and reasoning: each state of them, and the reply view
    patched from them as a cell patches it."""
    session = ChatSession()
    session.base_urls["openai"] = server.url
    states: list[str] = []
    session.conversation("live").subscribe(lambda kind, conv, turn: _keep(states, turn, reasoning=True))
    view = ReplyView()
    sent: list[str] = []
    view.comm.publish_msg = lambda msg_type, data=None, **_: sent.append(json.dumps(data, ensure_ascii=False))
    view._handle_msg({"content": {"data": {"method": "custom", "content": {"type": "hello"}}}, "buffers": []})
    try:
        turn = session.send(script, conversation="live", options=TurnOptions(provider="openai", model="m"))
        while not turn.done:
            view.step(turn.text, streaming(turn), time.monotonic(), 0)
            time.sleep(0.01)
        assert turn.error is None, turn.error
    finally:
        view.close()
        session.close()
    assert len(states) > 20 and len(sent) > 3  # the secrets came in pieces, and were looked at
    assert leaks(script, states) == []
    assert leaks(script, sent) == []
    assert "redacted" in turn.text and "redacted from the reply" in " ".join(turn.notes)


def test_a_reply_stopped_inside_a_secret_shows_none_of_it(server: ScriptServer) -> None:
    """Stopped while the key streams: the piece of it that came is decided as the reply's end."""
    session = ChatSession()
    session.base_urls["openai"] = server.url
    states: list[str] = []
    session.conversation("stop").subscribe(lambda kind, conv, turn: _keep(states, turn, reasoning=True))
    try:
        turn = session.send(
            "env, slowly", conversation="stop", options=TurnOptions(provider="openai", model="m")
        )
        deadline = time.monotonic() + 10
        while "Your key:" not in turn.text and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.1)  # a few pieces of the key, not all of it (it takes 0.7 s)
        turn.stop()
        assert turn.wait(10) and turn.state == "stopped"
    finally:
        session.close()
    assert turn.text.startswith("Your key: [redacted OPENAI_API_KEY]")
    assert leaks("env", [*states, turn.text]) == []


def test_near_misses_show_while_streaming(server: ScriptServer) -> None:
    """What only began like a secret is held back only until it goes on differently."""
    session = ChatSession()
    session.base_urls["openai"] = server.url
    live: list[str] = []
    session.conversation("near").subscribe(
        lambda kind, conv, turn: _keep(live, turn) if kind == "update" else None
    )
    try:
        turn = session.send("near", conversation="near", options=TurnOptions(provider="openai", model="m"))
        assert turn.wait(30) and turn.error is None
    finally:
        session.close()
    for words in NEAR:
        first = next(i for i, text in enumerate(live) if words in text)
        assert first < len(live) - 5, words  # shown while filler words still came
    assert turn.text == SCRIPTS["near"][1] and turn.notes == []


@pytest.mark.parametrize("seed", range(3))
def test_any_split_shows_no_secret_and_ends_as_the_scrub_does(seed: int) -> None:
    """The live text, however the pieces fall, against the one rule applied to the whole reply."""
    found = [("OPENAI_API_KEY", KEY), (TOKEN_ENV, TOKEN)]
    rng = random.Random(seed)
    for script in ("env", "shapes", "near"):
        reply = SCRIPTS[script][1].replace("{key}", KEY)
        for _ in range(40):
            live, shown, i = LiveScrub(found), [""], 0
            while i < len(reply):
                n = rng.randint(1, 12)
                shown.append(shown[-1] + live.feed(reply[i : i + n]))
                i += n
            shown.append(shown[-1] + live.end())
            if script != "near":
                assert leaks(script, shown) == []
            assert shown[-1] == scrub(reply, found=found)
    # a reply cut in the middle of an echoed key: the piece it ends with goes too
    live = LiveScrub(found)
    assert live.feed(f"the key is {KEY[:30]}") + live.end() == "the key is [redacted OPENAI_API_KEY]"


# -- the cell, in a real IPython shell ------------------------------------------------------


@pytest.mark.parametrize("script", ["env", "shapes"])
def test_a_cell_never_shows_a_secret_while_it_streams(ip: Any, server: ScriptServer, script: str) -> None:
    with capture_output() as io:
        result = ip.run_cell(f"%%chat -c live-{script} -p openai -m m --base-url {server.url}\n{script}")
    assert result.error_in_exec is None
    shown = [io.stdout, io.stderr, *(str(v) for o in io.outputs for v in o.data.values())]
    assert len(io.outputs) > 2  # updated while streaming, not only at the end
    assert leaks(script, shown) == []
    said = "\n".join(shown)
    if script == "env":
        assert "redacted from the reply: MY_SERVICE_TOKEN, OPENAI_API_KEY" in said
    else:
        assert "redacted from the reply: AWS key, GitHub token, password in a URL, private key" in said
    assert get_session().conversation(f"live-{script}").exchanges[-1].assistant.content.endswith("w39")


def test_near_misses_are_shown_in_full(ip: Any, server: ScriptServer) -> None:
    with capture_output() as io:
        result = ip.run_cell(f"%%chat -c near -p openai -m m --base-url {server.url}\nnear")
    assert result.error_in_exec is None
    final = io.outputs[-1].data["text/plain"]
    for words in NEAR:
        assert words in final, words
    assert "redacted from the reply" not in final


# -- the panel ------------------------------------------------------------------------------


@pytest.mark.parametrize("script", ["env", "shapes"])
def test_the_panel_sends_no_secret_while_it_streams(server: ScriptServer, script: str) -> None:
    session = ChatSession()
    session.base_urls["openai"] = server.url
    panel = ChatPanel(f"panel-{script}", session=session)
    panel.provider, panel.model = "openai", "m"
    sent: list[dict[str, Any]] = []
    panel.comm.publish_msg = lambda msg_type, data=None, **_: sent.append(json.loads(json.dumps(data)))
    panel._handle_msg(
        {"content": {"data": {"method": "custom", "content": {"type": "hello"}}}, "buffers": []}
    )
    try:
        turn = panel.send(script)
        assert turn is not None
        assert turn.wait(30) and panel.wait(10)
    finally:
        panel.close()
        session.close()
    live = [json.dumps(m, ensure_ascii=False) for m in sent if m.get("content", {}).get("type") == "live"]
    assert len(live) > 3
    assert leaks(script, [json.dumps(m, ensure_ascii=False) for m in sent]) == []


# -- terminal IPython -----------------------------------------------------------------------

pexpect = pytest.importorskip("pexpect")


def test_terminal_ipython_prints_no_secret(server: ScriptServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}
    child = pexpect.spawn(
        str(Path(sys.executable).with_name("ipython")),
        ["--simple-prompt", "--colors=NoColor", "--no-banner", "--no-confirm-exit"],
        env={**env, "IPYTHONDIR": str(tmp_path / "ipython"), "TERM": "dumb"},
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 400),
    )
    try:
        child.expect(r"In \[1\]: ")
        child.sendline("%load_ext chatmagic")
        child.expect(r"In \[\d+\]: ")
        printed = ""
        for script in ("env", "shapes", "near"):
            for line in (f"%%chat -c t-{script} -p openai -m m --base-url {server.url}", script, "", ""):
                child.sendline(line)
            child.expect(r"— openai · m .*\r\n")  # the status line: the reply above it, as printed
            if script != "near":
                assert leaks(script, [child.before]) == [], script
            printed += child.before + child.after
            child.expect(r"In \[\d+\]: ")
    finally:
        child.sendeof()
        child.close(force=True)
    flat = printed.replace("\r", "")
    assert "[redacted OPENAI_API_KEY]" in flat and "[redacted private key]" in flat
    assert "redacted from the reply: MY_SERVICE_TOKEN, OPENAI_API_KEY" in flat
    for words in NEAR:
        assert words in flat, words
