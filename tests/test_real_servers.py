"""What real OpenAI-compatible servers do, and how chatmagic meets it.

llama.cpp's llama-server, llama-cpp-python's server and LiteLLM's proxy each differ from
OpenAI's API (docs/openai.md, "Real servers"). The stand-in plays each difference as a
mode (``chatmagic.sandbox.MODES``); first the modes are checked on the wire, then the
provider, the session and the magics are run against them. Every address is 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import openai
import pytest

from chatmagic.sandbox import MODES, OPENAI_PRESETS, REFUSAL_TEXT, Sandbox, reasoning_text, reply_text

KEY = "sk-sandbox"
AUTH = {"Authorization": f"Bearer {KEY}"}


def echo(text: str, earlier: int = 0, site: str = "openai") -> str:
    return reply_text(site, text, earlier)


def sse_events(body: str) -> list[str]:
    """The data of each event, as the SSE spec reads a stream: data lines of one event joined by LF."""
    events: list[str] = []
    data: list[str] = []
    for line in body.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            if data:
                events.append("\n".join(data))
                data = []
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        events.append("\n".join(data))
    return events


async def post(
    sb: Sandbox,
    text: str,
    *,
    modes: str = "",
    site: str = "openai",
    model: str = "gpt-4o-mini",
    stream: bool = True,
    usage: bool = False,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> tuple[int, str]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
    if usage:
        body["stream_options"] = {"include_usage": True}
    body.update(extra)
    sent = {**AUTH, **(headers or {})}
    if modes:
        sent["X-Sandbox-Fault"] = modes
    async with (
        aiohttp.ClientSession() as http,
        http.post(sb.base_url(site) + "/chat/completions", json=body, headers=sent) as r,
    ):
        return r.status, await r.text()


async def chunks(sb: Sandbox, text: str, **kwargs: Any) -> list[dict[str, Any]]:
    status, body = await post(sb, text, **kwargs)
    assert status == 200, body
    return [json.loads(e) for e in sse_events(body) if e != "[DONE]"]


def deltas(found: list[dict[str, Any]], name: str) -> str:
    return "".join(
        c["choices"][0]["delta"].get(name) or ""
        for c in found
        if c.get("choices") and isinstance(c["choices"][0].get("delta"), dict)
    )


def finish_reasons(found: list[dict[str, Any]]) -> list[Any]:
    return [c["choices"][0].get("finish_reason") for c in found if c.get("choices")]


# -- 1. the stand-in's modes, on the wire ---------------------------------------------------


def test_every_mode_is_described() -> None:
    assert {"length", "reasoning", "reasoning_only", "litellm", "llama_server", "llama_cpp_python"} <= set(
        MODES
    )
    assert all(MODES.values())


async def test_length_cuts_the_reply_halfway(sandbox: Sandbox) -> None:
    found = await chunks(sandbox, "[[words:10]]", modes="length")
    assert deltas(found, "content") == "w1 w2 w3 w4 w5 "
    assert finish_reasons(found)[-1] == "length"


async def test_max_tokens_is_honoured(sandbox: Sandbox) -> None:
    found = await chunks(sandbox, "[[words:10]]", max_tokens=3)
    assert deltas(found, "content") == "w1 w2 w3 " and finish_reasons(found)[-1] == "length"
    found = await chunks(sandbox, "[[words:2]]", max_completion_tokens=3)
    assert deltas(found, "content") == "w1 w2 " and finish_reasons(found)[-1] == "stop"


async def test_content_filter(sandbox: Sandbox) -> None:
    found = await chunks(sandbox, "[[words:4]]", modes="content_filter")
    assert deltas(found, "content") == "w1 w2 " and finish_reasons(found)[-1] == "content_filter"


async def test_reasoning_then_content(sandbox: Sandbox) -> None:
    found = await chunks(sandbox, "hi", modes="reasoning", usage=True)
    assert deltas(found, "reasoning_content") == reasoning_text("hi")
    assert deltas(found, "content") == echo("hi")
    # the thinking comes first, whole
    kinds = [
        k for c in found if c.get("choices") for k, v in c["choices"][0]["delta"].items() if v and k != "role"
    ]
    assert kinds == ["reasoning_content"] * kinds.count("reasoning_content") + ["content"] * kinds.count(
        "content"
    )
    usage = found[-1]["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == len(reasoning_text("hi").split())


async def test_reasoning_field_named_reasoning(sandbox: Sandbox) -> None:
    found = await chunks(sandbox, "hi", modes="reasoning,reasoning_field")
    assert deltas(found, "reasoning") == reasoning_text("hi") and deltas(found, "reasoning_content") == ""


async def test_reasoning_only_spends_every_token_thinking(sandbox: Sandbox) -> None:
    found = await chunks(sandbox, "hi", modes="reasoning_only")
    assert deltas(found, "content") == "" and deltas(found, "reasoning_content") == reasoning_text("hi")
    assert finish_reasons(found)[-1] == "length"
    # a small limit does the same to a reasoning model
    found = await chunks(sandbox, "hi", modes="reasoning", max_tokens=2)
    assert deltas(found, "content") == "" and finish_reasons(found)[-1] == "length"


async def test_refusal_and_tool_calls(sandbox: Sandbox) -> None:
    found = await chunks(sandbox, "hi", modes="refusal")
    assert deltas(found, "refusal") == REFUSAL_TEXT and deltas(found, "content") == ""
    found = await chunks(sandbox, "hi", modes="tool_calls")
    assert deltas(found, "content") == "" and finish_reasons(found)[-1] == "tool_calls"
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0] for c in found if c["choices"][0]["delta"].get("tool_calls")
    ]
    assert calls[0]["function"]["name"] == "lookup"
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"query": "hi"}


async def test_split_data_spreads_one_event_over_lines(sandbox: Sandbox) -> None:
    status, body = await post(sandbox, "one two", modes="split_data")
    assert status == 200 and "data: {\n" in body
    found = [json.loads(e) for e in sse_events(body) if e != "[DONE]"]
    assert deltas(found, "content") == echo("one two")


@pytest.mark.parametrize(
    ("modes", "choices"),
    [("", []), ("usage_empty_delta", [{"index": 0, "delta": {}}]), ("usage_no_choices", None)],
)
async def test_the_three_usage_shapes(sandbox: Sandbox, modes: str, choices: Any) -> None:
    found = await chunks(sandbox, "[[words:3]]", modes=modes, usage=True)
    last = found[-1]
    assert last["usage"]["completion_tokens"] == 3
    assert last.get("choices", None) == choices
    # without asking, no usage at all
    assert all(c.get("usage") is None for c in await chunks(sandbox, "[[words:3]]", modes=modes))


async def test_vllm_error_mid_stream(sandbox: Sandbox) -> None:
    status, body = await post(sandbox, "[[words:10]]", modes="vllm_error")
    events = sse_events(body)
    assert status == 200 and "[DONE]" not in events
    assert json.loads(events[-1])["object"] == "error"


@pytest.mark.parametrize(
    ("site", "modes", "status", "words"),
    [
        ("openai", "", 404, "does not exist"),
        ("openai", "model_400", 400, "model 'nope' not found"),
        ("openai", "litellm", 400, "Invalid model name passed in model=nope"),
        ("openai", "llama_server", 400, "model 'nope' not found"),
        ("ollama", "", 404, 'model "nope" not found, try pulling it first'),
    ],
)
async def test_unknown_model_as_each_server_says_it(
    sandbox: Sandbox, site: str, modes: str, status: int, words: str
) -> None:
    got, body = await post(sandbox, "hi", modes=modes, site=site, model="nope")
    assert got == status and words in json.loads(body)["error"]["message"]


async def test_litellm_shapes(sandbox: Sandbox) -> None:
    found = await chunks(sandbox, "[[words:3]]", modes="litellm", usage=True)
    with_choices = [c for c in found if c["choices"] and c["choices"][0]["delta"]]
    assert all("finish_reason" not in c["choices"][0] for c in with_choices)
    assert finish_reasons(found)[-2] == "stop" and found[-1]["choices"] == [{"index": 0, "delta": {}}]
    _, body = await post(sandbox, "hi", modes="litellm", model="nope")
    assert json.loads(body)["error"]["code"] == "400"


async def test_llama_server_shapes(sandbox: Sandbox) -> None:
    found = await chunks(sandbox, "[[words:3]]", modes="llama_server")
    assert found[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    assert "timings" in found[-1] and "usage" not in found[0]
    _, body = await post(sandbox, "hi", modes="llama_server", model="nope")
    assert json.loads(body)["error"]["code"] == 400


async def test_llama_cpp_python_shapes(sandbox: Sandbox) -> None:
    status, body = await post(sandbox, "[[words:3]]", modes="llama_cpp_python", model="any-name.gguf")
    assert status == 200 and ": ping - " in body
    assert deltas([json.loads(e) for e in sse_events(body) if e != "[DONE]"], "content") == "w1 w2 w3 "
    status, body = await post(
        sandbox, "hi", modes="llama_cpp_python", headers={"Authorization": "Bearer wrong"}
    )
    assert status == 401 and json.loads(body) == {"detail": "Invalid API Key"}


@pytest.mark.parametrize("site", OPENAI_PRESETS)
async def test_presets_want_no_key(sandbox: Sandbox, site: str) -> None:
    assert sandbox.base_url(site).endswith(f"/{site}/v1")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            sandbox.base_url(site) + "/chat/completions",
            json={"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]},
        ) as r,
    ):
        assert r.status == 200
        assert (await r.json())["choices"][0]["message"]["content"] == echo("hi", site=site)
    assert sandbox.requests[-1].site == site


async def test_image_parts_are_checked(sandbox: Sandbox) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    content = [{"type": "text", "text": "what is this?"}, image]
    status, body = await post(sandbox, "x", stream=False, messages=[{"role": "user", "content": content}])
    reply = json.loads(body)["choices"][0]["message"]["content"]
    assert status == 200 and reply == echo("what is this?") + "\n\nImages: 1."
    bad = [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]
    status, body = await post(sandbox, "x", messages=[{"role": "user", "content": bad}])
    assert status == 400 and "invalid_image_url" in body
    status, body = await post(sandbox, "x", messages=[{"role": "user", "content": [{"type": "video"}]}])
    assert status == 400 and "Supported values are" in body


@pytest.mark.parametrize(
    "extra", [{"max_tokens": "5"}, {"max_tokens": 0}, {"temperature": 3}, {"temperature": "hot"}]
)
async def test_parameters_are_checked(sandbox: Sandbox, extra: dict[str, Any]) -> None:
    status, body = await post(sandbox, "hi", **extra)
    assert status == 400 and json.loads(body)["error"]["param"] == next(iter(extra))


async def test_official_client_reads_the_modes(sandbox: Sandbox) -> None:
    client = openai.AsyncOpenAI(base_url=sandbox.base_url("openai"), api_key=KEY, max_retries=0)
    try:
        done = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "[[words:6]]"}],
            extra_headers={"X-Sandbox-Fault": "length"},
        )
        assert done.choices[0].finish_reason == "length" and done.choices[0].message.content == "w1 w2 w3 "
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "one two"}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"X-Sandbox-Fault": "split_data,usage_empty_delta"},
        )
        got = [c async for c in stream]
        assert "".join(c.choices[0].delta.content or "" for c in got if c.choices) == echo("one two")
        assert got[-1].usage is not None and got[-1].usage.prompt_tokens > 0
    finally:
        await client.close()


# -- 2. the provider against each mode -----------------------------------------------------


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return KEY


async def parts_of(
    sb: Sandbox,
    text: str,
    *,
    modes: str = "",
    site: str = "openai",
    model: str = "gpt-4o-mini",
    **kwargs: Any,
) -> tuple[str, str, Any]:
    """(text, reasoning, ending) of one reply, through the provider's parts."""
    from chatmagic.providers.base import Ending, Thinking
    from chatmagic.providers.endpoints import find_endpoint
    from chatmagic.providers.openai import OpenAICompatible

    cls = find_endpoint(site) or OpenAICompatible
    base = sb.base_url(site)
    if modes:
        base = f"{sb.url}/_fault/{modes}/{site}/v1"
    texts: list[str] = []
    thinking: list[str] = []
    ending = None
    async with cls(base_url=base) as provider:
        async for part in provider.parts([{"role": "user", "content": text}], model, **kwargs):
            if isinstance(part, Thinking):
                thinking.append(part.text)
            elif isinstance(part, Ending):
                ending = part
            else:
                texts.append(part)
    return "".join(texts), "".join(thinking), ending


