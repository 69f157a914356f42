"""Trust in the session core: a conversation goes where the user said and stops when told.

Each test is a case that once went wrong (issue "Trust"), run as a user would: cells in a
real IPython shell against the local stand-in, or the session core directly.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from IPython.utils.capture import CapturedIO, capture_output

from chatmagic import _state
from chatmagic._state import get_session
from chatmagic.errors import ConversationBusy, TurnStopped
from chatmagic.options import TurnOptions
from chatmagic.panel import ChatPanel
from chatmagic.sandbox import Sandbox
from chatmagic.session import ChatSession

pytestmark = pytest.mark.usefixtures("fresh")


def run(ip: Any, source: str, cell_id: str | None = None) -> tuple[Any, CapturedIO]:
    with capture_output() as io:
        result = ip.run_cell(source, cell_id=cell_id)
    return result, io


def said(io: CapturedIO) -> str:
    return io.stdout + io.stderr


def reply(ip: Any, source: str) -> str:
    result, io = run(ip, source)
    assert result.error_in_exec is None, said(io)
    return io.outputs[-1].data["text/plain"]


def chat_sites(sandbox: Sandbox) -> list[str | None]:
    """Which site each chat request went to (page loads and token fetches left out)."""
    return [r.site for r in sandbox.requests if r.method == "POST"]


# -- the conversation goes where the user said ---------------------------------------------


def test_a_failed_first_turn_keeps_the_provider(ip: Any, sandbox_thread: Sandbox) -> None:
    sandbox_thread.inject("opchatgpts", "http500")
    result, io = run(ip, "%%chat -c x -p opchatgpts\nhello")
    assert result.error_in_exec is not None
    assert len(get_session().conversation("x")) == 0
    sandbox_thread.clear()
    # no -p: the conversation's provider answers, never the default (chatgptt)
    assert reply(ip, "%%chat -c x\nhello again").startswith("[opchatgpts]")
    assert "chatgptt" not in chat_sites(sandbox_thread)


def test_provider_switch_drops_the_previous_providers_model(ip: Any) -> None:
    assert reply(ip, "%%chat -c a -p chatgptt -m gpt-4o-mini\nhi").startswith("[chatgptt]")
    # gpt-4o-mini belongs to chatgptt: opchatgpts answers with its own default model
    assert reply(ip, "%%chat -c a -p opchatgpts\nand you?").startswith("[opchatgpts]")
    conv = get_session().conversation("a")
    assert conv.provider == "opchatgpts" and conv.model is None
    assert conv.exchanges[-1].model == "gpt-3.5-turbo"  # opchatgpts's default model
    # and the next cell stays with opchatgpts
    assert reply(ip, "%%chat -c a\nstill there?").startswith("[opchatgpts]")


def test_provider_switch_after_a_panel_send(ip: Any) -> None:
    panel = ChatPanel("p", session=get_session())
    try:
        panel.provider = "chatgptes"  # as if chosen in the panel
        turn = panel.send("from the panel")
        assert turn is not None and turn.result(30).startswith("[chatgptes]")
        panel.wait(10)
    finally:
        panel.close()
    assert reply(ip, "%%chat -c p -p chatgpt4online\nfrom a cell").startswith("[chatgpt4online]")


def test_model_given_alone_stays_with_the_conversation(ip: Any) -> None:
    reply(ip, "%%chat -c m -p chatgptes -m gpt-4o-mini\nhi")
    conv = get_session().conversation("m")
    assert (conv.provider, conv.model) == ("chatgptes", "gpt-4o-mini")
    reply(ip, "%%chat -c m\nagain")
    assert conv.exchanges[-1].model == "gpt-4o-mini"


def test_a_second_turn_while_one_streams_is_refused(sandbox_thread: Sandbox) -> None:
    session = ChatSession()
    session.retries = 0
    session.base_urls = {"opchatgpts": sandbox_thread.base_url("opchatgpts")}
    try:
        slow = session.send("[[words:40]][[delay:0.05]]", options=TurnOptions(provider="opchatgpts"))
        with pytest.raises(ConversationBusy, match="still streaming"):
            session.send("second", options=TurnOptions(provider="opchatgpts"))
        with pytest.raises(ConversationBusy):
            session.new_conversation()
        slow.result(30)
        after = session.send("second", options=TurnOptions(provider="opchatgpts"))
        after.result(30)
        users = [m.content for m in session.conversation().history() if m.role == "user"]
        assert users == ["[[words:40]][[delay:0.05]]", "second"]
    finally:
        session.close()


def test_a_cell_while_the_panel_streams_is_refused_and_loses_nothing(ip: Any) -> None:
    panel = ChatPanel("shared", session=get_session())
    try:
        panel.provider = "opchatgpts"
        turn = panel.send("[[words:60]][[delay:0.03]]")
        assert turn is not None
        result, io = run(ip, "%%chat -c shared --new\nfrom the cell")
        assert isinstance(result.error_in_exec, ConversationBusy)
        assert "still streaming" in said(io)
        turn.result(30)
        panel.wait(10)
    finally:
        panel.close()
    conv = get_session().conversation("shared")
    assert [ex.user.content for ex in conv.exchanges] == ["[[words:60]][[delay:0.03]]"]


# -- settings mirror the traits ------------------------------------------------------------


def test_base_urls_mirror_the_setting_exactly(ip: Any, sandbox_thread: Sandbox) -> None:
    session = get_session()
    before = dict(session.base_urls)
    try:
        ip.run_line_magic("config", "ChatMagics.base_urls = {'openai': 'http://127.0.0.1:9/v1'}")
        assert session.base_urls == {"openai": "http://127.0.0.1:9/v1"}
        ip.run_line_magic("config", "ChatMagics.base_urls = {}")
        assert session.base_urls == {}
    finally:
        ip.run_line_magic("config", f"ChatMagics.base_urls = {before!r}")
    assert session.base_urls == before


def test_the_stand_in_gives_back_the_users_addresses(ip: Any) -> None:
    session = get_session()
    mine = dict(session.base_urls)
    try:
        run(ip, "%chat sandbox")
        stand_in = _state.running_sandbox()
        assert stand_in is not None
        assert session.base_url_for("chatgptt") == stand_in.base_url("chatgptt")
        assert session.base_urls == mine  # the user's own settings are untouched
        assert reply(ip, "%%chat\nthrough the in-kernel stand-in").startswith("[chatgptt]")
    finally:
        run(ip, "%chat sandbox stop")
    assert session.base_urls == mine
    assert session.base_url_for("chatgptt") == mine["chatgptt"]


def test_a_bad_setting_is_refused_in_one_line(ip: Any) -> None:
    session = get_session()
    for line, trait in [
        ("ChatMagics.proxy = 'ftp://host:21'", "proxy"),
        ("ChatMagics.timeout = float('nan')", "timeout"),
        ("ChatMagics.base_urls = {'openai': 'localhost:11434'}", "base_urls"),
        ("ChatMagics.default_provider = 'a,,b'", "default_provider"),
    ]:
        before = getattr(
            session, {"proxy": "default_proxy", "timeout": "default_timeout"}.get(trait, trait), None
        )
        result, io = run(ip, f"%config {line}")
        assert "Traceback" not in said(io)
        # one line, with no logger's "ERROR:root:" before it
        assert io.stderr.count("\n") == 1 and not io.stderr.startswith("ERROR"), line
        after = getattr(
            session, {"proxy": "default_proxy", "timeout": "default_timeout"}.get(trait, trait), None
        )
        assert after == before, line


# -- it stops when told --------------------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    [
        "before start",
        "in the hand-over to the loop, before it",
        "in the hand-over to the loop, after it",
        "after start",
        "before the display",
        "after prepare, before the run takes charge",
    ],
)
def test_ctrl_c_in_the_first_moments_stops_the_turn(
    ip: Any, sandbox_thread: Sandbox, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Ctrl-C lands between the turn's creation and the display loop: it must stop it."""
    from chatmagic import _cell  # the module that runs a turn in a cell (binds display, ReplyStream)

    session = get_session()
    real_start, real_display = session.start, _cell.display
    real_submit, submitted = session.runner.submit, []

    def start(turn: Any) -> Any:
        if where == "before start":
            raise KeyboardInterrupt
        real_start(turn)
        if where == "after start":
            raise KeyboardInterrupt
        return turn

    def display(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("display_id"):
            raise KeyboardInterrupt
        return real_display(*args, **kwargs)

    def submit(coro: Any) -> Any:
        if submitted:  # only the turn's own hand-over is interrupted
            return real_submit(coro)
        submitted.append(coro)
        if where.endswith("after it"):
            real_submit(coro)
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "start", start)
    if where == "before the display":
        monkeypatch.setattr(_cell, "display", display)
    if where.startswith("in the hand-over"):
        monkeypatch.setattr(session.runner, "submit", submit)
    if where.startswith("after prepare"):

        def reply_stream(*args: Any, **kwargs: Any) -> Any:
            raise KeyboardInterrupt

        monkeypatch.setattr(_cell, "ReplyStream", reply_stream)
    began = time.monotonic()
    result, io = run(ip, "%%chat -p opchatgpts\n[[words:30]][[delay:0.02]]")
    monkeypatch.undo()
    assert time.monotonic() - began < 5  # stopped at once, not after waiting for a turn that never ran
    assert isinstance(result.error_in_exec, TurnStopped), said(io)
    assert "KeyboardInterrupt" not in said(io)
    time.sleep(1.0)  # long enough for the whole reply, had it kept streaming
    conv = session.conversation()
    assert conv.active is None
    assert all(ex.stopped for ex in conv.exchanges)  # nothing joined later as complete
    # the conversation is usable, and in the order things were sent
    assert reply(ip, "%%chat -p opchatgpts\nnext").startswith("[opchatgpts]")
    assert conv.exchanges[-1].user.content == "next" and not conv.exchanges[-1].stopped


