"""Before a turn goes: the glass box of a prepared turn, against the stand-in's local servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatmagic.budget import Limits
from chatmagic.options import TurnOptions
from chatmagic.preflight import check, max_output_tokens
from chatmagic.providers.window import forget
from chatmagic.sandbox import Sandbox, SandboxSettings, count_prompt
from chatmagic.session import ChatSession


@pytest.fixture
def small() -> Iterator[Sandbox]:
    """A stand-in whose local servers serve a 200-token window."""
    sb = Sandbox(SandboxSettings(context_window=200)).start_in_thread()
    forget()
    try:
        yield sb
    finally:
        sb.stop()
        forget()


@pytest.fixture
def session(small: Sandbox) -> Iterator[ChatSession]:
    s = ChatSession()
    s.base_urls = {site: small.base_url(site) for site in ("llamacpp", "vllm", "ollama", "chatgptt")}
    try:
        yield s
    finally:
        s.close()


def talk(session: ChatSession, provider: str, *prompts: str) -> None:
    for prompt in prompts:
        turn = session.send(prompt, options=TurnOptions(provider=provider, model="llama3.2"))
        assert turn.wait(10) and turn.state == "done", turn.error


@pytest.mark.parametrize("site", ["llamacpp", "vllm"])
def test_a_server_with_a_tokenizer_counts_exactly(session: ChatSession, small: Sandbox, site: str) -> None:
    talk(session, site, "first question " * 3, "second question")
    turn = session.prepare("third", options=TurnOptions(system="Be brief."))
    box = check(turn, ask_server=True)
    assert box.total.how == "server"
    assert box.total.tokens == count_prompt(turn.messages)
    assert box.window.tokens == 200 and box.window.kind == site
    kinds = [p.kind for p in box.parts]
    assert kinds[0] == "system" and kinds[-1] == "prompt"
    assert kinds.count("exchange") == 2 and all(p.sent for p in box.parts)
    assert turn.anatomy is box  # type: ignore[attr-defined]


def test_the_history_budget_shows_what_it_left_out(session: ChatSession) -> None:
    session.max_history_chars = 300
    talk(session, "ollama", "x" * 150, "y" * 20, "z" * 20)
    turn = session.prepare("now", options=TurnOptions(provider="ollama", model="llama3.2"))
    box = check(turn, ask_server=True)
    out = [p for p in box.parts if not p.sent]
    assert out and all(p.note == "history budget" and p.tokens is None for p in out)
    assert out[0].label.startswith("exchange 1: xxx")
    assert box.window.source.startswith("Ollama /api/show")
    assert box.total.how == "≈"  # Ollama has no tokenizer endpoint; llama3.2 has no offline BPE here


def test_a_web_sites_window_is_unknown_without_a_hint_that_cannot_help(session: ChatSession) -> None:
    site = check(session.prepare("hi", options=TurnOptions(provider="chatgptt")))
    assert "context window: unknown (a web site's chat does not say)" in site.text()
    server = check(session.prepare("hi", options=TurnOptions(provider="openai", model="gpt-4o")))
    assert "set context_window in ChatMagics.endpoints" in server.text()


def test_a_short_turn_asks_the_server_nothing(session: ChatSession, small: Sandbox) -> None:
    turn = session.prepare("w " * 300, options=TurnOptions(provider="llamacpp", model="llama3.2"))
    box = check(turn)
    assert small.requests == [] and box.window.tokens is None and box.decision.fits  # type: ignore[union-attr]


def test_a_request_that_cannot_fit_is_refused_with_what_to_do(session: ChatSession, small: Sandbox) -> None:
    turn = session.prepare("w " * 2100, options=TurnOptions(provider="llamacpp", model="llama3.2"))
    box = check(turn)
    assert box.decision is not None and box.decision.verdict == "cannot fit"
    assert "context window is 200 tokens" in box.decision.message
    assert "%chat compact" in box.decision.message
    assert not any(r.path.endswith("/chat/completions") for r in small.requests)


def test_a_budget_over_which_the_turn_asks(session: ChatSession) -> None:
    limits = Limits(prices={"llama3.2": {"input": 1000.0, "output": 0.0}}, max_cost=0.01)
    turn = session.prepare("hello " * 20, options=TurnOptions(provider="llamacpp", model="llama3.2"))
    box = check(turn, limits=limits)
    assert box.cost is not None and box.cost.usd > 0.01
    assert box.decision is not None and box.decision.verdict == "over budget"
    assert "max_cost" in box.decision.reasons
    box = check(turn, limits=Limits(max_input_tokens=5))
    assert box.decision is not None and box.decision.reasons == ("max_input_tokens",)
    assert box.total.how == "≈"  # the server was not asked: its window is not known yet
    check(turn, ask_server=True)  # a dry run: the window is known from now on
    box = check(turn, limits=Limits(max_input_tokens=5))
    assert box.total.how == "server"  # near the budget, the server's tokenizer decides


def test_a_web_site_has_a_window_only_when_configured(session: ChatSession) -> None:
    turn = session.prepare("hi", options=TurnOptions(provider="chatgptt"))
    box = check(turn)
    assert box.window.tokens is None and box.decision is not None and box.decision.fits


def test_the_reply_limit_comes_from_the_request_options() -> None:
    assert max_output_tokens({"max_tokens": 500}) == 500
    assert max_output_tokens({"max_completion_tokens": 70, "max_tokens": 500}) == 70
    assert max_output_tokens({"max_tokens": True}) is None
