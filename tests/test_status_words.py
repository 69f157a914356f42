"""What a user reads when a turn fails: each provider's own reason, no internals, no empty slot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.utils.capture import capture_output

from chatmagic import present
from chatmagic._state import get_session
from chatmagic.errors import AllProvidersFailed
from chatmagic.sandbox import Sandbox
from chatmagic.session import Exchange, Message, TurnOptions

from .conftest import SITES

pytestmark = pytest.mark.usefixtures("fresh")


@pytest.fixture(autouse=True)
def key(ip: Any, sandbox_thread: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-sandbox")
    # every site and openai at the stand-in (an earlier test may have changed the addresses)
    urls = {site: sandbox_thread.base_url(site) for site in (*SITES, "openai")}
    ip.run_line_magic("config", f"ChatMagics.base_urls = {urls!r}")


@pytest.fixture
def retrying(ip: Any) -> Iterator[None]:
    ip.run_line_magic("config", "ChatMagics.retries = 1")
    yield
    ip.run_line_magic("config", "ChatMagics.retries = 0")


def cell(ip: Any, source: str) -> tuple[BaseException | None, str, str]:
    """(the error, what the cell printed, the final text of its output)."""
    with capture_output() as io:
        result = ip.run_cell(source)
    final = io.outputs[-1].data.get("text/plain", "") if io.outputs else ""
    return result.error_in_exec, io.stdout, final


def test_a_failed_chain_says_each_providers_reason_on_its_own_line(
    ip: Any, sandbox_thread: Sandbox, retrying: None
) -> None:
    sandbox_thread.inject("chatgptes", "http500", times=5)
    sandbox_thread.inject("chatgptfree", "service_error", times=5)
    error, printed, final = cell(ip, "%%chat -p chatgptes,chatgptfree\nhello")
    assert isinstance(error, AllProvidersFailed)
    lines = str(error).splitlines()
    assert lines[0] == "every provider failed:"
    assert lines[1].startswith("  chatgptes: 2 attempts, ") and lines[2].startswith("  chatgptfree: ")
    assert ". ;" not in str(error) and ".;" not in str(error)
    # the retries were chatgptes's: the status does not credit them to the last provider
    assert "retr" not in final and final.splitlines()[-1].startswith("— chatgptfree · ")


def test_a_retried_provider_that_answers_counts_only_its_own_retries(
    ip: Any, sandbox_thread: Sandbox, retrying: None
) -> None:
    sandbox_thread.inject("chatgptes", "http500", times=2)
    sandbox_thread.inject("opchatgpts", "http500", times=1)
    error, _, final = cell(ip, "%%chat -p chatgptes,opchatgpts\nhello")
    assert error is None
    assert "opchatgpts · gpt-3.5-turbo (after chatgptes failed, 1 retry)" in final


def test_a_refused_attachment_is_not_said_to_be_attached(ip: Any) -> None:
    import io

    image = pytest.importorskip("PIL.Image")
    buf = io.BytesIO()
    image.new("RGB", (8, 8)).save(buf, format="PNG")
    ip.user_ns["fig"] = buf.getvalue()
    error, _, final = cell(ip, "%%chat -p chatgptt --attach fig\nwhat is it?")
    assert error is not None and "image" in str(error)
    assert "attached" not in final


def test_a_refused_parameter_gets_the_servers_words_and_what_to_change(ip: Any) -> None:
    error, _, _ = cell(ip, "%%chat -p openai -o temperature=3\nhi")
    said = str(error)
    assert "expected a number from 0 to 2, but got 3" in said
    assert "check the model and the messages" not in said and "-o option" in said


def test_an_endpoint_without_a_model_shows_no_empty_slot(ip: Any, sandbox_thread: Sandbox) -> None:
    url = sandbox_thread.base_url("openai")
    ip.run_line_magic("config", f"ChatMagics.endpoints = {{'bare': {{'base_url': {url!r}}}}}")
    try:
        turn = get_session().prepare("hi", options=TurnOptions(provider="bare"))
        assert turn.model == "" and present.head(turn) == "bare"
        ex = Exchange(Message("user", "hi"), Message("assistant", "hello"), "bare", "", total_s=1.5)
        assert present.exchange_head(ex) == "bare · 1.5 s"
    finally:
        ip.run_line_magic("config", "ChatMagics.endpoints = {}")