@pytest.mark.parametrize("after_it", [False, True], ids=["before the hand-over", "after the hand-over"])
def test_ctrl_c_inside_the_hand_over_leaves_nothing_busy(
    sandbox_thread: Sandbox, monkeypatch: pytest.MonkeyPatch, after_it: bool
) -> None:
    """Ctrl-C inside ``runner.submit`` (a panel send has no magic to stop the turn after it):
    the turn ends stopped and the next turn on the conversation goes through."""
    session = ChatSession()
    session.retries = 0
    session.base_urls = {"opchatgpts": sandbox_thread.base_url("opchatgpts")}
    turns: list[Any] = []
    conv = session.conversation("c")
    conv.subscribe(lambda kind, conv, turn: turns.append(turn) if kind == "start" else None)
    real_submit = session.runner.submit

    def submit(coro: Any) -> Any:
        monkeypatch.undo()
        if after_it:
            real_submit(coro)
        raise KeyboardInterrupt

    monkeypatch.setattr(session.runner, "submit", submit)
    options = TurnOptions(provider="opchatgpts")
    try:
        with pytest.raises(KeyboardInterrupt):
            session.send("[[words:30]][[delay:0.02]]", conversation="c", options=options)
        (turn,) = turns
        assert after_it or turn.state == "stopped"  # never handed over: it ended at once
        assert turn.wait(5) and turn.state == "stopped"
        assert conv.active is None
        time.sleep(1.0)  # long enough for the whole reply, had it kept streaming
        # nothing joined later as complete. Never handed over: nothing at all. Handed over: the
        # loop may have had the first words before the stop came, kept marked as stopped
        # (the history rule), as after any stop
        assert all(ex.stopped for ex in conv.exchanges) and (after_it or not conv.exchanges)
        stopped = len(conv.exchanges)
        assert session.send("next", conversation="c", options=options).result(30).startswith("[opchatgpts]")
        assert [ex.user.content for ex in conv.exchanges][stopped:] == ["next"]
        assert not conv.exchanges[-1].stopped
    finally:
        session.close()


