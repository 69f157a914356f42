"""Fallback chains: try providers in order, retry what is worth retrying, say who answered."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from chatmagic._state import get_session
from chatmagic.errors import AllProvidersFailed, StreamInterrupted
from chatmagic.sandbox import Sandbox

from .test_magics import final_output, reply, run

pytestmark = pytest.mark.usefixtures("fresh")


@pytest.fixture
def retrying(ip: Any) -> Iterator[None]:
    ip.run_line_magic("config", "ChatMagics.retries = 2")
    session = get_session()
    saved = session.backoff
    session.backoff = 0.05
    yield
    session.backoff = saved


def chat_posts(sb: Sandbox, site: str) -> int:
    return sum(
        1 for r in sb.requests if r.site == site and r.method == "POST" and "start_session" not in r.path
    )


def test_next_provider_answers_and_is_named(ip: Any, sandbox_thread: Sandbox) -> None:
    sandbox_thread.inject("chatgptes", "cloudflare", times=5)
    text = reply(ip, "%%chat -p chatgptes,opchatgpts\nhello")
    assert text.startswith("[opchatgpts] You said: hello")
    assert "opchatgpts · gpt-3.5-turbo (after chatgptes failed)" in text
    (ex,) = get_session().conversation().exchanges
    assert ex.provider == "opchatgpts"
    # a bot check is not worth retrying: one request, then the next provider
    assert chat_posts(sandbox_thread, "chatgptes") == 1
    # the chain stays with the conversation
    assert get_session().conversation().provider == "chatgptes,opchatgpts"


def test_retry_with_backoff_then_success(ip: Any, sandbox_thread: Sandbox, retrying: None) -> None:
    sandbox_thread.inject("chatgptt", "http503", times=2)
    text = reply(ip, "%%chat -p chatgptt,opchatgpts\nhello")
    assert text.startswith("[chatgptt] You said: hello")
    assert chat_posts(sandbox_thread, "chatgptt") == 3
    assert chat_posts(sandbox_thread, "opchatgpts") == 0


def test_retry_after_is_honoured(ip: Any, sandbox_thread: Sandbox, retrying: None) -> None:
    sandbox_thread.inject("opchatgpts", "http429", times=1)
    started = time.monotonic()
    text = reply(ip, "%%chat -p opchatgpts\nhello")
    assert time.monotonic() - started >= 1.0  # the stand-in says Retry-After: 1
    assert text.startswith("[opchatgpts] You said: hello")


def test_failure_after_text_is_reported_not_restarted(
    ip: Any, sandbox_thread: Sandbox, retrying: None
) -> None:
    result, io = run(ip, "%%chat -p opchatgpts,chatgptt\n[[fault:drop]] one two three four five")
    assert isinstance(result.error_in_exec, StreamInterrupted)
    assert chat_posts(sandbox_thread, "chatgptt") == 0
    assert chat_posts(sandbox_thread, "opchatgpts") == 1
    assert final_output(io)["text/plain"].startswith("[opchatgpts] ")  # the partial text stays shown


def test_all_failing_is_a_line_for_each(ip: Any, sandbox_thread: Sandbox) -> None:
    sandbox_thread.inject("chatgptes", "cloudflare", times=1)
    sandbox_thread.inject("chatgptfree", "service_error", times=1)
    result, io = run(ip, "%%chat -p chatgptes,chatgptfree\nhello")
    assert isinstance(result.error_in_exec, AllProvidersFailed)
    head, first, second = [x for x in io.stdout.splitlines() if x.strip()]
    assert head == "AllProvidersFailed: every provider failed:"
    assert first.startswith("  chatgptes: the site's bot check")
    assert second.startswith("  chatgptfree: the site reported an error: 'Missing API Setting'")
    assert len(get_session().conversation()) == 0


def test_default_chain_from_config(ip: Any, sandbox_thread: Sandbox) -> None:
    ip.run_line_magic("config", "ChatMagics.default_provider = 'chatgptfree,chatgpt4online'")
    sandbox_thread.inject("chatgptfree", "http500", times=1)
    assert reply(ip, "%%chat\nhi").startswith("[chatgpt4online] You said: hi")


def test_model_in_a_chain_goes_to_those_that_offer_it(ip: Any) -> None:
    assert "chatgptt · gpt-4 " in reply(ip, "%%chat -p chatgptt,opchatgpts -m gpt-4\nhi")
    result, io = run(ip, "%%chat -p chatgptt,opchatgpts -m llama\nhi")
    assert "None of chatgptt, opchatgpts offers the model 'llama'" in io.stdout


def test_a_model_any_server_may_have_goes_to_the_openai_provider(ip: Any) -> None:
    result, io = run(ip, "%%chat -p openai,chatgptt -m my-local-model --dry-run\nhi")
    assert "Provider: openai (my-local-model) → chatgptt (gpt-4o)." in final_output(io)["text/plain"]


def test_a_provider_that_cannot_start_hands_over_to_the_next(
    ip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no key for OpenAI itself: the provider refuses before any request, the next one answers
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setitem(get_session().base_urls, "openai", "https://api.openai.com/v1")
    text = reply(ip, "%%chat -p openai,opchatgpts\nhi")
    assert text.startswith("[opchatgpts] You said: hi") and "(after openai failed)" in text


def test_base_url_with_a_chain_is_refused(ip: Any) -> None:
    result, io = run(ip, "%%chat -p chatgptt,opchatgpts --base-url http://127.0.0.1:9/x\nhi")
    assert "--base-url names one site, and this is a chain" in io.stdout