async def test_provider_says_a_reply_was_cut(sandbox: Sandbox, key: str) -> None:
    text, _, ending = await parts_of(sandbox, "[[words:6]]", modes="length")
    assert text == "w1 w2 w3 " and ending.finish_reason == "length"
    _, _, ending = await parts_of(sandbox, "[[words:4]]", modes="content_filter")
    assert ending.finish_reason == "content_filter"
    text, _, ending = await parts_of(sandbox, "hi")
    assert text == echo("hi") and ending.finish_reason == "stop"


@pytest.mark.parametrize("modes", ["reasoning", "reasoning,reasoning_field", "reasoning,split_data,litellm"])
async def test_provider_streams_reasoning_apart(sandbox: Sandbox, key: str, modes: str) -> None:
    text, thinking, _ = await parts_of(sandbox, "hi", modes=modes)
    assert text == echo("hi") and thinking == reasoning_text("hi")


async def test_provider_names_reasoning_and_the_limit_when_no_answer_came(sandbox: Sandbox, key: str) -> None:
    from chatmagic.errors import EmptyReplyError

    with pytest.raises(EmptyReplyError) as info:
        await parts_of(sandbox, "hi", modes="reasoning_only")
    message = str(info.value)
    assert "thinking" in message and "token limit" in message and "max_tokens" in message


