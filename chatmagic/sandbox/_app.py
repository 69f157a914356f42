"""The aiohttp application: routing by site prefix, fault selection, recording, control."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from . import _mwai, _openai, _wpaicg
from ._faults import FAULTS, MODES, PAGE_FAULTS, UnknownFault, parse_faults
from ._proxy import came_through_proxy
from ._reply import Directives
from ._respond import Ctx, front_door, send_text
from ._state import (
    FAMILY_A,
    OPENAI_APIS,
    SITES,
    RecordedRequest,
    SandboxSettings,
    State,
)

__all__ = ["STATE_KEY", "make_app"]

STATE_KEY: web.AppKey[State] = web.AppKey("chatmagic_sandbox_state", State)

log = logging.getLogger("chatmagic.sandbox")

_FAULT_PREFIX = re.compile(r"^/_fault/([^/]+)(/.*)?$")
AJAX = "/wp-admin/admin-ajax.php"
START_SESSION = "/wp-json/mwai/v1/start_session"
SUBMIT = "/wp-json/mwai-ui/v1/chats/submit"
PAGES: dict[str, tuple[str, ...]] = {
    "chatgptt": ("", "/", "/chat", "/chat/"),
    "chatgptes": ("", "/"),
    "chatgptfree": ("", "/", "/chat", "/chat/"),
    "chatgpt4online": ("", "/"),
    "opchatgpts": ("", "/", "/chatgpt-free-use", "/chatgpt-free-use/"),
}


def make_app(settings: SandboxSettings | None = None, state: State | None = None) -> web.Application:
    """The stand-in of the sites as one application (a path prefix per site)."""
    state = state or State(settings=settings or SandboxSettings())
    app = web.Application(middlewares=[_client_may_leave])
    app[STATE_KEY] = state
    app.router.add_get("/_sandbox/health", _health)
    app.router.add_get("/_sandbox/requests", _requests)
    app.router.add_post("/_sandbox/expire-tokens", _expire)
    app.router.add_post("/_sandbox/inject", _inject)
    app.router.add_post("/_sandbox/clear", _clear)
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    return app


# What a handler meets when its client has gone: the write fails on a closed transport.
_CLIENT_GONE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


@web.middleware
async def _client_may_leave(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A client that stops reading mid-answer is normal, not a server error.

    Stop in the panel, Ctrl-C on a cell or a client's timeout closes the connection while
    a stream is still being written. aiohttp would log that as "Error handling request"
    with a traceback, which under ``%chat sandbox`` (the stand-in on a thread of the
    kernel) lands in the notebook; it goes to the debug log instead. Any other exception,
    or a reset on a connection that is still open, is a bug of the stand-in and still
    reaches aiohttp's error log.
    """
    try:
        return await handler(request)
    except _CLIENT_GONE as exc:
        transport = request.transport
        if transport is not None and not transport.is_closing():
            raise
        log.debug("%s %s: the client went away mid-answer (%r)", request.method, request.path, exc)
        # never sent: the connection is gone, aiohttp only closes its side
        return web.Response(status=499, reason="Client Closed Request")


async def _read_body(request: web.Request) -> tuple[dict[str, str] | None, Any]:
    """(form, json) as a PHP site would see them: form only for form content types."""
    ctype = request.content_type
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            post = await request.post()
        except ValueError:
            return {}, None
        form: dict[str, str] = {}
        for key, value in post.items():
            form.setdefault(key, value if isinstance(value, str) else getattr(value, "filename", ""))
        return form, None
    raw = await request.read()
    if raw and "json" in ctype:
        try:
            return None, json.loads(raw)
        except ValueError:
            return None, None
    return None, None


def _record(
    state: State, request: web.Request, site: str | None, path: str, form: dict[str, str] | None, body: Any
) -> None:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    via = "chatmagic-sandbox-proxy" in request.headers.get("Via", "") or came_through_proxy(peer)
    state.record(
        RecordedRequest(
            site=site,
            method=request.method,
            path=path,
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query),
            form=form,
            json=body,
            via_proxy=via,
        )
    )


