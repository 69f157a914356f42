"""The API's checks of a chat request body, with OpenAI's error messages.

The texts are OpenAI's own (``Invalid type for 'messages': expected an array.``,
``Missing required parameter: 'messages[0].role'.``, ...). Tool checks: a malformed
``tools`` entry; an assistant's ``tool_calls`` without id or function; a ``tool`` message
without ``tool_call_id``; and OpenAI's two pairing rules, in its words (its typo
included): "Invalid parameter: messages with role 'tool' must be a response to a
preceeding message with 'tool_calls'." and "An assistant message with 'tool_calls' must
be followed by tool messages responding to each 'tool_call_id'. The following
tool_call_ids did not have response messages: ..." (``param: "messages.[i].role"``,
``code: null``; both seen in clients' bug reports). llama.cpp and vLLM do not check the
pairing themselves (their templates render whatever comes); the stand-in checks it on
every site, in the site's error shape, so that a client's bug is caught everywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from ._errors import api_error

__all__ = ["ROLES", "invalid"]

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
#: OpenAI's pattern for a function name
_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def invalid(body: Any, dialect: str | None = None) -> web.Response | None:
    """The API's checks of a chat request body, with its messages."""
    refused = _invalid_body(body)
    if refused is None or dialect is None:
        return refused
    # the same refusal in the dialect's error shape
    obj = json.loads(refused.body)  # type: ignore[arg-type]
    err = obj["error"]
    return api_error(refused.status, err["message"], err["type"], err["param"], err["code"], dialect=dialect)


def _invalid_body(body: Any) -> web.Response | None:
    if not isinstance(body, dict):
        return api_error(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
            "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
            "sent was not valid JSON.)",
        )
    if not body.get("model"):
        return api_error(400, "you must provide a model parameter")
    if not isinstance(body["model"], str):
        return api_error(
            400, "Invalid type for 'model': expected a string.", param="model", code="invalid_type"
        )
    if "messages" not in body:
        return api_error(
            400,
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    messages = body["messages"]
    if not isinstance(messages, list):
        return api_error(
            400, "Invalid type for 'messages': expected an array.", param="messages", code="invalid_type"
        )
    if not messages:
        return api_error(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
            "empty array instead.",
            param="messages",
            code="empty_array",
        )
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            return api_error(
                400, f"Invalid type for '{where}': expected an object.", param=where, code="invalid_type"
            )
        role = m.get("role")
        if role is None:
            return api_error(
                400,
                f"Missing required parameter: '{where}.role'.",
                param=f"{where}.role",
                code="missing_required_parameter",
            )
        if role not in ROLES:
            return _invalid_value(role, ROLES, f"{where}.role")
        content = m.get("content")
        # an assistant message that only calls tools has no content
        if content is None and not (role == "assistant" and ("tool_calls" in m or "function_call" in m)):
            return api_error(
                400,
                f"Missing required parameter: '{where}.content'.",
                param=f"{where}.content",
                code="missing_required_parameter",
            )
        if content is not None and not isinstance(content, (str, list)):
            return api_error(
                400,
                f"Invalid type for '{where}.content': expected one of a string or array of objects.",
                param=f"{where}.content",
                code="invalid_type",
            )
        if isinstance(content, list):
            refused = _invalid_parts(content, f"{where}.content")
            if refused is not None:
                return refused
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            return api_error(
                400, f"Invalid type for '{name}': expected an integer.", param=name, code="invalid_type"
            )
        if isinstance(value, int) and value < 1:
            return api_error(
                400,
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {value} instead.",
                param=name,
                code="integer_below_min_value",
            )
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, (int, float))
        or isinstance(temperature, bool)
        or not 0 <= temperature <= 2
    ):
        return api_error(
            400,
            f"Invalid 'temperature': expected a number from 0 to 2, but got {json.dumps(temperature)} instead.",
            param="temperature",
            code="invalid_value",
        )
    if "stream" in body and body["stream"] is not None and not isinstance(body["stream"], bool):
        return api_error(
            400, "Invalid type for 'stream': expected a boolean.", param="stream", code="invalid_type"
        )
    if body.get("stream_options") is not None and not body.get("stream"):
        return api_error(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    return _invalid_tools(body.get("tools")) or _unpaired(messages)


#: what a message's content parts may be, and what each must carry
_PART_TYPES = ("text", "image_url")


def _invalid_parts(parts: list[Any], where: str) -> web.Response | None:
    """The API's checks of a content list: text parts and images (an http(s) or data: URL)."""
    for i, part in enumerate(parts):
        at = f"{where}[{i}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in _PART_TYPES:
            return _invalid_value(kind, _PART_TYPES, f"{at}.type")
        assert isinstance(part, dict)
        if kind == "text" and not isinstance(part.get("text"), str):
            return api_error(
                400,
                f"Missing required parameter: '{at}.text'.",
                param=f"{at}.text",
                code="missing_required_parameter",
            )
        if kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str) or not url.startswith(("http://", "https://", "data:image/")):
                return api_error(
                    400,
                    f"Invalid '{at}.image_url.url': expected an http(s) URL or a base64-encoded data URL of an image.",
                    param=f"{at}.image_url.url",
                    code="invalid_image_url",
                )
    return None