@pytest.mark.parametrize(
    "modes", ["", "usage_empty_delta", "usage_no_choices", "litellm", "llama_server", "llama_cpp_python"]
)
async def test_provider_reads_usage_in_every_shape(sandbox: Sandbox, key: str, modes: str) -> None:
    text, _, ending = await parts_of(sandbox, "[[words:3]]", modes=modes)
    assert text == "w1 w2 w3 "
    assert ending.usage["completion_tokens"] == 3 and ending.usage["prompt_tokens"] > 0


async def test_provider_asks_for_usage(sandbox: Sandbox, key: str) -> None:
    await parts_of(sandbox, "hi")
    body = sandbox.requests[-1].json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_provider_reads_split_data_and_pings(sandbox: Sandbox, key: str) -> None:
    text, _, _ = await parts_of(sandbox, "one two", modes="split_data,llama_cpp_python")
    assert text == echo("one two")


async def test_provider_says_the_model_refused(sandbox: Sandbox, key: str) -> None:
    from chatmagic.errors import ServiceError

    with pytest.raises(ServiceError, match="the model refused: I'm sorry"):
        await parts_of(sandbox, "hi", modes="refusal")


async def test_provider_says_the_reply_was_a_tool_call(sandbox: Sandbox, key: str) -> None:
    from chatmagic.errors import EmptyReplyError

    with pytest.raises(EmptyReplyError, match="tool 'lookup'") as info:
        await parts_of(sandbox, "hi", modes="tool_calls")
    assert "was empty" not in str(info.value)


