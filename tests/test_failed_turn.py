"""A failed turn changes nothing: what a cell asked for sticks only once its reply is kept."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.utils.capture import capture_output

from chatmagic._state import get_session
from chatmagic.sandbox import Sandbox

from .conftest import SITES

pytestmark = pytest.mark.usefixtures("fresh")


@pytest.fixture(autouse=True)
def key(ip: Any, sandbox_thread: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-sandbox")
    # every site and openai at the stand-in (an earlier test may have changed the addresses)
    urls = {site: sandbox_thread.base_url(site) for site in (*SITES, "openai")}
    ip.run_line_magic("config", f"ChatMagics.base_urls = {urls!r}")


def cell(ip: Any, source: str) -> tuple[BaseException | None, str]:
    with capture_output() as io:
        result = ip.run_cell(source)
    shown = io.stdout + "".join(o.data.get("text/plain", "") for o in io.outputs)
    return result.error_in_exec, shown


def png() -> bytes:
    import io

    image = pytest.importorskip("PIL.Image")
    buf = io.BytesIO()
    image.new("RGB", (8, 8)).save(buf, format="PNG")
    return buf.getvalue()


def test_a_mistyped_model_does_not_stick(ip: Any) -> None:
    error, _ = cell(ip, "%%chat -c chat-2 -p openai\nhello")
    assert error is None
    error, _ = cell(ip, "%%chat -c chat-2 -m gpt-5-nonexistent\nhello again")
    assert error is not None
    assert get_session().conversation("chat-2").model in (None, "")
    error, shown = cell(ip, "%%chat -c chat-2\nand now?")
    assert error is None, shown


def test_a_refused_attachment_does_not_switch_the_provider(ip: Any) -> None:
    ip.user_ns["fig"] = png()
    error, _ = cell(ip, "%%chat -c vision -p openai\nhi")
    assert error is None
    error, _ = cell(ip, "%%chat -c vision -p chatgptt --attach fig\nwhat is it?")
    assert error is not None and "image" in str(error)
    assert get_session().conversation("vision").provider == "openai"


def test_a_kept_turn_keeps_its_options(ip: Any) -> None:
    error, _ = cell(ip, "%%chat -c keep -p openai -s 'Be brief.'\nhi")
    assert error is None
    conv = get_session().conversation("keep")
    assert (conv.provider, conv.system) == ("openai", "Be brief.")


def test_a_busy_conversation_says_so_in_plain_words(ip: Any) -> None:
    from chatmagic.errors import ConversationBusy
    from chatmagic.session import TurnOptions

    session = get_session()
    slow = session.send(
        "[[words:40]][[delay:0.05]]", conversation="busy", options=TurnOptions(provider="opchatgpts")
    )
    with pytest.raises(ConversationBusy) as refused:
        session.send("second", conversation="busy")
    slow.result(30)
    assert "so it cannot be sent another message now" in str(refused.value)