async def _dispatch(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    path = request.path
    specs = [request.headers.get("X-Sandbox-Fault"), request.query.get("fault")]
    m = _FAULT_PREFIX.match(path)
    if m:
        specs.append(unquote(m.group(1)))
        path = m.group(2) or "/"
    site = path.split("/")[1] if path.count("/") >= 1 else ""
    sub = path[len(site) + 1 :]
    form, body = await _read_body(request)
    known = site in SITES or site in OPENAI_APIS
    _record(state, request, site if known else None, path, form, body)
    if not known:
        return send_text(404, f"No such site {site!r}. Sites: {', '.join(SITES)}.")
    try:
        faults = parse_faults(*specs)
    except UnknownFault as exc:
        return send_text(400, str(exc))

    method = request.method
    ctx = Ctx(request, site, faults, state.settings)
    if site in OPENAI_APIS:
        return await _openai.handle(ctx, state, sub)
    is_page = sub in PAGES[site] and method in ("GET", "HEAD")
    is_chat = method == "POST" and sub == (AJAX if site in FAMILY_A else SUBMIT)
    if is_chat:
        payload = form if site in FAMILY_A else body
        try:
            directives = (_wpaicg.directives_of if site in FAMILY_A else _mwai.directives_of)(site, payload)
        except ValueError as exc:
            return send_text(400, f"Bad sandbox directive: {exc}")
        return await _chat(ctx, state, payload, directives)
    if is_page or (site == "chatgpt4online" and sub == START_SESSION and method == "POST"):
        ctx.faults &= PAGE_FAULTS
        refused = await front_door(ctx, chat=False)
        if refused is not None:
            return refused
        if site in FAMILY_A:
            return _wpaicg.page(ctx, state)
        return _mwai.page(ctx) if is_page else _mwai.start_session(ctx, state)
    if sub in PAGES[site] or sub in (AJAX, START_SESSION, SUBMIT):
        return send_text(405, f"Method {method} not allowed here.")
    return send_text(404, "<html><body><h1>Not Found</h1></body></html>", "text/html; charset=UTF-8")


async def _chat(ctx: Ctx, state: State, payload: Any, d: Directives | None) -> web.StreamResponse:
    ctx.faults |= state.take_injected(ctx.site)
    if d is not None:
        try:
            ctx.faults |= parse_faults(",".join(d.faults))
        except UnknownFault as exc:
            return send_text(400, str(exc))
        ctx.delay = d.delay
    refused = await front_door(ctx, chat=True)
    if refused is not None:
        return refused
    if ctx.site in FAMILY_A:
        return await _wpaicg.ajax(ctx, state, payload)
    return await _mwai.submit(ctx, state, payload)


# --- control endpoints (for a sandbox in another process) ---


async def _health(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "ok": True,
            "sites": list(SITES),
            "openai_apis": list(OPENAI_APIS),
            "faults": sorted(FAULTS),
            "modes": sorted(MODES),
        }
    )


async def _requests(request: web.Request) -> web.Response:
    return web.json_response([r.to_dict() for r in request.app[STATE_KEY].snapshot()])


async def _expire(request: web.Request) -> web.Response:
    site = request.query.get("site")
    if request.can_read_body:
        try:
            data = await request.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("site"), str):
            site = data["site"]
    request.app[STATE_KEY].expire_tokens(site)
    return web.json_response({"ok": True})


async def _inject(request: web.Request) -> web.Response:
    try:
        data = await request.json()
        site, faults, times = data["site"], list(data["faults"]), int(data.get("times", 1))
        parse_faults(",".join(faults))
    except UnknownFault as exc:
        return send_text(400, str(exc))
    except (ValueError, KeyError, TypeError):
        return send_text(400, 'Expected JSON {"site": ..., "faults": [...], "times": 1}.')
    if site not in SITES and site not in OPENAI_APIS:
        return send_text(400, f"No such site {site!r}. Sites: {', '.join(SITES)}.")
    request.app[STATE_KEY].inject(site, tuple(faults), times)
    return web.json_response({"ok": True})


async def _clear(request: web.Request) -> web.Response:
    request.app[STATE_KEY].clear()
    return web.json_response({"ok": True})