async def test_vllm_error_mid_stream_is_a_service_error(sandbox: Sandbox, key: str) -> None:
    from chatmagic.errors import ServiceError

    with pytest.raises(ServiceError, match="Background loop has errored already") as info:
        await parts_of(sandbox, "[[words:10]]", modes="vllm_error")
    assert info.value.partial == "w1 w2 w3 "


async def test_server_messages_get_one_period(sandbox: Sandbox, key: str) -> None:
    from chatmagic.errors import ProviderError

    with pytest.raises(ProviderError) as info:
        await parts_of(sandbox, "hi", modes="http503")
    assert "later.." not in str(info.value) and "please try again later. " in str(info.value)


@pytest.mark.parametrize("modes", ["model_400", "litellm", "llama_server"])
async def test_unknown_model_as_400_lists_the_models(sandbox: Sandbox, key: str, modes: str) -> None:
    from chatmagic.errors import HTTPStatusError

    with pytest.raises(HTTPStatusError) as info:
        await parts_of(sandbox, "hi", modes=modes, model="nope")
    assert info.value.status == 400
    assert "no model 'nope'" in str(info.value) and "Its models: gpt-4o, gpt-4o-mini, llama3.2." in str(
        info.value
    )


async def test_a_400_about_something_else_is_not_an_unknown_model(sandbox: Sandbox, key: str) -> None:
    from chatmagic.errors import HTTPStatusError

    with pytest.raises(HTTPStatusError) as info:
        await parts_of(sandbox, "hi", params={"temperature": 5})
    assert "no model" not in str(info.value) and "temperature" in str(info.value)


