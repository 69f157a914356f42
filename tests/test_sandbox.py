"""The stand-in server, tested over real HTTP with a plain aiohttp client."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from chatmagic.sandbox import (
    FAULTS,
    ForwardProxy,
    Sandbox,
    SandboxSettings,
    make_app,
    reply_text,
)
from chatmagic.sandbox._reply import CHATGPTES_INSTRUCTION, parse_prompt, split_pieces

AJAX = "/wp-admin/admin-ajax.php"
SUBMIT = "/wp-json/mwai-ui/v1/chats/submit"
START = "/wp-json/mwai/v1/start_session"
ACTION = "wpaicg_chat_shortcode_message"
CONVERSATION = "System: Be brief.\nUser: One\nAssistant: Two\nUser: Three\nAssistant:"
FAST = SandboxSettings(stall_seconds=1.0, slow_seconds=0.4, slow_chunk_seconds=0.05)


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with Sandbox(settings=SandboxSettings(**vars(FAST))) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# --- helpers: how the sites' clients talk ---


async def tokens(http: aiohttp.ClientSession, base: str) -> tuple[str, str]:
    async with http.get(base + "/") as r:
        html = await r.text()
    nonce = re.search(r"""data-nonce=["']([^"']+)|name="_wpnonce" value="([^"]+)""", html)
    post = re.search(r"""data-post-id=["']?(\d+)|name="post_id" value="(\d+)""", html)
    assert nonce and post, html
    return nonce.group(1) or nonce.group(2), post.group(1) or post.group(2)


async def ajax(
    http: aiohttp.ClientSession,
    sb: Sandbox,
    site: str,
    message: str,
    *,
    base: str | None = None,
    drop: tuple[str, ...] = (),
    headers: dict[str, str] | None = None,
    **extra: str,
) -> tuple[int, dict[str, str], str]:
    base = base or sb.base_url(site)
    nonce, post_id = await tokens(http, base)
    form = {
        "_wpnonce": nonce,
        "post_id": post_id,
        "url": base,
        "action": ACTION,
        "message": message,
        "bot_id": "0",
        **extra,
    }
    for key in drop:
        form.pop(key)
    async with http.post(base + AJAX, data=form, headers=headers) as r:
        return r.status, dict(r.headers), await r.text()


async def submit(
    http: aiohttp.ClientSession,
    sb: Sandbox,
    site: str,
    message: str,
    *,
    base: str | None = None,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    base = base or sb.base_url(site)
    h = dict(headers or {})
    if site == "chatgpt4online" and "X-WP-Nonce" not in h:
        async with http.post(base + START) as r:
            h["X-WP-Nonce"] = (await r.json())["restNonce"]
    payload = body if body is not None else {"botId": "default", "newMessage": message, "stream": True}
    if site == "opchatgpts" and body is None:
        payload.update(
            chatId="abc123",
            contextId=28,
            customId=None,
            session="N/A",
            messages=[{"role": "user", "content": message}],
        )
    async with http.post(base + SUBMIT, json=payload, headers=h) as r:
        return r.status, dict(r.headers), await r.text()


async def chat(
    http: aiohttp.ClientSession, sb: Sandbox, site: str, message: str, **kw: Any
) -> tuple[int, dict[str, str], str]:
    if site in ("chatgptt", "chatgptes", "chatgptfree"):
        return await ajax(http, sb, site, message, **kw)
    return await submit(http, sb, site, message, **kw)


def data_lines(body: str) -> list[str]:
    return [ln[6:] for ln in re.split(r"\r\n|\r|\n", body) if ln.startswith("data: ")]


def a_pieces(body: str) -> list[str]:
    out = []
    for d in data_lines(body):
        if d != "[DONE]":
            out.append(json.loads(d)["choices"][0]["delta"]["content"])
    return out


def b_events(body: str) -> list[dict[str, Any]]:
    return [json.loads(d) for d in data_lines(body)]


def b_reply(body: str) -> str:
    events = b_events(body)
    assert events[-1]["type"] == "end"
    live = "".join(e["data"] for e in events if e["type"] == "live")
    end = json.loads(events[-1]["data"])
    assert end["success"] is True and end["reply"] == live
    return live


def answer_text(site: str, body: str) -> str:
    """The reply as a correct client of the site would assemble it."""
    if site in ("chatgptt", "chatgptes"):
        return json.loads(body)["data"]
    if site == "chatgptfree":
        assert data_lines(body)[-1] == "[DONE]"
        return "".join(a_pieces(body))
    return b_reply(body)


SITES = ("chatgptt", "chatgptes", "chatgptfree", "chatgpt4online", "opchatgpts")


# --- pages and tokens ---


async def test_family_a_pages_carry_tokens(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    async with http.get(sb.base_url("chatgptt")) as r:
        html = await r.text()
    assert re.search(r'data-nonce="[0-9a-f]{10}"', html) and "data-post-id='2'" in html
    for path in ("/chatgptt/", "/chatgptt/chat", "/chatgptfree/chat/"):
        async with http.get(sb.url + path) as r:
            assert r.status == 200 and "data-nonce" in await r.text()
    async with http.get(sb.base_url("chatgptes") + "/") as r:
        html = await r.text()
    nonce = re.search(r'<input type="hidden" name="_wpnonce" value="([0-9a-f]{10})">', html)
    assert nonce and f"var wpaicg_nonce = '{nonce.group(1)}';" in html
    assert '<input type="hidden" name="post_id" value="106">' in html
    async with http.get(sb.base_url("chatgptfree") + "/") as r:
        assert 'data-post-id="123"' in await r.text()
    ids = {
        site: (await tokens(http, sb.base_url(site)))[1] for site in ("chatgptt", "chatgptes", "chatgptfree")
    }
    assert len(set(ids.values())) == 3


async def test_each_page_load_issues_a_fresh_reusable_nonce(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    base = sb.base_url("chatgptt")
    (n1, pid), (n2, _) = await tokens(http, base), await tokens(http, base)
    assert n1 != n2
    for nonce in (n1, n1, n2):  # WordPress nonces are reusable until they expire
        form = {
            "_wpnonce": nonce,
            "post_id": pid,
            "url": base,
            "action": ACTION,
            "message": "hi",
            "bot_id": "0",
        }
        async with http.post(base + AJAX, data=form) as r:
            assert (await r.json())["status"] == "success"


async def test_family_b_pages_and_session(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    for path in ("/chatgpt4online/", "/opchatgpts/", "/opchatgpts/chatgpt-free-use/"):
        async with http.get(sb.url + path) as r:
            assert r.status == 200 and "text/html" in r.headers["Content-Type"]
    async with http.post(sb.base_url("chatgpt4online") + START) as r:
        data = await r.json()
    assert data["success"] is True and data["sessionId"] and re.fullmatch(r"[0-9a-f]{10}", data["restNonce"])


async def test_unknown_paths_and_methods(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    async with http.get(sb.url + "/nosuchsite/") as r:
        assert r.status == 404
    async with http.get(sb.base_url("chatgptt") + "/nothing-here") as r:
        assert r.status == 404
    async with http.get(sb.base_url("chatgptt") + AJAX) as r:
        assert r.status == 405


# --- replies ---


@pytest.mark.parametrize("site", SITES)
async def test_reply_per_site(sb: Sandbox, http: aiohttp.ClientSession, site: str) -> None:
    if site == "opchatgpts":
        body = {
            "botId": "default",
            "chatId": "x",
            "contextId": 28,
            "customId": None,
            "session": "N/A",
            "stream": True,
            "newMessage": "Three",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "One"},
                {"role": "assistant", "content": "Two"},
                {"role": "user", "content": "Three"},
            ],
        }
        status, headers, text = await submit(http, sb, site, "", body=body)
    else:
        status, headers, text = await chat(http, sb, site, CONVERSATION)
    assert status == 200
    assert answer_text(site, text) == reply_text(site, "Three", 3)
    if site in ("chatgptt", "chatgptes"):
        assert headers["Content-Type"] == "application/json; charset=UTF-8"
    else:
        assert headers["Content-Type"].startswith("text/event-stream")


async def test_reply_text_shape() -> None:
    assert reply_text("chatgptt", "hi", 2) == "[chatgptt] You said: hi\n\nEarlier messages: 2."


async def test_single_message_prompt_is_one_user_message(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, _, text = await chat(http, sb, "chatgptt", "User: not a conversation")
    assert json.loads(text)["data"] == reply_text("chatgptt", "User: not a conversation", 0)
    assert parse_prompt("User: a\nmore\nAssistant:")[0].content == "a\nmore"


@pytest.mark.parametrize("prefix", [CHATGPTES_INSTRUCTION + " ", ""])
async def test_chatgptes_instruction_is_stripped(
    sb: Sandbox, http: aiohttp.ClientSession, prefix: str
) -> None:
    _, _, text = await chat(http, sb, "chatgptes", prefix + "Hola")
    assert json.loads(text)["data"] == reply_text("chatgptes", "Hola", 0)


async def test_streams_send_word_pieces(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    expected = split_pieces(reply_text("chatgptfree", "a b", 0))
    _, _, text = await chat(http, sb, "chatgptfree", "a b")
    assert a_pieces(text) == expected and len(expected) > 5
    _, _, text = await chat(http, sb, "chatgpt4online", "a b")
    assert [e["data"] for e in b_events(text) if e["type"] == "live"] == split_pieces(
        reply_text("chatgpt4online", "a b", 0)
    )
    end = json.loads(b_events(text)[-1]["data"])
    assert set(end) >= {"success", "reply", "chatId"}


async def test_stream_sites_setting() -> None:
    async with (
        Sandbox(settings=SandboxSettings(stream_sites={"chatgptt"})) as sb,
        aiohttp.ClientSession() as http,
    ):
        _status, headers, text = await chat(http, sb, "chatgptt", "hi")
        assert headers["Content-Type"].startswith("text/event-stream")
        assert "".join(a_pieces(text)) == reply_text("chatgptt", "hi", 0)
        _, headers, text = await chat(http, sb, "chatgptfree", "hi")
        assert json.loads(text)["data"] == reply_text("chatgptfree", "hi", 0)


async def test_family_b_without_stream_answers_json(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    for site in ("chatgpt4online", "opchatgpts"):
        body = {"botId": "default", "newMessage": "hi", "stream": False}
        _, headers, text = await submit(http, sb, site, "", body=body)
        assert headers["Content-Type"] == "application/json; charset=UTF-8"
        assert json.loads(text)["reply"] == reply_text(site, "hi", 0)


async def test_multipart_form_is_accepted(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    base = sb.base_url("chatgptt")
    nonce, pid = await tokens(http, base)
    form = aiohttp.FormData()
    for k, v in {
        "_wpnonce": nonce,
        "post_id": pid,
        "url": base,
        "action": ACTION,
        "message": "hi",
        "bot_id": "0",
    }.items():
        form.add_field(k, v)
    form.add_field("dummy", b"x", filename="x.bin")  # forces multipart
    async with http.post(base + AJAX, data=form) as r:
        assert (await r.json())["data"] == reply_text("chatgptt", "hi", 0)


# --- directives ---


async def test_words_directive(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, _, text = await chat(http, sb, "chatgptfree", "[[words:5]]")
    assert a_pieces(text) == ["w1 ", "w2 ", "w3 ", "w4 ", "w5 "]
    _, _, text = await chat(http, sb, "opchatgpts", "go [[words:3]]")
    assert b_reply(text) == "w1 w2 w3 "


async def test_reply_directive_is_verbatim(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    raw = "# Title\n<script>alert(1)</script> [[words:2]] Привет, мир — ✓"
    for site in SITES:
        _, _, text = await chat(http, sb, site, "[[reply]]" + raw)
        assert answer_text(site, text) == raw


async def test_directives_are_removed_from_the_echo(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, _, text = await chat(http, sb, "chatgptt", "hello [[delay:0.01]] [[fault:crlf]]")
    assert json.loads(text)["data"] == reply_text("chatgptt", "hello", 0)


async def test_delay_directive(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    t0 = time.monotonic()
    _, _, text = await chat(http, sb, "chatgptfree", "[[words:6]][[delay:0.1]]")
    assert time.monotonic() - t0 >= 0.5 and len(a_pieces(text)) == 6


async def test_bad_directives_are_refused(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    for msg in ("[[words:many]]", "[[delay:soon]]", "[[fault:nonsense]]"):
        status, _, text = await chat(http, sb, "chatgptt", msg)
        assert status == 400, msg
    assert "Valid names" in text and "cloudflare" in text


# --- family A refusals ---


async def test_family_a_wordpress_refusals(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    assert (await ajax(http, sb, "chatgptt", "hi", drop=("action",)))[::2] == (400, "0")
    assert (await ajax(http, sb, "chatgptt", "hi", action="other"))[::2] == (400, "0")
    assert (await ajax(http, sb, "chatgptt", "hi", drop=("_wpnonce",)))[::2] == (403, "-1")


def _msg(text: str) -> str:
    return json.loads(text)["msg"]


@pytest.mark.parametrize("field", ["post_id", "url", "message", "bot_id"])
async def test_family_a_missing_field(sb: Sandbox, http: aiohttp.ClientSession, field: str) -> None:
    status, headers, text = await ajax(http, sb, "chatgptes", "hi", drop=(field,))
    assert status == 200 and json.loads(text) == {"status": "error", "msg": "Something went wrong"}
    assert headers["Content-Type"] == "application/json; charset=UTF-8"


@pytest.mark.parametrize(
    "extra",
    [
        {"post_id": "106"},  # another site's post id
        {"bot_id": "1"},
        {"chatbot_identity": "widget"},
        {"wpaicg_chat_history": "garbage"},
        {"wpaicg_chat_history": "[1, 2]"},
        {"wpaicg_chat_client_id": "x" * 100},
    ],
)
async def test_family_a_bad_field(sb: Sandbox, http: aiohttp.ClientSession, extra: dict[str, str]) -> None:
    _, _, text = await ajax(http, sb, "chatgptt", "hi", **extra)
    assert _msg(text) == "Something went wrong"


@pytest.mark.parametrize(
    "extra",
    [
        {"wpaicg_chat_history": "None"},
        {"wpaicg_chat_history": '["Human: hi"]'},
        {"chatbot_identity": "shortcode", "wpaicg_chat_client_id": "0a1b2c3d4e"},
    ],
)
async def test_family_a_optional_fields_accepted(
    sb: Sandbox, http: aiohttp.ClientSession, extra: dict[str, str]
) -> None:
    _, _, text = await ajax(http, sb, "chatgptt", "hi", **extra)
    assert json.loads(text)["status"] == "success"


async def test_family_a_bad_nonce(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    base = sb.base_url("chatgptes")
    form = {
        "_wpnonce": "8cf9917be2",
        "post_id": "106",
        "url": base,
        "action": ACTION,
        "message": "hi",
        "bot_id": "0",
    }
    async with http.post(base + AJAX, data=form) as r:
        assert r.status == 200 and await r.json() == {"status": "error", "msg": "Security check"}
    other, _ = await tokens(http, sb.base_url("chatgptt"))  # another site's nonce
    async with http.post(base + AJAX, data={**form, "_wpnonce": other}) as r:
        assert _msg(await r.text()) == "Security check"


# --- family B refusals ---


async def test_family_b_nonce_refusals(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    refusal = {"code": "rest_cookie_invalid_nonce", "message": "Cookie check failed", "data": {"status": 403}}
    body = {"botId": "default", "newMessage": "hi", "stream": True}
    base = sb.base_url("chatgpt4online")
    async with http.post(base + SUBMIT, json=body) as r:
        assert r.status == 403 and await r.json() == refusal
    async with http.post(base + SUBMIT, json=body, headers={"X-WP-Nonce": "0123456789"}) as r:
        assert r.status == 403
    async with http.post(base + START) as r:
        nonce = (await r.json())["restNonce"]
    async with http.post(base + SUBMIT, json=body, headers={"x-wp-nonce": nonce}) as r:
        assert r.status == 200 and b_reply(await r.text()) == reply_text("chatgpt4online", "hi", 0)


@pytest.mark.parametrize(
    "body,param",
    [
        ({"newMessage": "hi", "stream": True}, "botId"),
        ({"botId": "other", "newMessage": "hi", "stream": True}, "botId"),
        ({"botId": "default", "stream": True}, "newMessage"),
        ({"botId": "default", "newMessage": 5, "stream": True}, "newMessage"),
        ({"botId": "default", "newMessage": "hi", "messages": "nope"}, "messages"),
    ],
)
async def test_family_b_bad_params(
    sb: Sandbox, http: aiohttp.ClientSession, body: dict[str, Any], param: str
) -> None:
    status, _, text = await submit(http, sb, "opchatgpts", "", body=body)
    assert status == 400
    assert json.loads(text) == {
        "code": "rest_invalid_param",
        "message": f"Invalid parameter(s): {param}",
        "data": {"status": 400},
    }


# --- faults ---

FAMILY_SITES = ("chatgptt", "chatgptfree", "chatgpt4online")


@pytest.mark.parametrize("site", FAMILY_SITES)
@pytest.mark.parametrize("fault,status", [("http500", 500), ("http503", 503), ("http429", 429)])
async def test_http_faults(
    sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str, status: int
) -> None:
    got, headers, _ = await chat(http, sb, site, "hi", headers={"X-Sandbox-Fault": fault})
    assert got == status
    if fault == "http429":
        assert headers["Retry-After"] == "1"


@pytest.mark.parametrize("site", SITES)
async def test_cloudflare_on_every_request_via_path_prefix(
    sb: Sandbox, http: aiohttp.ClientSession, site: str
) -> None:
    base = f"{sb.url}/_fault/cloudflare/{site}"
    async with http.get(base + "/") as r:
        assert r.status == 403 and r.headers["cf-mitigated"] == "challenge"
        assert r.headers["Content-Type"].startswith("text/html")
        assert "<title>Just a moment...</title>" in await r.text()
    path = AJAX if site in ("chatgptt", "chatgptes", "chatgptfree") else SUBMIT
    async with http.post(base + path, json={}) as r:
        assert r.status == 403 and "Just a moment" in await r.text()


async def test_bad_token_fault(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, _, text = await chat(http, sb, "chatgptt", "hi [[fault:bad_token]]")
    assert _msg(text) == "Security check"
    status, _, text = await chat(http, sb, "chatgpt4online", "hi", headers={"X-Sandbox-Fault": "bad_token"})
    assert status == 403 and json.loads(text)["code"] == "rest_cookie_invalid_nonce"


async def test_no_tokens_fault(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    for site in ("chatgptt", "chatgptes", "chatgptfree"):
        async with http.get(sb.base_url(site) + "/?fault=no_tokens") as r:
            html = await r.text()
        assert "nonce" not in html and "post_id" not in html and "data-post-id" not in html
    async with http.post(sb.base_url("chatgpt4online") + START + "?fault=no_tokens") as r:
        data = await r.json()
    assert data["success"] is True and "restNonce" not in data


async def test_service_error_fault(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    for site in ("chatgptt", "chatgptfree"):
        _, _headers, text = await chat(http, sb, site, "[[fault:service_error]]")
        assert json.loads(text) == {"status": "error", "msg": "Missing API Setting"}
    _, _, text = await chat(http, sb, "chatgpt4online", "[[fault:service_error]]")
    assert b_events(text) == [{"type": "error", "data": "Missing API Setting"}]


async def test_consent_fault(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, _, text = await chat(http, sb, "chatgptes", "hi [[fault:consent]]")
    assert json.loads(text) == {"status": "success", "msg": "", "data": "Du musst das Kästchen anklicken!"}


async def test_broken_line_fault(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    for site in ("chatgptfree", "chatgpt4online"):
        _, _, text = await chat(http, sb, site, "one two three four [[fault:broken_line]]")
        lines = data_lines(text)
        bad = lines.index("{not json")
        assert bad in (1, 2) and len(lines) > bad + 2  # good pieces before, and the stream goes on
    _, _, text = await chat(http, sb, "chatgptt", "hi [[fault:broken_line]]")
    with pytest.raises(ValueError):
        json.loads(text)


async def test_wrong_content_type_fault(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    for site in FAMILY_SITES:
        status, headers, text = await chat(http, sb, site, "[[fault:wrong_content_type]]")
        assert status == 200 and headers["Content-Type"].startswith("text/html") and "<html>" in text


async def test_missing_field_fault(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, _, text = await chat(http, sb, "chatgptt", "[[fault:missing_field]]")
    assert json.loads(text) == {"status": "success", "msg": ""}
    _, _, text = await chat(http, sb, "chatgptfree", "[[fault:missing_field]]")
    assert any("choices" not in json.loads(d) for d in data_lines(text) if d != "[DONE]")
    _, _, text = await chat(http, sb, "chatgpt4online", "[[fault:missing_field]]")
    assert {"data": "x"} in b_events(text)


@pytest.mark.parametrize("site", FAMILY_SITES)
async def test_drop_fault(sb: Sandbox, http: aiohttp.ClientSession, site: str) -> None:
    sb.inject(site, "drop")
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        if site == "chatgpt4online":
            async with http.post(sb.base_url(site) + START) as r:
                headers = {"X-WP-Nonce": (await r.json())["restNonce"]}
            url, kw = (
                sb.base_url(site) + SUBMIT,
                {"json": {"botId": "default", "newMessage": "[[words:20]]", "stream": True}},
            )
        else:
            nonce, pid = await tokens(http, sb.base_url(site))
            headers = {}
            url = sb.base_url(site) + AJAX
            kw = {
                "data": {
                    "_wpnonce": nonce,
                    "post_id": pid,
                    "url": "u",
                    "action": ACTION,
                    "message": "[[words:20]]",
                    "bot_id": "0",
                }
            }
        async with http.post(url, headers=headers, **kw) as r:
            async for chunk in r.content.iter_any():
                received += chunk
    if site != "chatgptt":
        assert len(data_lines(received.decode())) >= 2


async def test_stall_fault(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    nonce, pid = await tokens(http, sb.base_url("chatgptfree"))
    form = {
        "_wpnonce": nonce,
        "post_id": pid,
        "url": "u",
        "action": ACTION,
        "message": "a b c",
        "bot_id": "0",
    }
    timeout = aiohttp.ClientTimeout(sock_read=0.3)
    first = b""
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(
            sb.base_url("chatgptfree") + AJAX + "?fault=stall", data=form, timeout=timeout
        ) as r:
            async for chunk in r.content.iter_any():
                first += chunk
    assert a_pieces(first.decode()) == ["[chatgptfree] "]
    # Waited out, the stall ends with the connection closed mid-stream.
    t0 = time.monotonic()
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(sb.base_url("chatgptfree") + AJAX + "?fault=stall", data=form) as r:
            await r.read()
    assert time.monotonic() - t0 >= 0.9


async def test_slow_faults(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    t0 = time.monotonic()
    status, _, _ = await chat(
        http, sb, "chatgpt4online", "hi", headers={"X-Sandbox-Fault": "slow_first_byte"}
    )
    assert status == 200 and time.monotonic() - t0 >= 0.4
    t0 = time.monotonic()
    _, _, text = await chat(http, sb, "chatgptfree", "[[words:8]][[fault:slow_stream]]")
    assert len(a_pieces(text)) == 8 and time.monotonic() - t0 >= 7 * 0.05


async def test_empty_fault(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, _, text = await chat(http, sb, "chatgptt", "[[fault:empty]]")
    assert json.loads(text)["data"] == ""
    _, _, text = await chat(http, sb, "chatgptfree", "[[fault:empty]]")
    assert data_lines(text) == ["[DONE]"]
    _, _, text = await chat(http, sb, "chatgpt4online", "[[fault:empty]]")
    events = b_events(text)
    assert len(events) == 1 and json.loads(events[0]["data"])["reply"] == ""


async def test_long_line_fault(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, _, text = await chat(http, sb, "chatgptfree", "hi [[fault:long_line]]")
    assert max(len(line) for line in text.split("\n")) > 128 * 1024
    assert "".join(a_pieces(text)) == reply_text("chatgptfree", "hi", 0) + " " + "x" * 204800
    _, _, text = await chat(http, sb, "opchatgpts", "hi [[fault:long_line]]")
    assert b_reply(text).endswith("x" * 204800)


async def test_line_ending_faults(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, _, text = await chat(http, sb, "chatgptfree", "hi [[fault:crlf]]")
    assert "\r\n" in text and text.count("\n") == text.count("\r\n")
    assert "".join(a_pieces(text)) == reply_text("chatgptfree", "hi", 0)
    _, _, text = await chat(http, sb, "chatgpt4online", "hi [[fault:cr]]")
    assert "\r" in text and "\n" not in text
    assert b_reply(text) == reply_text("chatgpt4online", "hi", 0)


@pytest.mark.parametrize("site", ["chatgptfree", "opchatgpts"])
async def test_tiny_writes_cut_characters(sb: Sandbox, http: aiohttp.ClientSession, site: str) -> None:
    raw = "Привет, мир — ✓"
    base = sb.base_url(site)
    reads: list[bytes] = []
    if site == "opchatgpts":
        body = {"botId": "default", "newMessage": "[[fault:tiny_writes]][[reply]]" + raw, "stream": True}
        ctx = http.post(base + SUBMIT, json=body)
    else:
        nonce, pid = await tokens(http, base)
        ctx = http.post(
            base + AJAX,
            data={
                "_wpnonce": nonce,
                "post_id": pid,
                "url": "u",
                "action": ACTION,
                "message": "[[fault:tiny_writes]][[reply]]" + raw,
                "bot_id": "0",
            },
        )
    async with ctx as r:
        async for chunk in r.content.iter_any():
            reads.append(chunk)
    whole = b"".join(reads).decode()
    assert answer_text(site, whole) == raw
    assert len(reads) > 20 and min(len(c) for c in reads) <= 3

    def whole_chars(b: bytes) -> bool:
        try:
            b.decode()
            return True
        except UnicodeDecodeError:
            return False

    assert not all(whole_chars(c) for c in reads)


async def test_no_end_fault(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    _, _, text = await chat(http, sb, "chatgptfree", "hi [[fault:no_end]]")
    assert data_lines(text) == []
    assert json.loads(text) == {"status": "success", "data": reply_text("chatgptfree", "hi", 0)}
    _, _, text = await chat(http, sb, "chatgpt4online", "hi [[fault:no_end]]")
    assert data_lines(text) == []
    assert json.loads(text) == {"success": True, "reply": reply_text("chatgpt4online", "hi", 0)}


# --- every fault, through a real request, doing what docs/sandbox.md promises ---

STREAM_SITES = ("chatgptfree", "chatgpt4online")  # the stream site of each family
SAID = "one two three four five"


@dataclass
class Seen:
    """One chat request with a fault, as a client saw it on the wire."""

    site: str
    status: int
    headers: dict[str, str]
    reads: list[tuple[float, bytes]]  # (seconds since the request went out, bytes read)
    headers_after: float
    ended: float  # seconds until the body ended, or broke
    error: BaseException | None

    @property
    def text(self) -> str:
        return b"".join(chunk for _, chunk in self.reads).decode()

    @property
    def reply(self) -> str:
        """The reply of a stream that ended properly."""
        return answer_text(self.site, self.text)

    def json(self) -> Any:
        return json.loads(self.text)


def expected(site: str) -> str:
    return reply_text(site, SAID, 0)


async def chat_with(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> Seen:
    """Fetch the tokens, then send one chat request that meets ``fault`` (injected)."""
    base = sb.base_url(site)
    if site in ("chatgptt", "chatgptes", "chatgptfree"):
        nonce, post_id = await tokens(http, base)
        form = {"_wpnonce": nonce, "post_id": post_id, "url": base, "action": ACTION, "message": SAID}
        url, kwargs = base + AJAX, {"data": {**form, "bot_id": "0"}}
    else:
        async with http.post(base + START) as r:
            nonce = (await r.json())["restNonce"]
        body = {"botId": "default", "newMessage": SAID, "stream": True}
        url, kwargs = base + SUBMIT, {"json": body, "headers": {"X-WP-Nonce": nonce}}
    sb.inject(site, fault)
    reads: list[tuple[float, bytes]] = []
    error: BaseException | None = None
    started = time.monotonic()
    async with http.post(url, **kwargs) as r:
        headers_after = time.monotonic() - started
        try:
            async for chunk in r.content.iter_any():
                reads.append((time.monotonic() - started, chunk))
        except aiohttp.ClientPayloadError as exc:
            error = exc
        ended = time.monotonic() - started
        return Seen(site, r.status, dict(r.headers), reads, headers_after, ended, error)


def family_a(site: str) -> bool:
    return site in ("chatgptt", "chatgptes", "chatgptfree")


def data_payloads(seen: Seen) -> list[Any]:
    """Every ``data:`` line but the end marker, parsed (a line that is not JSON stays text)."""
    out: list[Any] = []
    for line in data_lines(seen.text):
        if line != "[DONE]":
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append(line)
    return out


def piece_text(site: str, payload: Any) -> str:
    if family_a(site):
        return str(payload["choices"][0]["delta"]["content"])
    return str(payload["data"]) if payload.get("type") == "live" else ""


async def _status_page(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    code = int(fault[4:])
    seen = await chat_with(sb, http, site, fault)
    assert seen.status == code
    if code == 429:
        assert seen.headers["Retry-After"] == "1" and seen.json()
    else:
        assert seen.headers["Content-Type"].startswith("text/html") and str(code) in seen.text


async def _cloudflare(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    seen = await chat_with(sb, http, site, fault)
    assert seen.status == 403 and seen.headers["cf-mitigated"] == "challenge"
    assert "<title>Just a moment...</title>" in seen.text
    async with http.get(sb.base_url(site) + "/?fault=cloudflare") as r:  # pages too
        assert r.status == 403 and "Just a moment..." in await r.text()


async def _bad_token(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    seen = await chat_with(sb, http, site, fault)
    if family_a(site):
        assert seen.status == 200 and seen.json() == {"status": "error", "msg": "Security check"}
    else:
        assert seen.status == 403 and seen.json()["code"] == "rest_cookie_invalid_nonce"


async def _no_tokens(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    base = sb.base_url(site)
    if family_a(site):
        async with http.get(base + "/?fault=no_tokens") as r:
            html = await r.text()
        assert r.status == 200 and "nonce" not in html and "post-id" not in html
    else:
        async with http.post(base + START + "?fault=no_tokens") as r:
            data = await r.json()
        assert data["success"] is True and "restNonce" not in data
    # chat requests do not meet it: the chat still answers
    assert (await chat_with(sb, http, site, fault)).reply == expected(site)


async def _service_error(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    seen = await chat_with(sb, http, site, fault)
    if family_a(site):
        assert seen.json() == {"status": "error", "msg": "Missing API Setting"}
    else:
        assert b_events(seen.text) == [{"type": "error", "data": "Missing API Setting"}]


async def _consent(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    assert (await chat_with(sb, http, site, fault)).reply == "Du musst das Kästchen anklicken!"


async def _broken_line(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    seen = await chat_with(sb, http, site, fault)
    payloads = data_payloads(seen)
    # two good pieces, the broken line, and the stream goes on to the whole reply
    assert payloads.index("{not json") == 2
    good = [p for p in payloads if p != "{not json"]
    assert "".join(piece_text(site, p) for p in good) == expected(site)


async def _wrong_content_type(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    seen = await chat_with(sb, http, site, fault)
    assert seen.status == 200 and seen.headers["Content-Type"].startswith("text/html")
    assert "maintenance" in seen.text


async def _missing_field(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    payloads = data_payloads(await chat_with(sb, http, site, fault))
    bad = payloads[1]  # right after the first piece
    assert ("choices" not in bad) if family_a(site) else (bad == {"data": "x"})
    rest = payloads[:1] + payloads[2:]
    assert "".join(piece_text(site, p) for p in rest) == expected(site)


async def _drop(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    seen = await chat_with(sb, http, site, fault)
    assert seen.error is not None  # the connection died mid-body
    got = "".join(piece_text(site, p) for p in data_payloads(seen))
    assert len(data_payloads(seen)) >= 2 and expected(site).startswith(got) and got != expected(site)


async def _stall(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    seen = await chat_with(sb, http, site, fault)
    assert [piece_text(site, p) for p in data_payloads(seen)] == split_pieces(expected(site))[:1]
    # the first piece at once, then silence, then the connection closed mid-stream
    assert seen.error is not None and seen.reads[-1][0] < FAST.stall_seconds <= seen.ended


async def _slow_first_byte(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    seen = await chat_with(sb, http, site, fault)
    assert seen.headers_after >= FAST.slow_seconds and seen.reply == expected(site)


async def _slow_stream(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    seen = await chat_with(sb, http, site, fault)
    pieces = split_pieces(expected(site))
    assert seen.reply == expected(site)
    assert seen.reads[-1][0] - seen.reads[0][0] >= (len(pieces) - 1) * FAST.slow_chunk_seconds * 0.9


async def _empty(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    seen = await chat_with(sb, http, site, fault)
    if family_a(site):
        assert data_lines(seen.text) == ["[DONE]"]
    else:
        (end,) = b_events(seen.text)
        assert end["type"] == "end" and json.loads(end["data"])["reply"] == ""


async def _long_line(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    seen = await chat_with(sb, http, site, fault)
    assert max(len(line) for line in seen.text.split("\n")) > 128 * 1024
    assert seen.reply == expected(site) + " " + "x" * 204800


async def _crlf(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    seen = await chat_with(sb, http, site, fault)
    assert "\r\n" in seen.text and seen.text.count("\n") == seen.text.count("\r\n")
    assert seen.reply == expected(site)


async def _cr(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    seen = await chat_with(sb, http, site, fault)
    assert "\r" in seen.text and "\n" not in seen.text and seen.reply == expected(site)


async def _tiny_writes(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    seen = await chat_with(sb, http, site, fault)
    sizes = [len(chunk) for _, chunk in seen.reads]
    assert len(sizes) > 20 and min(sizes) <= FAST.tiny_write_size
    assert seen.reply == expected(site)


async def _no_end(sb: Sandbox, http: aiohttp.ClientSession, site: str, fault: str) -> None:
    seen = await chat_with(sb, http, site, fault)
    assert data_lines(seen.text) == []
    if family_a(site):
        assert seen.json() == {"status": "success", "data": expected(site)}
    else:
        assert seen.json() == {"success": True, "reply": expected(site)}


FAULT_EFFECTS = {
    "http500": _status_page,
    "http503": _status_page,
    "http429": _status_page,
    "cloudflare": _cloudflare,
    "bad_token": _bad_token,
    "no_tokens": _no_tokens,
    "service_error": _service_error,
    "consent": _consent,
    "broken_line": _broken_line,
    "wrong_content_type": _wrong_content_type,
    "missing_field": _missing_field,
    "drop": _drop,
    "stall": _stall,
    "slow_first_byte": _slow_first_byte,
    "slow_stream": _slow_stream,
    "empty": _empty,
    "long_line": _long_line,
    "crlf": _crlf,
    "cr": _cr,
    "tiny_writes": _tiny_writes,
    "no_end": _no_end,
}


@pytest.mark.parametrize("site", STREAM_SITES)
@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_every_fault_does_what_the_docs_say(
    sb: Sandbox, http: aiohttp.ClientSession, fault: str, site: str
) -> None:
    # a fault added to FAULTS without an effect checked here fails with a KeyError
    await FAULT_EFFECTS[fault](sb, http, site, fault)


# --- a client that goes away ---


def _trouble(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What would land in a notebook: warnings and errors of aiohttp or asyncio, and any traceback."""
    return [
        r
        for r in caplog.records
        if r.exc_info or (r.levelno >= logging.WARNING and r.name.split(".")[0] in ("aiohttp", "asyncio"))
    ]


@pytest.mark.parametrize("served", ["in the test's loop", "on a thread, as under %chat sandbox"])
@pytest.mark.parametrize("site", ["chatgptfree", "opchatgpts"])
async def test_a_client_that_leaves_mid_stream_is_no_error(
    site: str, served: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox = Sandbox(settings=FAST)
    if served.startswith("on a thread"):
        sandbox.start_in_thread()
    else:
        await sandbox.start()
    try:
        async with aiohttp.ClientSession() as http:
            if site == "chatgptfree":
                nonce, pid = await tokens(http, sandbox.base_url(site))
                form = {"_wpnonce": nonce, "post_id": pid, "url": "u", "action": ACTION, "bot_id": "0"}
                request = http.post(
                    sandbox.base_url(site) + AJAX, data={**form, "message": "[[words:500]][[delay:0.02]]"}
                )
            else:
                body = {"botId": "default", "newMessage": "[[words:500]][[delay:0.02]]", "stream": True}
                request = http.post(sandbox.base_url(site) + SUBMIT, json=body)
            # Stop in the panel, Ctrl-C on a cell: read a little, then hang up
            async with request as r:
                assert await r.content.readany()
                r.close()
            # the stand-in's next write meets the closed connection: wait until it said so
            deadline = time.monotonic() + 5
            while not (_trouble(caplog) or any("went away" in rec.getMessage() for rec in caplog.records)):
                assert time.monotonic() < deadline, "the stand-in never noticed the client leaving"
                await asyncio.sleep(0.02)
            assert _trouble(caplog) == []
            noticed = [r for r in caplog.records if "went away" in r.getMessage()]
            assert [(r.name, r.levelno) for r in noticed] == [("chatmagic.sandbox", logging.DEBUG)]
            # and it keeps serving
            assert answer_text(site, (await chat(http, sandbox, site, "still there?"))[2]) == reply_text(
                site, "still there?", 0
            )
    finally:
        if served.startswith("on a thread"):
            sandbox.stop()
        else:
            await sandbox.aclose()
    assert _trouble(caplog) == []


async def test_a_bug_in_the_stand_in_is_still_an_error(caplog: pytest.LogCaptureFixture) -> None:
    from aiohttp import web

    async def bug(request: web.Request) -> web.Response:
        raise RuntimeError("a bug in the stand-in")

    async def reset(request: web.Request) -> web.Response:
        raise ConnectionResetError("not the client's doing: its connection is still open")

    app = make_app()
    app.router.add_get("/_bug", bug)
    app.router.add_get("/_reset", reset)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as http:
            for path in ("/_bug", "/_reset"):
                async with http.get(f"http://127.0.0.1:{port}{path}") as r:
                    assert r.status == 500
    finally:
        await runner.cleanup()
    errors = [r for r in caplog.records if r.name == "aiohttp.server" and r.levelno == logging.ERROR]
    assert [r.exc_info[1].args[0] for r in errors if r.exc_info and r.exc_info[1]] == [
        "a bug in the stand-in",
        "not the client's doing: its connection is still open",
    ]


# --- choosing faults ---


async def test_unknown_faults_are_refused(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    async with http.get(sb.base_url("chatgptt") + "/?fault=bogus") as r:
        assert r.status == 400 and "bogus" in await r.text()
    async with http.get(sb.url + "/_fault/bogus/chatgptt/") as r:
        assert r.status == 400
    async with http.get(sb.base_url("chatgptt") + "/", headers={"X-Sandbox-Fault": "cloudflare,bogus"}) as r:
        assert r.status == 400
    with pytest.raises(ValueError):
        sb.inject("chatgptt", "bogus")
    async with http.post(sb.url + "/_sandbox/inject", json={"site": "chatgptt", "faults": ["bogus"]}) as r:
        assert r.status == 400


async def test_inject_counts_chat_requests_only(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    sb.inject("chatgptt", "http503", times=2)
    assert (await chat(http, sb, "chatgptt", "hi"))[0] == 503  # its page fetch was not counted
    assert (await chat(http, sb, "chatgptt", "hi"))[0] == 503
    assert (await chat(http, sb, "chatgptt", "hi"))[0] == 200
    sb.inject("chatgptes", "consent")
    assert (await chat(http, sb, "chatgptt", "hi"))[0] == 200  # other sites untouched
    assert json.loads((await chat(http, sb, "chatgptes", "hi"))[2])["data"].startswith("Du musst")


async def test_fault_path_prefix_serves_the_whole_flow(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    base = f"{sb.url}/_fault/crlf,slow_stream/chatgptfree"
    _, _, text = await ajax(http, sb, "chatgptfree", "hi", base=base)
    assert "\r\n" in text and "".join(a_pieces(text)) == reply_text("chatgptfree", "hi", 0)
    assert sb.requests[-1].path == "/chatgptfree" + AJAX


# --- tokens expire ---


async def test_expire_tokens(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    base = sb.base_url("chatgptt")
    nonce, pid = await tokens(http, base)
    form = {"_wpnonce": nonce, "post_id": pid, "url": base, "action": ACTION, "message": "hi", "bot_id": "0"}
    sb.expire_tokens("chatgptes")  # another site: no effect
    async with http.post(base + AJAX, data=form) as r:
        assert (await r.json())["status"] == "success"
    sb.expire_tokens()
    async with http.post(base + AJAX, data=form) as r:
        assert _msg(await r.text()) == "Security check"
    _status, _, text = await chat(http, sb, "chatgptt", "hi")  # fetched again: fine
    assert json.loads(text)["status"] == "success"


async def test_token_ttl() -> None:
    async with Sandbox(settings=SandboxSettings(token_ttl=0.2)) as sb, aiohttp.ClientSession() as http:
        base = sb.base_url("chatgpt4online")
        async with http.post(base + START) as r:
            nonce = (await r.json())["restNonce"]
        body = {"botId": "default", "newMessage": "hi", "stream": False}
        async with http.post(base + SUBMIT, json=body, headers={"X-WP-Nonce": nonce}) as r:
            assert r.status == 200
        await asyncio.sleep(0.3)
        async with http.post(base + SUBMIT, json=body, headers={"X-WP-Nonce": nonce}) as r:
            assert r.status == 403


# --- recording and control ---


async def test_recording(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    await chat(http, sb, "chatgptt", "hi", headers={"X-Custom": "1"})
    await chat(http, sb, "opchatgpts", "yo")
    reqs = sb.requests
    assert [(r.site, r.method) for r in reqs] == [
        ("chatgptt", "GET"),
        ("chatgptt", "POST"),
        ("opchatgpts", "POST"),
    ]
    assert reqs[1].form is not None and reqs[1].form["message"] == "hi" and reqs[1].headers["x-custom"] == "1"
    assert reqs[2].json["newMessage"] == "yo" and reqs[2].form is None and not reqs[2].via_proxy
    sb.inject("chatgptt", "http500")
    sb.clear()  # forgets pending injections too
    assert sb.requests == []
    assert (await chat(http, sb, "chatgptt", "hi"))[0] == 200


async def test_control_endpoints(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    async with http.get(sb.url + "/_sandbox/health") as r:
        health = await r.json()
    assert health["ok"] is True and "chatgptfree" in health["sites"]
    async with http.post(
        sb.url + "/_sandbox/inject", json={"site": "opchatgpts", "faults": ["http500"], "times": 1}
    ) as r:
        assert r.status == 200
    assert (await chat(http, sb, "opchatgpts", "hi"))[0] == 500
    base = sb.base_url("chatgptt")
    nonce, pid = await tokens(http, base)
    async with http.post(sb.url + "/_sandbox/expire-tokens") as r:
        assert r.status == 200
    form = {"_wpnonce": nonce, "post_id": pid, "url": base, "action": ACTION, "message": "hi", "bot_id": "0"}
    async with http.post(base + AJAX, data=form) as r:
        assert _msg(await r.text()) == "Security check"
    async with http.get(sb.url + "/_sandbox/requests") as r:
        recorded = await r.json()
    assert recorded[-1]["form"]["message"] == "hi" and recorded[-1]["site"] == "chatgptt"
    assert all(not rec["path"].startswith("/_sandbox") for rec in recorded)


async def test_make_app_serves_with_aiohttp_runner() -> None:
    from aiohttp import web

    runner = web.AppRunner(make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/_sandbox/health") as r:
            assert r.status == 200
    finally:
        await runner.cleanup()


def test_start_in_thread_from_sync_code() -> None:
    sb = Sandbox().start_in_thread()
    try:
        sb.inject("chatgptt", "http500")

        async def go() -> int:
            async with aiohttp.ClientSession() as http:
                return (await chat(http, sb, "chatgptt", "hi"))[0]

        assert asyncio.run(go()) == 500
        assert len(sb.requests) == 2
    finally:
        sb.stop()
        sb.stop()  # idempotent


def test_command_line_server() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatmagic.sandbox", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        m = re.fullmatch(r"chatmagic sandbox listening on (http://127\.0\.0\.1:(\d+))\n", first)
        assert m and int(m.group(2)) > 0, first
        sites = [proc.stdout.readline() for _ in range(5)]
        assert f"{m.group(1)}/chatgptt" in "".join(sites)

        async def go() -> dict[str, Any]:
            async with aiohttp.ClientSession() as http, http.get(m.group(1) + "/_sandbox/health") as r:
                return await r.json()

        assert asyncio.run(go())["ok"] is True
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        if proc.stdout:
            proc.stdout.close()


# --- the forward proxy ---


async def test_proxy_with_aiohttp(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    async with ForwardProxy() as proxy:
        base = sb.base_url("chatgptt")
        async with http.get(base + "/", proxy=proxy.url) as r:
            html = await r.text()
        nonce = re.search(r'data-nonce="([^"]+)"', html).group(1)  # type: ignore[union-attr]
        form = {
            "_wpnonce": nonce,
            "post_id": "2",
            "url": base,
            "action": ACTION,
            "message": "via",
            "bot_id": "0",
        }
        async with http.post(base + AJAX, data=form, proxy=proxy.url) as r:
            assert (await r.json())["data"] == reply_text("chatgptt", "via", 0)
        assert [m for m, _ in proxy.requests] == ["GET", "POST"]
        assert proxy.requests[1][1] == base + AJAX
        assert all(r.via_proxy for r in sb.requests)
        # Streaming through the proxy too.
        async with http.post(
            sb.base_url("opchatgpts") + SUBMIT,
            proxy=proxy.url,
            json={"botId": "default", "newMessage": "[[words:50]]", "stream": True},
        ) as r:
            assert b_reply(await r.text()) == "".join(f"w{i} " for i in range(1, 51))


async def test_proxy_refuses_other_hosts(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    async with ForwardProxy() as proxy:
        async with http.get("http://example.invalid/", proxy=proxy.url) as r:
            assert r.status == 403
        reader, writer = await asyncio.open_connection("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]))
        writer.write(b"CONNECT example.invalid:443 HTTP/1.1\r\nHost: example.invalid:443\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 403")
        writer.close()
        await writer.wait_closed()


async def test_proxy_connect_tunnel(sb: Sandbox) -> None:
    async with ForwardProxy() as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]))
        writer.write(f"CONNECT 127.0.0.1:{sb.port} HTTP/1.1\r\nHost: 127.0.0.1:{sb.port}\r\n\r\n".encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        writer.write(b"GET /_sandbox/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        assert answer.startswith(b"HTTP/1.1 200") and b'"ok": true' in answer
        writer.close()
        await writer.wait_closed()
        assert proxy.requests == [("CONNECT", f"127.0.0.1:{sb.port}")]


async def test_proxy_authentication(sb: Sandbox, http: aiohttp.ClientSession) -> None:
    async with ForwardProxy(username="user", password="pw") as proxy:
        url = sb.url + "/_sandbox/health"
        async with http.get(url, proxy=proxy.url) as r:
            assert r.status == 407 and r.headers["Proxy-Authenticate"].startswith("Basic")
        async with http.get(url, proxy=proxy.url.replace("http://", "http://user:wrong@")) as r:
            assert r.status == 407
        async with http.get(url, proxy=proxy.url.replace("http://", "http://user:pw@")) as r:
            assert r.status == 200


async def test_proxy_with_curl_cffi(sb: Sandbox) -> None:
    from curl_cffi.requests import AsyncSession

    async with ForwardProxy(username="user", password="pw") as proxy:
        authed = proxy.url.replace("http://", "http://user:pw@")
        async with AsyncSession() as s:
            r = await s.get(sb.base_url("chatgptfree") + "/", proxy=authed, impersonate="chrome")
            nonce = re.search(r'data-nonce="([^"]+)"', r.text).group(1)  # type: ignore[union-attr]
            form = {
                "_wpnonce": nonce,
                "post_id": "123",
                "url": "u",
                "action": ACTION,
                "message": "curl",
                "bot_id": "0",
            }
            r = await s.post(sb.base_url("chatgptfree") + AJAX, data=form, proxy=authed, impersonate="chrome")
            assert "".join(a_pieces(r.text)) == reply_text("chatgptfree", "curl", 0)
            r = await s.get(sb.url + "/_sandbox/health", proxy=proxy.url)
            assert r.status_code == 407
        assert sum(m == "POST" for m, _ in proxy.requests) == 1
        assert sb.requests[-2].via_proxy
