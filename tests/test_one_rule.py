"""Each rule said once: what a cell, the panel, %chat history and an export show of the same
turn comes from one function in chatmagic.present (issue 17, "Rules said twice")."""

from __future__ import annotations

import os
import re
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from IPython.utils.capture import capture_output

from chatmagic import present
from chatmagic._state import get_session
from chatmagic.errors import TurnStopped
from chatmagic.panel import ChatPanel
from chatmagic.session import Exchange, Message

from .test_magics import run

pytestmark = pytest.mark.usefixtures("fresh")

THOUGHT = "First, <the user> greets.\nSo: greet back."


def test_history_export_and_panel_all_show_the_reasoning(ip: Any, tmp_path: Path) -> None:
    reply = Message("assistant", "Hello **there**.")
    ex = Exchange(Message("user", "hi"), reply, "ollama", "qwen3", reasoning=THOUGHT)
    get_session().conversation("think").adopt([ex])
    panel = ChatPanel("think", session=get_session())
    try:
        panel.wait(5)
        bubble = panel.messages[-1]
    finally:
        panel.close()
    with capture_output() as io:
        ip.run_line_magic("chat", "history think")
    (shown,) = io.outputs
    assert bubble in shown.data["text/html"]  # the same drawing (main: history had no Thinking)
    assert bubble == present.exchange_html(ex)
    assert "First, &lt;the user&gt; greets." in bubble  # escaped, inside the Thinking block
    assert f"thinking: {THOUGHT}" in shown.data["text/plain"]
    run(ip, f"%chat export think {tmp_path / 'think.md'}")
    exported = (tmp_path / "think.md").read_text()
    assert (
        f"**{present.thinking_summary(THOUGHT)}**\n\n> First, <the user> greets.\n> So: greet back.\n"
        in exported
    )
    assert exported.index("> So: greet back.") < exported.index("Hello **there**.")


def test_a_cell_and_the_panel_say_the_same_notes(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "sk-test-0123456789abcdef")
    ip.run_line_magic("config", "ChatMagics.max_history_chars = 600")
    earlier = [
        Exchange(
            Message("user", f"question {i} " + "pad " * 100), Message("assistant", "ok"), "chatgptt", "gpt-4o"
        )
        for i in range(2)
    ]
    prompt = "my token is sk-test-0123456789abcdef"
    notes = "redacted MY_SERVICE_TOKEN · sent 1 of 2 earlier exchanges"
    get_session().conversation("cell").adopt(earlier)
    _, io = run(ip, f"%%chat -c cell -p chatgptt\n{prompt}")
    assert io.outputs[-1].data["text/plain"].endswith(notes)
    get_session().conversation("panel").adopt(earlier)
    panel = ChatPanel("panel", session=get_session())
    try:
        panel.wait(5)
        panel.provider = "chatgptt"
        assert panel.send(prompt) is not None
        assert panel.wait(15)
        status = panel.status
    finally:
        panel.close()
    assert f"{notes}</div>" in status  # main: the panel said neither


def test_a_stop_before_any_text_is_told_in_one_sentence(ip: Any) -> None:
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    result, _ = run(ip, "%%chat -c cell -p chatgptt\nslow [[fault:slow_first_byte]]")
    timer.cancel()
    assert isinstance(result.error_in_exec, TurnStopped)
    sentence = "Nothing was added to the conversation."
    assert str(result.error_in_exec) == f"Stopped by the user. {sentence}"
    panel = ChatPanel("panel", session=get_session())
    try:
        panel.wait(5)
        panel.provider = "chatgptt"
        turn = panel.send("slow [[fault:slow_first_byte]]")
        assert turn is not None
        panel.stop()
        assert panel.wait(5)
        status = panel.status
    finally:
        panel.close()
    assert turn.exchange is None and present.outcome(turn) == sentence
    assert f"{sentence} Your message is back in the box." in status


def test_one_default_provider_and_one_timeout() -> None:
    from chatmagic.magics import ChatMagics
    from chatmagic.options import DEFAULT_PROVIDER, DEFAULT_TIMEOUT
    from chatmagic.providers._http import Transport
    from chatmagic.session import ChatSession

    traits = ChatMagics.class_traits()
    session = ChatSession()
    try:
        assert traits["default_provider"].default_value == session.default_provider == DEFAULT_PROVIDER
        assert traits["timeout"].default_value == session.default_timeout == DEFAULT_TIMEOUT
        assert Transport("x").timeout == DEFAULT_TIMEOUT
    finally:
        session.close()


PACKAGE = Path(__file__).resolve().parent.parent / "chatmagic"