def _missing(where: str) -> web.Response:
    return api_error(
        400, f"Missing required parameter: '{where}'.", param=where, code="missing_required_parameter"
    )


def _invalid_value(value: Any, supported: Iterable[str], where: str) -> web.Response:
    valid = ", ".join(f"'{v}'" for v in supported)
    return api_error(
        400,
        f"Invalid value: {json.dumps(value)}. Supported values are: {valid}.",
        param=where,
        code="invalid_value",
    )


def _wrong_type(where: str, expected: str) -> web.Response:
    return api_error(
        400, f"Invalid type for '{where}': expected {expected}.", param=where, code="invalid_type"
    )


def _invalid_function(function: Any, where: str) -> web.Response | None:
    if not isinstance(function, dict):
        return _missing(where) if function is None else _wrong_type(where, "an object")
    name = function.get("name")
    if name is None:
        return _missing(f"{where}.name")
    if not isinstance(name, str) or not _NAME.match(name):
        return api_error(
            400,
            f"Invalid '{where}.name': string does not match pattern. Expected a string that matches "
            "the pattern '^[a-zA-Z0-9_-]+$'.",
            param=f"{where}.name",
            code="invalid_value",
        )
    return None


def _invalid_tools(tools: Any) -> web.Response | None:
    """``tools``: a list of ``{"type": "function", "function": {"name", "parameters"?}}``."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        return _wrong_type("tools", "an array")
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            return _wrong_type(where, "an object")
        if "type" not in tool:
            return _missing(f"{where}.type")
        if tool["type"] != "function":
            return _invalid_value(tool["type"], ("function",), f"{where}.type")
        refused = _invalid_function(tool.get("function"), f"{where}.function")
        if refused is not None:
            return refused
        parameters = tool["function"].get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            return _wrong_type(f"{where}.function.parameters", "an object")
    return None


def _invalid_call(call: Any, where: str) -> web.Response | None:
    if not isinstance(call, dict):
        return _wrong_type(where, "an object")
    if not isinstance(call.get("id"), str) or not call["id"]:
        return _missing(f"{where}.id")
    refused = _invalid_function(call.get("function"), f"{where}.function")
    if refused is None and not isinstance(call["function"].get("arguments"), str):
        return _missing(f"{where}.function.arguments")
    return refused


def _unpaired(messages: list[dict[str, Any]]) -> web.Response | None:
    """Each ``tool`` message answers a call of the assistant message before it, and every call is answered."""
    waiting: list[str] = []  # ids of the last assistant message's calls not answered yet
    asked_at = 0
    for i, m in enumerate(messages):
        role = m.get("role")
        if role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                return _missing(f"messages[{i}].tool_call_id")
            if call_id not in waiting:
                return api_error(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                    "message with 'tool_calls'.",
                    param=f"messages.[{i}].role",
                )
            waiting.remove(call_id)
            continue
        if waiting:
            break
        calls = m.get("tool_calls") if role == "assistant" else None
        if calls is not None:
            if not isinstance(calls, list):
                return _wrong_type(f"messages[{i}].tool_calls", "an array")
            for j, call in enumerate(calls):
                refused = _invalid_call(call, f"messages[{i}].tool_calls[{j}]")
                if refused is not None:
                    return refused
            waiting, asked_at = [c["id"] for c in calls], i
    if waiting:
        return api_error(
            400,
            "An assistant message with 'tool_calls' must be followed by tool messages responding to "
            "each 'tool_call_id'. The following tool_call_ids did not have response messages: "
            + ", ".join(waiting),
            param=f"messages.[{asked_at}].role",
        )
    return None