def test_a_real_interrupt_in_the_first_milliseconds(ip: Any) -> None:
    """SIGINT at 0-12 ms into a cell, many times: a reply never joins the history as complete
    after being interrupted, and once a turn exists the user sees the one-line message."""
    session = get_session()
    # imports first: an interrupt inside one leaves a file open (a ResourceWarning, not ours)
    reply(ip, "%%chat -c warm -p opchatgpts\nhi")
    for i in range(25):
        conv = session.conversation(f"sig{i}")
        began: list[str] = []  # the turn's events: start() was entered
        conv.subscribe(lambda kind, conv, turn, began=began: began.append(kind) if turn else None)
        delay = (i % 13) / 1000
        timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
        try:
            timer.start()
            result, io = run(ip, f"%%chat -c sig{i} -p opchatgpts\n[[words:20]][[delay:0.02]]")
            timer.join()
        except KeyboardInterrupt:  # landed outside the cell's execution
            result = None
            timer.join()
        time.sleep(0.05)
        deadline = time.monotonic() + 5
        while conv.active is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert conv.active is None, f"run {i}: the conversation stayed busy"
        assert all(ex.stopped for ex in conv.exchanges), f"run {i}: a stopped reply joined as complete"
        if result is None:
            continue
        shown, error = said(io), result.error_in_exec
        if began:  # the turn had begun: stopped in one line, whatever the moment
            assert error is None or isinstance(error, TurnStopped), f"run {i}: {error!r}\n{shown}"
            assert "Traceback" not in shown and "KeyboardInterrupt" not in shown, f"run {i}:\n{shown}"
        else:  # before the turn began: nothing was sent. Inside the magic (parsing, prepare) the
            # one-line "Stopped"; IPython's own interruption only when it landed outside the magic
            assert error is None or isinstance(error, (KeyboardInterrupt, TurnStopped)), f"run {i}: {error!r}"
            if isinstance(error, TurnStopped):
                assert "Nothing was sent" in shown and "KeyboardInterrupt" not in shown, f"run {i}:\n{shown}"
            assert not conv.exchanges