async def test_llama_cpp_python_401_names_the_key(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    from chatmagic.errors import HTTPStatusError

    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-the-right-one")
    with pytest.raises(
        HTTPStatusError, match="refused the API key in OPENAI_API_KEY .HTTP 401: Invalid API Key"
    ):
        await parts_of(sandbox, "hi", modes="llama_cpp_python")


async def test_params_and_images_go_into_the_body(sandbox: Sandbox, key: str) -> None:
    from chatmagic.options import Attachment

    png = Attachment("pic", "image/png", b"\x89PNG\r\n\x1a\nfake")
    text, _, ending = await parts_of(
        sandbox, "[[words:5]]", params={"max_tokens": 2, "temperature": 0.2}, images=(png,)
    )
    assert text == "w1 w2 " and ending.finish_reason == "length"
    body = sandbox.requests[-1].json
    assert body["max_tokens"] == 2 and body["temperature"] == 0.2
    content = body["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "[[words:5]]"}
    assert content[1]["image_url"]["url"] == png.data_url


async def test_a_web_site_refuses_params_and_images_before_sending(sandbox: Sandbox) -> None:
    from chatmagic.errors import ConfigurationError
    from chatmagic.options import Attachment
    from chatmagic.providers import get_provider

    cls = get_provider("chatgptt")
    png = Attachment("pic", "image/png", b"\x89PNG\r\n\x1a\nfake")
    for kwargs in ({"params": {"temperature": 0.2}}, {"images": (png,)}):
        async with cls(base_url=sandbox.base_url("chatgptt")) as provider:
            with pytest.raises(ConfigurationError) as info:
                async for _ in provider.parts([{"role": "user", "content": "hi"}], None, **kwargs):
                    pass
        assert "\n" not in str(info.value) and "ChatGptt" in str(info.value)
    assert sandbox.requests == []


async def test_an_empty_model_asks_the_server(sandbox: Sandbox) -> None:
    text, _, ending = await parts_of(sandbox, "hi", site="llamacpp", model="")
    assert text == echo("hi", site="llamacpp") and ending.model == "gpt-4o-mini"
    assert sandbox.requests[-1].json["model"] == "gpt-4o-mini"


async def test_the_stream_method_stays_text_only(sandbox: Sandbox, key: str) -> None:
    from chatmagic.providers.openai import OpenAICompatible

    async with OpenAICompatible(base_url=f"{sandbox.url}/_fault/reasoning/openai/v1") as provider:
        got = [c async for c in provider.stream([{"role": "user", "content": "hi"}], "gpt-4o")]
    assert "".join(got) == echo("hi") and all(isinstance(c, str) for c in got)


async def test_chatgptfree_reads_the_same_deltas(sandbox: Sandbox) -> None:
    from chatmagic.errors import ProtocolError
    from chatmagic.providers import get_provider

    cls = get_provider("chatgptfree")
    async with cls(base_url=sandbox.base_url("chatgptfree")) as provider:
        got = [c async for c in provider.stream([{"role": "user", "content": "hi"}])]
    assert "".join(got) == reply_text("chatgptfree", "hi", 0)
    async with cls(base_url=f"{sandbox.url}/_fault/missing_field/chatgptfree") as provider:
        with pytest.raises(ProtocolError):
            async for _ in provider.stream([{"role": "user", "content": "hi"}]):
                pass


# -- 3. the session and the magics -------------------------------------------------------


@pytest.fixture
def servers(ip: Any, fresh: None, sandbox_thread: Sandbox, key: str) -> Any:
    """Every provider and preset pointed at the stand-in (a preset never reaches a real server)."""
    from .conftest import SITES

    urls = {site: sandbox_thread.base_url(site) for site in (*SITES, "openai", *OPENAI_PRESETS)}
    ip.run_line_magic("config", f"ChatMagics.base_urls = {urls!r}")
    yield sandbox_thread
    ip.run_line_magic("config", "ChatMagics.options = {}")
    ip.run_line_magic("config", "ChatMagics.endpoints = {}")


def cell(ip: Any, source: str) -> tuple[Any, str]:
    """(the error or None, what the cell printed and finally showed as text)."""
    from IPython.utils.capture import capture_output

    with capture_output() as io:
        result = ip.run_cell(source)
    shown = io.outputs[-1].data.get("text/plain", "") if io.outputs else ""
    return result.error_in_exec, io.stdout + shown


def cell_outputs(ip: Any, source: str) -> tuple[Any, list[Any]]:
    """(the error or None, the cell's outputs as the notebook keeps them: each display in its
    place, as its last update left it, with the metadata saved with it)."""
    from IPython.utils.capture import capture_output

    with capture_output() as io:
        result = ip.run_cell(source)
    kept: list[Any] = []
    place: dict[str, int] = {}
    for out in io.outputs:
        display_id = out.transient.get("display_id")
        if out.update and display_id in place:
            kept[place[display_id]] = out
            continue
        if display_id:
            place[display_id] = len(kept)
        kept.append(out)
    return result.error_in_exec, kept


def status_line(outputs: list[Any]) -> str:
    """The status line under the reply, as a plain-text frontend shows it."""
    plain = outputs[-1].data["text/plain"]
    assert "\n— " in plain or plain.startswith("— "), plain
    return plain.rsplit("— ", 1)[1]


def saved_record(outputs: list[Any]) -> dict[str, Any]:
    """The exchange the notebook keeps with the cell (what %chat restore reads back)."""
    from chatmagic.record import METADATA_KEY

    records = [o.metadata[METADATA_KEY] for o in outputs if METADATA_KEY in o.metadata]
    assert len(records) == 1, records
    return records[0]


def last_exchange() -> Any:
    from chatmagic._state import get_session

    return get_session().conversation().exchanges[-1]


def chat_posts(sb: Sandbox) -> list[Any]:
    return [r for r in sb.requests if r.path.endswith("/chat/completions")]


def test_ollama_preset_just_works(ip: Any, servers: Sandbox) -> None:
    error, shown = cell(ip, "%%chat -p ollama -m llama3.2\nhello")
    assert error is None and echo("hello", site="ollama") in shown
    assert chat_posts(servers)[-1].site == "ollama" and "authorization" not in chat_posts(servers)[-1].headers
    assert last_exchange().provider == "ollama"


def test_presets_are_listed_and_resolve(ip: Any) -> None:
    from chatmagic.providers import get_provider, list_providers

    names = {r["name"] for r in list_providers()}
    assert set(OPENAI_PRESETS) <= names
    assert get_provider("Ollama").url == "http://localhost:11434/v1"
    assert get_provider("lmstudio").label == "LM Studio"


def test_own_endpoint_with_its_key_variable_in_a_chain(
    ip: Any, servers: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatmagic._secrets import key_env_names

    monkeypatch.setenv("WORK_KEY", KEY)
    monkeypatch.delenv("OPENAI_API_KEY")
    # an address no test may reach: ChatMagics.base_urls moves it to the stand-in, as for any provider
    ip.run_line_magic(
        "config",
        "ChatMagics.endpoints = {'work': {'base_url': 'https://llm.example.com/v1', 'key_env': 'WORK_KEY'}}",
    )
    urls = {**ip.config.ChatMagics.base_urls, "work": servers.base_url("openai")}
    ip.run_line_magic("config", f"ChatMagics.base_urls = {urls!r}")
    assert "WORK_KEY" in key_env_names()
    servers.inject("openai", "http500")
    error, shown = cell(ip, "%%chat -p work,ollama -m llama3.2\nhello")
    assert error is None and echo("hello", site="ollama") in shown
    error, shown = cell(ip, "%%chat -p work -m llama3.2\nagain")
    assert error is None and echo("again", 2) in shown
    assert chat_posts(servers)[-1].headers["authorization"] == f"Bearer {KEY}"


def test_bad_endpoints_are_refused_in_one_line(ip: Any, servers: Sandbox) -> None:
    from chatmagic.errors import ConfigurationError
    from chatmagic.providers.endpoints import check_endpoints

    magics = ip.magics_manager.registry["ChatMagics"]
    for bad, words in (
        ({"openai": {"base_url": "http://x/v1"}}, "built-in provider"),
        ({"w": {"base_url": "ftp://x"}}, "must start with http"),
        ({"w": {"base_url": "http://x/v1", "key": "sk-1"}}, "unknown settings 'key'"),
        ({"w": {"base_url": "http://x/v1", "key_env": "sk-123 456"}}, "never goes into the configuration"),
        ({"w": {}}, "needs a base_url"),
    ):
        with pytest.raises(ConfigurationError, match=words) as info:
            check_endpoints(bad)
        assert "\n" not in str(info.value)
        ip.run_line_magic("config", f"ChatMagics.endpoints = {bad!r}")  # refused: the old value stays
        assert magics.endpoints == {}
    # a preset may be moved without repeating its name's settings
    assert check_endpoints({"ollama": {"base_url": "http://gpu-box:11434/v1"}})


def test_a_cut_reply_is_kept_as_cut(ip: Any, servers: Sandbox) -> None:
    from chatmagic.record import exchange_record

    error, _ = cell(ip, "%%chat -p openai\n[[words:6]] [[fault:length]]")
    assert error is None
    ex = last_exchange()
    assert ex.assistant.content == "w1 w2 w3 " and ex.finish_reason == "length" and ex.cut
    from chatmagic._state import get_session

    record = exchange_record(get_session().conversation(), ex)
    assert record["finish_reason"] == "length"


def test_reasoning_is_kept_but_never_sent_back(ip: Any, servers: Sandbox) -> None:
    error, _ = cell(ip, "%%chat -p openai\nhi [[fault:reasoning]]")
    assert error is None
    assert last_exchange().reasoning == reasoning_text("hi") and last_exchange().assistant.content == echo(
        "hi"
    )
    error, _ = cell(ip, "%%chat\nand then")
    sent = chat_posts(servers)[-1].json["messages"]
    assert all("Thinking about" not in json.dumps(m) for m in sent)
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]


def test_all_thinking_no_answer_says_so(ip: Any, servers: Sandbox) -> None:
    from chatmagic._state import get_session

    error, shown = cell(ip, "%%chat -p openai\nhi [[fault:reasoning_only]]")
    assert type(error).__name__ == "EmptyReplyError" and "token limit" in str(error)
    assert len(get_session().conversation()) == 0


@pytest.mark.parametrize(
    ("words", "mode", "text", "note"),
    [(6, "length", "w1 w2 w3 ", "cut: token limit"), (4, "content_filter", "w1 w2 ", "cut: content filter")],
)
def test_a_cut_reply_says_so_in_the_cell_and_its_saved_record(
    ip: Any, servers: Sandbox, words: int, mode: str, text: str, note: str
) -> None:
    error, outputs = cell_outputs(ip, f"%%chat -p openai\n[[words:{words}]] [[fault:{mode}]]")
    assert error is None
    status = status_line(outputs)
    assert status.startswith("openai · gpt-4o-mini · first text ") and f" · {note}" in status
    assert f'<div class="chatmagic-status">{status}</div>' in outputs[-1].data["text/html"]
    record = saved_record(outputs)
    assert record["assistant"] == text and record["finish_reason"] == mode
    # a whole reply says nothing of the kind
    error, outputs = cell_outputs(ip, "%%chat\n[[words:2]]")
    assert error is None and "cut:" not in status_line(outputs)
    assert saved_record(outputs)["finish_reason"] == "stop"


def test_usage_and_reasoning_show_in_the_cell_and_its_saved_record(ip: Any, servers: Sandbox) -> None:
    error, outputs = cell_outputs(ip, "%%chat -p openai\nhi [[fault:reasoning]]")
    assert error is None
    usage = last_exchange().usage
    thought = len(reasoning_text("hi").split())
    assert usage["reasoning_tokens"] == thought and usage["prompt_tokens"] > 0
    # this request's context (the server's count) apart from the reply's tokens (issue 19)
    assert status_line(outputs).endswith(
        f" · context {usage['prompt_tokens']:,} tokens · {usage['completion_tokens']:,} out · {thought} thinking"
    )
    record = saved_record(outputs)
    assert record["usage"] == usage and record["reasoning"] == reasoning_text("hi")
    assert record["finish_reason"] == "stop" and record["assistant"] == echo("hi")
    # a site that counts nothing: the status line says nothing of tokens, the record keeps none
    error, outputs = cell_outputs(ip, "%%chat -p chatgptt\nhi")
    assert error is None and "tokens" not in status_line(outputs)
    assert saved_record(outputs)["usage"] is None


def test_the_thinking_is_a_collapsed_block_above_the_reply(ip: Any, servers: Sandbox) -> None:
    import html

    error, outputs = cell_outputs(ip, "%%chat -p openai\nhi [[fault:reasoning]]")
    assert error is None
    shown = "".join(o.data.get("text/html", "") for o in outputs)
    thinking = reasoning_text("hi")
    block = (
        f'<details class="chatmagic-thinking"><summary>Thinking ({len(thinking)} characters)</summary>'
        f'<div class="chatmagic-thinking-text">{html.escape(thinking)}</div></details>'
    )
    assert shown.count('chatmagic-thinking"') == 1 and block in shown
    assert shown.index(block) < shown.index("<p>[openai] You said: hi</p>")
    # the plain text is the reply alone
    assert thinking not in outputs[-1].data["text/plain"]


def test_all_thinking_no_answer_claims_nothing_it_did_not_keep(ip: Any, servers: Sandbox) -> None:
    from chatmagic._state import get_session

    error, outputs = cell_outputs(ip, "%%chat -p openai\nhi [[fault:reasoning_only]]")
    assert type(error).__name__ == "EmptyReplyError"
    # the thinking stays in sight, above the status line, which says what became of the turn
    shown = "".join(o.data.get("text/html", "") for o in outputs)
    assert '<details class="chatmagic-thinking">' in shown and "Thinking about: hi." in shown
    assert status_line(outputs).endswith(" · failed · nothing was added")
    assert all("chatmagic" not in o.metadata for o in outputs) and len(get_session().conversation()) == 0
    # so the message does not claim the reasoning was kept anywhere
    assert "kept" not in str(error) and "max_tokens" in str(error)


def test_usage_is_asked_read_and_totalled(ip: Any, servers: Sandbox) -> None:
    cell(ip, "%%chat -p openai\n[[words:3]]")
    cell(ip, "%%chat\n[[words:4]] [[fault:litellm]]")
    from chatmagic._state import get_session

    usages = [ex.usage for ex in get_session().conversation().exchanges]
    assert [u["completion_tokens"] for u in usages] == [3, 4]
    error, shown = cell(ip, "%chat usage")
    assert error is None and "7 out" in shown and "over 2 replies" in shown


def test_usage_of_a_site_that_counts_nothing(ip: Any, servers: Sandbox) -> None:
    cell(ip, "%%chat -p chatgptt\nhi")
    assert last_exchange().usage is None and last_exchange().finish_reason is None
    error, shown = cell(ip, "%chat usage")
    assert error is None and "No reply of 'default' came with token counts" in shown


def test_options_from_cells_and_defaults(ip: Any, servers: Sandbox) -> None:
    ip.run_line_magic("config", "ChatMagics.options = {'temperature': 0.5, 'top_p': 0.9}")
    error, _ = cell(
        ip, "%%chat -p openai -o temperature=0.2 -o max_tokens=500 -o stop='[\"\\n\\n\"]' -o user=ann\nhi"
    )
    assert error is None
    body = chat_posts(servers)[-1].json
    assert body["temperature"] == 0.2 and body["top_p"] == 0.9 and body["max_tokens"] == 500
    assert body["stop"] == ["\n\n"] and body["user"] == "ann"
    # the defaults are for servers that take them: a web site's turn goes without them
    error, shown = cell(ip, "%%chat -p chatgptt\nhi")
    assert error is None and "[chatgptt] You said: hi" in shown


def test_an_option_a_web_site_cannot_take_is_one_line(ip: Any, servers: Sandbox) -> None:
    error, shown = cell(ip, "%%chat -p chatgptt -o temperature=0.2\nhi")
    assert (
        type(error).__name__ == "ConfigurationError" and "ChatGptt" in str(error) and "\n" not in str(error)
    )
    assert chat_posts(servers) == [] or all(r.site != "chatgptt" for r in chat_posts(servers))


@pytest.mark.parametrize("bad", ["-o temperature", "-o model=x", "-o =3"])
def test_bad_options_are_usage_errors(ip: Any, servers: Sandbox, bad: str) -> None:
    error, shown = cell(ip, f"%%chat -p openai {bad}\nhi")
    assert error is not None and "Error" in type(error).__name__


def test_unknown_model_400_lists_the_servers_models(ip: Any, servers: Sandbox) -> None:
    error, shown = cell(ip, "%%chat -p openai -m nope\nhi [[fault:litellm]]")
    assert "no model 'nope'" in str(error) and "Its models: gpt-4o, gpt-4o-mini, llama3.2." in str(error)


def test_chat_models(ip: Any, servers: Sandbox) -> None:
    from chatmagic._state import get_session

    error, shown = cell(ip, "%chat models ollama")
    assert error is None and "llama3.2" in shown and "gpt-4o-mini" in shown
    assert get_session().list_models("openai") == ["gpt-4o", "gpt-4o-mini", "llama3.2"]
    assert "gpt-4" in get_session().list_models("chatgptt")
    error, _ = cell(ip, "%chat models nosuch")
    assert error is not None


def test_dry_run_shows_options_and_attachments(ip: Any, servers: Sandbox) -> None:
    ip.user_ns["png"] = _png(8, 8)
    error, shown = cell(ip, "%%chat -p openai -o temperature=0.2 --attach png --dry-run\nhi")
    assert error is None and 'Options: {"temperature": 0.2}' in shown and "Attached: png (image/png" in shown
    assert chat_posts(servers) == []


def _png(width: int, height: int, fmt: str = "PNG") -> bytes:
    import io

    image = pytest.importorskip("PIL.Image")
    buf = io.BytesIO()
    image.new("RGB", (width, height), (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


def test_attach_a_figure_pil_image_bytes_path_and_out(ip: Any, servers: Sandbox, tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    image = pytest.importorskip("PIL.Image")
    ip.run_cell(
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nfig = plt.figure(); plt.plot([1, 2])"
    )
    ip.user_ns["pil"] = image.new("RGB", (10, 10))
    ip.user_ns["raw"] = _png(8, 8)
    jpeg = _png(8, 8, "JPEG")
    ip.user_ns["jpeg"] = jpeg
    path = tmp_path / "pic.png"
    path.write_bytes(_png(8, 8))
    ip.user_ns["where"] = str(path)
    error, shown = cell(
        ip,
        "%%chat -p openai --attach fig --attach pil --attach raw --attach jpeg --attach where\nwhat is it?",
    )
    assert error is None and "Images: 5." in shown
    parts = chat_posts(servers)[-1].json["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["text"] + ["image_url"] * 5
    urls = [p["image_url"]["url"] for p in parts[1:]]
    assert all(u.startswith("data:image/png;base64,") for i, u in enumerate(urls) if i != 3)
    # JPEG bytes go as they are, as JPEG
    assert urls[3] == "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
    # Out[n] holding an image
    from IPython.display import Image

    ip.user_ns["Out"][99] = Image(data=_png(4, 4))
    error, shown = cell(ip, "%%chat -p openai --attach Out[99]\nand this?")
    assert error is None and "Images: 1." in shown
    ip.run_cell("plt.close('all')")


def test_attach_refusals(ip: Any, servers: Sandbox) -> None:
    ip.user_ns["text"] = "not an image at all"
    ip.user_ns["png"] = _png(8, 8)
    for source in ("--attach nothing_here", "--attach text", "--attach Out[12345]"):
        error, _ = cell(ip, f"%%chat -p openai {source}\nhi")
        assert error is not None and "--attach" in str(error)
    error, _ = cell(ip, "%%chat -p chatgptt --attach png\nhi")
    assert type(error).__name__ == "ConfigurationError" and "image" in str(error)
    assert all(r.site != "chatgptt" for r in chat_posts(servers))


def test_a_large_image_is_downscaled(servers: Sandbox) -> None:
    from chatmagic.attachments import MAX_IMAGE_SIDE, attachment_from

    big = attachment_from(_png(3000, 1000), "big")
    assert "downscaled from 3000×1000" in big.note
    pil = pytest.importorskip("PIL.Image")
    import io

    with pil.open(io.BytesIO(big.data)) as opened:
        assert max(opened.size) == MAX_IMAGE_SIDE


def test_an_oversized_image_without_pillow_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from chatmagic import attachments
    from chatmagic.errors import ConfigurationError

    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setattr(attachments, "MAX_IMAGE_BYTES", 50)
    with pytest.raises(ConfigurationError, match="pip install pillow"):
        attachments.attachment_from(b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "big")
    small = attachments.attachment_from(b"\x89PNG\r\n\x1a\n", "small")
    assert small.note == "" and small.mime == "image/png"


def test_records_restore_old_and_new(tmp_path: Any) -> None:
    from chatmagic.record import saved_exchanges

    old = {"user": "hi", "assistant": "there", "provider": "openai", "model": "m"}
    new = {
        **old,
        "finish_reason": "length",
        "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        "reasoning": "hmm",
    }
    bad = {**old, "usage": {"prompt_tokens": "3"}}
    outputs = [
        {"output_type": "display_data", "data": {}, "metadata": {"chatmagic": r}} for r in (old, new, bad)
    ]
    nb = {"cells": [{"cell_type": "code", "outputs": outputs}]}
    found, invalid = saved_exchanges(nb)
    assert invalid == 1
    assert found[0].exchange.finish_reason is None and found[0].exchange.usage is None
    assert found[1].exchange.cut and found[1].exchange.usage == {"prompt_tokens": 3, "completion_tokens": 2}
    assert found[1].exchange.reasoning == "hmm"