def _written_outside(pattern: str, home: str) -> list[str]:
    """The lines of chatmagic/ (outside its ``home`` module) that match ``pattern``."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == home and path.parent == PACKAGE:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(pattern, line):
                found.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    return found


def test_one_key_scheme() -> None:
    from chatmagic._text import TEXT_KEY_PREFIX, cell_key, is_text_key, panel_key, text_key
    from chatmagic.session import TEXT_KEY_PREFIX as from_the_session

    assert from_the_session is TEXT_KEY_PREFIX
    assert cell_key("abc") == "cell:abc" and not is_text_key(cell_key("abc"))
    assert text_key("hi") == text_key("hi") != text_key("ho")  # the same text, the same key
    assert is_text_key(text_key("hi")) and text_key("hi").startswith(TEXT_KEY_PREFIX)
    assert text_key("lone \ud800 surrogate").startswith(TEXT_KEY_PREFIX)  # a cell may hold one
    assert panel_key() != panel_key() and not is_text_key(panel_key())
    assert not is_text_key(None)
    # on main the scheme was written in _cell, panel, _defaults and log (a copy of the prefix)
    assert _written_outside(r"""(?<!\w)[rbfu]?["'](cell|text|panel):""", "_text.py") == []
    assert _written_outside(r"TEXT_KEY_PREFIX\s*=", "_text.py") == []


def test_an_interpolated_value_and_the_variables_are_cut_with_one_marker(
    ip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatmagic.context import BUDGETS
    from chatmagic.interpolate import DEFAULT_MAX_CHARS

    budget = BUDGETS["vars"]
    monkeypatch.setitem(ip.user_ns, "v", "x" * 10_000)
    for i in range(300):
        monkeypatch.setitem(ip.user_ns, f"a_variable_with_a_long_name_{i}", i)
    ip.run_line_magic("config", f"ChatMagics.interpolate_max_chars = {budget}")
    try:
        _, io = run(ip, "%%chat -i --dry-run --context vars -p chatgptt\nlook at {v}")
    finally:
        ip.run_line_magic("config", f"ChatMagics.interpolate_max_chars = {DEFAULT_MAX_CHARS}")
    plain = io.outputs[-1].data["text/plain"]
    # main: the value said "… [N characters omitted] …", the variables "[… N characters of … left out …]"
    marker = r"\n\[… ([\d,]+) characters of ([^\n]+) left out …\]\n"
    assert [what for _, what in re.findall(marker, plain)] == ["the variables", "v"]
    value = plain[plain.index("look at ") + len("look at ") :].split("\n\n")[0]
    assert value.startswith("xxx") and len(value) <= budget  # the budget holds the marker too


@pytest.mark.parametrize(
    "cell",
    [
        '%%chat -c x -p " OpChatGPTs"\nhi',
        "%%chat -c x -p CHATGPTES,opchatgpts\nhi",
        "%%chat -c x -p chatgptfree -m gpt-4o-mini\nhi",  # an alias: the model it names
        None,  # a model the rule refuses (a notebook's from elsewhere): shown as kept
    ],
)
def test_models_and_the_panel_show_one_choice(ip: Any, cell: str | None) -> None:
    if cell is None:
        get_session().conversation("x").adopt([], provider="chatgptt", model="no-such-model")
    else:
        result, _ = run(ip, cell)
        assert result.error_in_exec is None
    panel = ChatPanel("x", session=get_session())
    try:
        panel.wait(5)
        provider, model = panel.provider, panel.model
    finally:
        panel.close()
    # main: %chat models read only the default conversation and named no model
    with capture_output() as io:
        ip.run_line_magic("chat", "models -c x")
    first = provider.split(",")[0]
    assert io.stdout.startswith(f"Models of {first} (")
    assert io.stdout.endswith(f"The next turn of 'x' uses {provider}, model {model}.\n")
    assert get_session().shown_choice("x").provider == provider


def test_one_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatmagic import _secrets
    from chatmagic._text import CUT_MARK, cut_end, cut_middle, cut_start

    # no credential an earlier test registered (a proxy password "wrong-pw" would rightly
    # take the "w" of "world" with it: a cut drops what may be a secret's piece)
    monkeypatch.setattr(_secrets, "_registered", {})
    text = "a" * 600 + "b" * 400
    cut = cut_middle(text, 200, "the value")
    assert len(cut) <= 200 and cut.startswith("aaa") and cut.endswith("bbb")
    (mark,) = CUT_MARK.findall(cut)  # the glass box finds the one marker
    assert mark == f"[… {1000 - len(cut) + len(mark) + 2:,} characters of the value left out …]"
    assert cut_middle(text, 1000) == text and "of this left out" in cut_middle(text, 100)
    assert cut_end("hello world", 6) == "hello…" and cut_end("hello", 5) == "hello"
    assert cut_start("hello world", 6) == "…world"
    # no cut leaves a piece of a secret on either side (whole ones are scrubbed afterwards)
    secret = "sk-cut-0123456789abcdefXYZ"
    monkeypatch.setenv("MY_SERVICE_TOKEN", secret)
    for cut in (
        cut_end("x" * 30 + secret, 40),
        cut_start(secret + "x" * 30, 40),
        cut_middle(secret * 20, 100),
    ):
        rest = cut.replace(secret, "")
        assert not [secret[i : i + 8] for i in range(len(secret) - 7) if secret[i : i + 8] in rest]
    # every cut of chatmagic/ is made there: no marker or "…"-cut written anywhere else
    assert _written_outside(r"characters omitted|left out …\]|\+ \"…\"|\"…\" \+", "_text.py") == []
