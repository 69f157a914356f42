"""The session core on its own (no IPython): turns, history rules, stopping, reuse."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from chatmagic.errors import HTTPStatusError, TurnStopped, UnknownModelError, UnknownProviderError
from chatmagic.sandbox import Sandbox
from chatmagic.session import ChatSession, Choice, TurnOptions

from .conftest import SITES


@pytest.fixture
def session(sandbox_thread: Sandbox) -> Iterator[ChatSession]:
    s = ChatSession()
    s.retries = 0
    s.base_urls.update({site: sandbox_thread.base_url(site) for site in SITES})
    yield s
    s.close()


def test_a_completed_turn_joins_the_history(session: ChatSession) -> None:
    conv = session.conversation("c")
    conv.system = "Be brief."
    turn = session.send("hello", conversation="c", options=TurnOptions(provider="opchatgpts"))
    assert turn.result(timeout=30) == "[opchatgpts] You said: hello\n\nEarlier messages: 1."
    assert turn.state == "done" and turn.first_text_s is not None
    assert [m.content for m in conv.history()][0] == "hello"
    assert conv.messages() == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": turn.text},
    ]


def test_a_failed_turn_adds_nothing_and_keeps_its_partial_text(session: ChatSession) -> None:
    turn = session.send("[[fault:drop]] one two three four", options=TurnOptions(provider="opchatgpts"))
    assert turn.wait(30) and turn.state == "failed"
    assert turn.text.startswith("[opchatgpts] ")
    assert len(session.conversation()) == 0
    turn = session.send("[[fault:http500]] x", options=TurnOptions(provider="chatgptt"))
    with pytest.raises(HTTPStatusError):
        turn.result(timeout=30)


def test_stop_mid_stream_keeps_the_text_marked_stopped(session: ChatSession) -> None:
    turn = session.send("[[words:500]][[delay:0.02]]", options=TurnOptions(provider="chatgptfree"))
    while turn.size < 20:
        turn.wait_change(turn.version, 5)
    started = time.monotonic()
    turn.stop()
    assert turn.wait(5)
    assert time.monotonic() - started < 1.0
    assert turn.state == "stopped" and isinstance(turn.error, TurnStopped)
    (ex,) = session.conversation().exchanges
    assert ex.stopped and ex.assistant.content == turn.text and "w500" not in turn.text
    # the next turn is sent with the stopped text as what the assistant said
    nxt = session.send("go on", options=TurnOptions(provider="opchatgpts"))
    assert nxt.result(30).endswith("Earlier messages: 2.")


def test_stop_before_any_text_adds_nothing(session: ChatSession) -> None:
    turn = session.send("[[fault:slow_first_byte]] hi", options=TurnOptions(provider="opchatgpts"))
    turn.stop()
    assert turn.wait(5) and turn.state == "stopped"
    assert len(session.conversation()) == 0


def test_a_key_replaces_its_exchange_in_place(session: ChatSession) -> None:
    opts = TurnOptions(provider="chatgptt")
    session.send("one", options=opts, key="k1").result(30)
    session.send("two", options=opts, key="k2").result(30)
    again = session.send("one again", options=opts, key="k1")
    assert again.result(30).endswith("Earlier messages: 0.")
    assert [ex.user.content for ex in session.conversation().exchanges] == ["one again", "two"]


def test_providers_are_kept_across_turns(session: ChatSession, sandbox_thread: Sandbox) -> None:
    sandbox_thread.clear()
    for text in ("a", "b", "c"):
        session.send(text, options=TurnOptions(provider="chatgpt4online")).result(30)
    sessions = [r for r in sandbox_thread.requests if "start_session" in r.path]
    assert len(sessions) == 1  # one nonce, one provider instance, for three turns


def test_unknown_provider_fails_before_anything_starts(session: ChatSession) -> None:
    with pytest.raises(UnknownProviderError):
        session.send("hi", options=TurnOptions(provider="nope"))
    assert session.conversation().active is None


def test_listeners_see_start_updates_and_end(session: ChatSession) -> None:
    seen: list[str] = []
    conv = session.conversation("watched")
    unsubscribe = conv.subscribe(lambda kind, c, turn: seen.append(kind))
    session.send("[[words:5]]", conversation="watched", options=TurnOptions(provider="opchatgpts")).result(30)
    unsubscribe()
    # updates come in batches (what one network read brought), at least one, at most one a chunk
    assert seen[0] == "start" and 1 <= seen.count("update") <= 5 and seen[-2:] == ["recorded", "end"]


def test_choice_is_what_the_next_turn_uses(session: ChatSession) -> None:
    session.default_model = "gpt-4o-mini"  # belongs to the default provider, chatgptt
    assert session.choice("new") == Choice(["chatgptt"], {"chatgptt": "gpt-4o-mini"})
    assert session.choice("new", TurnOptions(provider=" ChatGPTT")).model == "gpt-4o-mini"
    assert session.choice("new", TurnOptions(provider="opchatgpts")).model == "gpt-3.5-turbo"
    chain = session.choice("new", TurnOptions(provider="chatgptt, opchatgpts", model="gpt-4"))
    assert (chain.provider, chain.models) == (
        "chatgptt,opchatgpts",
        {"chatgptt": "gpt-4", "opchatgpts": "gpt-3.5-turbo"},
    )
    # a restored conversation may hold its provider as typed: naming it again keeps its model
    conv = session.conversation("kept")
    conv.adopt([], provider=" ChatGPTT", model="gpt-4")
    assert session.choice("kept") == Choice(["chatgptt"], {"chatgptt": "gpt-4"})
    assert session.choice("kept", TurnOptions(provider="chatgptt")).model == "gpt-4"
    assert session.choice("kept", TurnOptions(provider="chatgpt4online")).provider == "chatgpt4online"
    assert session.choice("kept", fresh=True).model == "gpt-4o-mini"
    assert (conv.provider, conv.model) == (" ChatGPTT", "gpt-4")  # asking changes nothing
    turn = session.prepare("hi", conversation="kept", options=TurnOptions(provider="chatgptt"))
    assert (turn.chain, turn.model) == (["chatgptt"], "gpt-4")
    with pytest.raises(UnknownModelError):
        session.choice("kept", TurnOptions(model="no-such-model"))
    with pytest.raises(UnknownProviderError):
        session.choice("kept", TurnOptions(provider="nosuch"))
