"""Family B, the "AI Engine" (mwai) plugin: WP REST start_session and chats/submit."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from ._reply import (
    Directives,
    build_reply,
    parse_directives,
    parse_prompt,
    split_last_user,
    split_pieces,
)
from ._respond import (
    HTML_TYPE,
    JSON_TYPE,
    Ctx,
    dumps,
    send_json,
    send_text,
    stream_events,
)
from ._state import State
from ._wpaicg import shape_reply

__all__ = ["chat_message", "directives_of", "page", "start_session", "submit"]

# Only Chatgpt4Online hands out REST nonces; Opchatgpts' submit is open.
NONCE_SITES = frozenset({"chatgpt4online"})


def page(ctx: Ctx) -> web.Response:
    html = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="UTF-8">'
        f"<title>{ctx.site} sandbox</title></head>\n<body>\n"
        '<div class="mwai-chatbot-container" data-params=\'{"botId":"default","contextId":28}\'></div>\n'
        "</body></html>\n"
    )
    return send_text(200, html, HTML_TYPE)


def _rest_error(status: int, code: str, message: str) -> web.Response:
    return send_text(status, dumps({"code": code, "message": message, "data": {"status": status}}), JSON_TYPE)


def start_session(ctx: Ctx, state: State) -> web.Response:
    body: dict[str, Any] = {"success": True, "sessionId": secrets.token_hex(7)}
    if not ctx.has("no_tokens"):
        body["restNonce"] = state.issue_token(ctx.site)
    return send_text(200, dumps(body), JSON_TYPE)


def chat_message(site: str, body: dict[str, Any]) -> tuple[str, int]:
    """(last user message, earlier count) as the site sees them."""
    new = body.get("newMessage")
    if not isinstance(new, str):
        return "", 0
    if site == "opchatgpts":
        messages = body.get("messages")
        earlier = len(messages) - 1 if isinstance(messages, list) and messages else 0
        return new, earlier
    return split_last_user(parse_prompt(new))


def directives_of(site: str, body: Any) -> Directives | None:
    if not isinstance(body, dict) or not isinstance(body.get("newMessage"), str):
        return None
    return parse_directives(chat_message(site, body)[0])[1]


def _messages_ok(messages: Any) -> bool:
    return isinstance(messages, list) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in messages
    )


async def submit(ctx: Ctx, state: State, body: Any) -> web.StreamResponse:
    if ctx.site in NONCE_SITES or ctx.has("bad_token"):
        # Header lookup is case-insensitive, as in WordPress.
        nonce = ctx.request.headers.get("X-WP-Nonce")
        if ctx.has("bad_token") or not state.token_valid(ctx.site, nonce):
            return _rest_error(403, "rest_cookie_invalid_nonce", "Cookie check failed")
    if not isinstance(body, dict):
        return _rest_error(400, "rest_invalid_json", "Invalid JSON body passed.")
    for name in ("botId", "newMessage"):
        if not isinstance(body.get(name), str):
            return _rest_error(400, "rest_invalid_param", f"Invalid parameter(s): {name}")
    if body["botId"] != "default":
        return _rest_error(400, "rest_invalid_param", "Invalid parameter(s): botId")
    if "messages" in body and not _messages_ok(body["messages"]):
        return _rest_error(400, "rest_invalid_param", "Invalid parameter(s): messages")

    chat_id = body.get("chatId") if isinstance(body.get("chatId"), str) else secrets.token_hex(5)
    stream = bool(body.get("stream"))
    if ctx.has("service_error"):
        if stream:
            return await stream_events(
                ctx,
                [],
                _live,
                end_lines=["data: " + dumps({"type": "error", "data": "Missing API Setting"})],
                bad_event=_BAD,
            )
        return await send_json(ctx, {"success": False, "message": "Missing API Setting"})

    last, earlier = chat_message(ctx.site, body)
    reply, _ = build_reply(ctx.site, last, earlier)
    reply = shape_reply(ctx, reply)
    if not stream:
        if ctx.has("missing_field"):
            return await send_json(ctx, {"success": True})
        return await send_json(ctx, {"success": True, "reply": reply, "chatId": chat_id})
    if ctx.has("no_end"):
        # The page script reads what is left after the events as one JSON object.
        return await stream_events(
            ctx, [], _live, end_lines=[], bad_event=_BAD, plain_tail=dumps({"success": True, "reply": reply})
        )
    end = dumps({"success": True, "reply": reply, "chatId": chat_id, "images": None, "usage": None})
    return await stream_events(
        ctx,
        split_pieces(reply),
        _live,
        end_lines=["data: " + dumps({"type": "end", "data": end})],
        bad_event=_BAD,
    )


_BAD = 'data: {"data":"x"}'


def _live(piece: str) -> str:
    return "data: " + dumps({"type": "live", "data": piece})