# -- secrets in what is shown ---------------------------------------------------------------


def test_a_proxy_password_is_never_echoed(ip: Any) -> None:
    for line in [
        '%%chat --proxy "http://alice:S3CR3T@127.0.0.1:3128\nhi',
        "%%chat --prxy http://alice:S3CR3T@127.0.0.1:3128\nhi",
        "%%chat --proxy http://alice:S3CR3T@127.0.0.1:99999\nhi",
        "%%chat --proxy socks9://alice:S3CR3T@127.0.0.1:1080\nhi",
    ]:
        result, io = run(ip, line)
        assert result.error_in_exec is not None or result.error_before_exec is not None
        assert "S3CR3T" not in said(io), line
        assert "Traceback" not in said(io), line
    options = TurnOptions(proxy="http://alice:S3CR3T@127.0.0.1:3128")
    assert "S3CR3T" not in repr(options) and "***@127.0.0.1:3128" in repr(options)


# -- bad input gets a clear error ------------------------------------------------------------


@pytest.mark.parametrize(
    "options, expected",
    [
        ("--timeout inf", "--timeout must be a positive number"),
        ("--timeout nan", "--timeout must be a positive number"),
        ("--timeout 1e309", "--timeout must be a positive number"),
        ("--timeout -1", "--timeout must be a positive number"),
        ("--proxy http://127.0.0.1:99999", "not a valid address"),
        ("--proxy http://[127.0.0.1", "not a valid address"),
        ("--proxy socks5://127.0.0.1:1080", "must start with http:// or https://"),
        ("-p 'a,,b'", "has an empty name"),
        ("-p ''", "No provider given"),
        ("-m ''", "The model name is empty"),
        ("--base-url localhost:8080", "must start with http:// or https://"),
    ],
)
def test_bad_options_are_usage_errors_before_anything_is_sent(
    ip: Any, sandbox_thread: Sandbox, options: str, expected: str
) -> None:
    result, io = run(ip, f"%%chat {options}\nhello")
    assert type(result.error_in_exec).__name__ == "UsageError", said(io)
    assert expected in said(io)
    assert "Traceback" not in said(io)
    assert sandbox_thread.requests == []
    assert len(get_session().conversation()) == 0


