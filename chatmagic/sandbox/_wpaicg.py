"""Family A, the "AI Power" (wpaicg) plugin: chat pages with tokens and admin-ajax.php."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from aiohttp import web

from ._reply import (
    Directives,
    build_reply,
    parse_directives,
    parse_prompt,
    split_last_user,
    split_pieces,
    strip_instruction,
)
from ._respond import HTML_TYPE, Ctx, dumps, send_json, send_text, stream_events
from ._state import POST_IDS, State

__all__ = ["ACTION", "CONSENT", "ajax", "chat_message", "directives_of", "page", "shape_reply"]

ACTION = "wpaicg_chat_shortcode_message"
CONSENT = "Du musst das Kästchen anklicken!"
REQUIRED = ("_wpnonce", "post_id", "url", "action", "message", "bot_id")
MAX_CLIENT_ID = 64

_HEAD = """<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="UTF-8"><title>{title}</title></head>
<body class="page-id-{post_id}">
<h1>{title}</h1>
"""
_TAIL = """<div class="wpaicg-chat-shortcode-messages"></div>
<textarea class="wpaicg-chat-shortcode-typing" placeholder="Type a message"></textarea>
</body></html>
"""


def page(ctx: Ctx, state: State) -> web.Response:
    """The chat page; each load issues a fresh nonce (old ones stay valid until they expire)."""
    site = ctx.site
    post_id = POST_IDS[site]
    tokens = not ctx.has("no_tokens")
    nonce = state.issue_token(site) if tokens else ""
    head = _HEAD.format(lang="es" if site == "chatgptes" else "en", title=f"{site} sandbox", post_id=post_id)
    if site == "chatgptt":
        # Mixed quote styles on purpose: clients must accept either.
        body = (
            f'<div class="wpaicg-chat-shortcode" data-nonce="{nonce}" data-post-id=\'{post_id}\' '
            f'data-bot-id="0" data-url="/chatgptt">'
            if tokens
            else '<div class="wpaicg-chat-shortcode" data-bot-id="0">'
        )
    elif site == "chatgptes":
        body = (
            '<form class="wpaicg-chat-shortcode">\n'
            f'<input type="hidden" name="_wpnonce" value="{nonce}">\n'
            f'<input type="hidden" name="post_id" value="{post_id}">\n'
            "</form>\n"
            f'<script>var wpaicg_nonce = \'{nonce}\';\nvar wpaicgParams = {{"ajax_url": "/wp-admin/admin-ajax.php"}};</script>\n'
            if tokens
            else '<form class="wpaicg-chat-shortcode"></form>\n'
        )
    else:
        body = (
            f'<div class="wpaicg-chat-shortcode" data-nonce="{nonce}" data-post-id="{post_id}" data-bot-id="0">'
            if tokens
            else '<div class="wpaicg-chat-shortcode" data-bot-id="0">'
        )
    return send_text(200, head + body + "\n" + _TAIL, HTML_TYPE)


def chat_message(site: str, form: Mapping[str, str]) -> tuple[str, int]:
    """(last user message, earlier count) from the ``message`` field."""
    prompt = form.get("message", "")
    if site == "chatgptes":
        prompt = strip_instruction(prompt)
    return split_last_user(parse_prompt(prompt))


def _error(msg: str) -> web.Response:
    return send_text(200, dumps({"status": "error", "msg": msg}), "application/json; charset=UTF-8")


def _history_ok(value: str) -> bool:
    if value == "None":
        return True
    try:
        items = json.loads(value)
    except ValueError:
        return False
    return isinstance(items, list) and all(isinstance(i, str) for i in items)


async def ajax(ctx: Ctx, state: State, form: Mapping[str, str] | None) -> web.StreamResponse:
    """POST admin-ajax.php: WordPress' checks, then the plugin's, then the answer."""
    form = form or {}
    if form.get("action") != ACTION:
        return send_text(400, "0")  # admin-ajax: no handler for this action
    if "_wpnonce" not in form:
        return send_text(403, "-1")  # check_ajax_referer failed outright
    if ctx.has("bad_token") or not state.token_valid(ctx.site, form.get("_wpnonce")):
        return _error("Security check")
    if any(not form.get(k) for k in REQUIRED):
        return _error("Something went wrong")
    if form["post_id"] != POST_IDS[ctx.site] or form["bot_id"] != "0":
        return _error("Something went wrong")
    if "chatbot_identity" in form and form["chatbot_identity"] != "shortcode":
        return _error("Something went wrong")
    client_id = form.get("wpaicg_chat_client_id")
    if client_id is not None and (not client_id or len(client_id) > MAX_CLIENT_ID):
        return _error("Something went wrong")
    history = form.get("wpaicg_chat_history")
    if history is not None and not _history_ok(history):
        return _error("Something went wrong")
    if ctx.has("service_error"):
        # The plugin answers errors as JSON even on a streaming site.
        return _error("Missing API Setting")

    last, earlier = chat_message(ctx.site, form)
    reply, _ = build_reply(ctx.site, last, earlier)
    reply = shape_reply(ctx, reply)
    if ctx.site in ctx.settings.stream_sites:
        return await _stream(ctx, reply)
    if ctx.has("missing_field"):
        return await send_json(ctx, {"status": "success", "msg": ""})
    return await send_json(ctx, {"status": "success", "msg": "", "data": reply})


def shape_reply(ctx: Ctx, reply: str) -> str:
    """Faults that change the reply text itself."""
    if ctx.has("consent"):
        reply = CONSENT
    if ctx.has("empty"):
        reply = ""
    if ctx.has("long_line"):
        reply = f"{reply} {'x' * 204800}"
    return reply


async def _stream(ctx: Ctx, reply: str) -> web.StreamResponse:
    created = int(time.time())

    def chunk(piece: str) -> str:
        return "data: " + dumps(
            {
                "id": "chatcmpl-sandbox",
                "object": "chat.completion.chunk",
                "created": created,
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
        )

    bad = "data: " + dumps({"id": "chatcmpl-sandbox", "object": "chat.completion.chunk", "created": created})
    if ctx.has("no_end"):
        tail = dumps({"status": "success", "data": reply})
        return await stream_events(ctx, [], chunk, end_lines=[], bad_event=bad, plain_tail=tail)
    return await stream_events(ctx, split_pieces(reply), chunk, end_lines=["data: [DONE]"], bad_event=bad)


def directives_of(site: str, form: Mapping[str, str] | None) -> Directives | None:
    """The directives of the message, read before the checks (faults may refuse it)."""
    if not form or "message" not in form:
        return None
    last, _ = chat_message(site, form)
    return parse_directives(last)[1]