@pytest.mark.parametrize("how", ["cell", "--interpolate", "panel", "session"])
def test_a_lone_surrogate_in_what_the_user_sends_is_replaced(
    ip: Any, sandbox_thread: Sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """A prompt or system prompt holding what UTF-8 cannot encode (a lone surrogate, from a
    variable, the panel's box, code) is sent and kept with U+FFFD in its place."""
    session = get_session()
    conv = session.conversation("odd")
    odd, system = "x\ud800y", "be \udfffbrief"
    if how == "cell":  # a cell's text cannot hold one (IPython compiles it): the magic can
        with capture_output():
            ip.run_cell_magic("chat", f"-c odd -p opchatgpts -s '{system}'", odd)
    elif how == "--interpolate":
        ip.user_ns["odd"] = odd
        reply(ip, "%%chat -c odd -p opchatgpts --interpolate\n{odd}")
    elif how == "panel":
        panel = ChatPanel("odd", session=session)
        try:
            panel.provider = "opchatgpts"
            turn = panel.send(odd)
            assert turn is not None
            turn.result(30)
        finally:
            panel.close()
    else:
        options = TurnOptions(provider="opchatgpts", system=system)
        session.send(odd, conversation="odd", options=options).result(30)
    (exchange,) = conv.exchanges
    assert exchange.user.content == "x\ufffdy"
    json.dumps(exchange.to_dict(), ensure_ascii=False).encode("utf-8")
    if how in ("cell", "session"):
        assert conv.system == "be \ufffdbrief"
    sent = [r for r in sandbox_thread.requests if r.method == "POST"][-1]
    assert "x\ufffdy" in json.dumps([sent.json, sent.form], ensure_ascii=False)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    # the conversation goes on, and everything that reads it works
    assert reply(ip, "%%chat -c odd\nagain").startswith("[opchatgpts]")
    for line in ("chat history odd", f"chat export odd {tmp_path / 'odd.md'}"):
        result, io = run(ip, f"%{line}")
        assert result.error_in_exec is None, said(io)
    assert "x\ufffdy" in (tmp_path / "odd.md").read_text(encoding="utf-8")


# -- tell the user what happened -------------------------------------------------------------


def test_retries_are_visible(ip: Any, sandbox_thread: Sandbox) -> None:
    ip.run_line_magic("config", "ChatMagics.retries = 2")
    session = get_session()
    session.backoff = 0.01
    try:
        sandbox_thread.inject("opchatgpts", "http500")
        assert "(after 1 retry)" in reply(ip, "%%chat -p opchatgpts\nhi")
        sandbox_thread.inject("opchatgpts", "http503", times=3)
        result, io = run(ip, "%%chat -p opchatgpts\nagain")
        assert "3 attempts" in said(io)
        assert "<html" not in said(io).lower() and "<h1" not in said(io).lower()
    finally:
        session.backoff = 0.5


def test_a_dropped_stream_says_one_thing_about_the_text(ip: Any, sandbox_thread: Sandbox) -> None:
    sandbox_thread.inject("opchatgpts", "drop")
    result, io = run(ip, "%%chat -p opchatgpts\n[[words:50]]")
    assert result.error_in_exec is not None
    shown = io.outputs[-1].data["text/plain"] + said(io)
    assert "not added to the conversation" in shown
    assert "is kept" not in shown
    assert len(get_session().conversation()) == 0


def test_chat_commands_come_from_one_parser(ip: Any) -> None:
    result, io = run(ip, "%chat histroy")
    assert "Did you mean: %chat history?" in said(io)
    with capture_output() as io:
        ip.run_line_magic("chat", "help")
    text = io.stdout
    lines = [
        line.split()[1] + " " + line.split()[2]
        for line in text.splitlines()
        if line.startswith("  %chat") and len(line.split()) > 2
    ]
    assert len(lines) == len(set(lines)), text  # no command listed twice
    for command in ("providers", "history", "restore", "export", "sandbox fault", "approve", "deny", "stop"):
        assert f"%chat {command}" in text
    result, io = run(ip, "%chat export")
    assert "usage: %chat export NAME [PATH]" in said(io)
    result, io = run(ip, "%chat sandbox fault chatgptt http500 zero")
    assert "not a positive whole number" in said(io)
