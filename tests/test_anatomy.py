"""The glass box: a request's parts, total, window, share, cost and decision, before anything is sent."""

from __future__ import annotations

from typing import Any

import aiohttp

from chatmagic.anatomy import build, image_part, left_out, part, survey
from chatmagic.budget import Price
from chatmagic.providers.window import Window, forget
from chatmagic.sandbox import Sandbox, SandboxSettings
from chatmagic.tokens import IMAGE_TOKENS, Count, count_messages

SYSTEM = "You are a careful data scientist. Answer briefly."
EARLIER = ("How do I read a CSV?", "Use `pd.read_csv('data.csv')`.")
CONTEXT = "df: DataFrame 1,000 x 3, columns a (int64), b (float64), c (object)"
PROMPT = "Plot column b against a."


def request(model: str) -> tuple[list[Any], list[dict[str, str]]]:
    parts = [
        part("system", "system prompt", SYSTEM, model),
        left_out("exchange", "exchange 1 (cell 2)", 48_000, "history budget"),
        part("exchange", "exchange 2 (cell 3)", "".join(EARLIER), model),
        part("context", "--context vars", CONTEXT, model, note="cut to 2,000 chars"),
        part("prompt", "prompt", PROMPT, model),
    ]
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": EARLIER[0]},
        {"role": "assistant", "content": EARLIER[1]},
        {"role": "user", "content": f"{CONTEXT}\n\n{PROMPT}"},
    ]
    return parts, messages


def test_an_openai_model_counted_offline_with_its_window_and_cost() -> None:
    parts, messages = request("gpt-4o")
    box = build(
        "openai",
        "gpt-4o",
        parts,
        messages=messages,
        window=Window(128_000, "config"),
        price=Price(2.5, 10),
        max_output_tokens=1_000,
    )
    assert box.total == count_messages(messages, "gpt-4o") and box.total.how == "bpe"
    assert [p.label for p in box.sent_parts] == [
        "system prompt",
        "exchange 2 (cell 3)",
        "--context vars",
        "prompt",
    ]
    assert box.overhead == box.total.tokens - sum(p.tokens.tokens for p in box.sent_parts if p.tokens)
    assert box.overhead > 0  # 3 per message + 3, and the line between context and prompt
    assert box.share == box.total.tokens / 128_000
    assert box.cost is not None and box.cost.usd == (box.total.tokens * 2.5 + 1_000 * 10) / 1e6
    assert box.decision is not None and box.decision.fits
    shown = box.text()
    for seen in (
        "openai · gpt-4o: the request as it will be sent (nothing sent)",
        "left out: exchange 1 (cell 2) (history budget)",
        "--context vars (cut to 2,000 chars)",
        "48,000",
        "offline BPE o200k_base + OpenAI's cookbook chat overhead",
        "context window: 128,000 tokens (config); this request fills",
        "estimated cost: $0.01",
    ):
        assert seen in shown, shown
    assert box.status == f"{box.total.tokens:,} of 128,000 tokens (under 0.1%)"
    half = build("openai", "gpt-4o", parts, messages=messages, window=Window(2 * box.total.tokens, "config"))
    assert half.status == f"{box.total.tokens:,} of {2 * box.total.tokens:,} tokens (50.0%)"


def test_a_model_with_no_known_tokenizer_is_shown_as_an_estimate() -> None:
    parts, messages = request("llama3.2")
    box = build("ollama", "llama3.2", parts, messages=messages)
    assert box.total.how == "≈" and str(box.total).startswith("≈")
    assert box.share is None and box.status == f"{box.total} tokens in"
    shown = box.text()
    assert "≈ an estimate: characters / 4" in shown and "context window: unknown" in shown
    assert "estimated cost" not in shown  # no price, no cost


async def _usage(sb: Sandbox, site: str, messages: list[dict[str, str]]) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{sb.base_url(site)}/chat/completions", json={"model": "llama3.2", "messages": messages}
        ) as resp,
    ):
        return int((await resp.json())["usage"]["prompt_tokens"])


async def test_against_a_llamacpp_server_the_total_is_its_own_count(sandbox: Sandbox) -> None:
    forget()
    parts, messages = request("llama3.2")
    box = await survey("llamacpp", "llama3.2", parts, messages, base_url=sandbox.base_url("llamacpp"))
    assert box.total == Count(await _usage(sandbox, "llamacpp", messages), "server")
    assert "the server's own tokenizer (exact)" in box.text()
    assert "context window: 32,768 tokens (llama.cpp /props)" in box.text()


async def test_a_request_over_the_window_is_refused_before_sending() -> None:
    forget()
    async with Sandbox(SandboxSettings(context_window=40)) as sb:
        parts, messages = request("llama3.2")
        box = await survey(
            "vllm", "llama3.2", parts, messages, base_url=sb.base_url("vllm"), configured_window=10**6
        )
        assert box.total.how == "server" and box.window == Window(40, "vLLM /v1/models", "vllm")
        assert box.decision is not None and box.decision.verdict == "cannot fit"
        assert "%chat compact" in box.decision.message and "cannot fit:" in box.text()
        assert box.share is not None and box.share > 1
        # deciding sent no chat request: only the window and the count were asked
        assert not [r for r in sb.requests if r.path.endswith("/chat/completions")]


async def test_a_web_sites_provider_has_the_configured_window_and_an_offline_count() -> None:
    parts, messages = request("gpt-4o")
    box = await survey("chatgptt", "gpt-4o", parts, messages, configured_window=8_000)
    assert box.window == Window(8_000, "config") and box.total == count_messages(messages, "gpt-4o")
    unknown = await survey("chatgptt", "gpt-4o", parts, messages)
    assert unknown.window.tokens is None


def test_a_budget_over_which_the_turn_asks() -> None:
    parts, messages = request("gpt-4o")
    box = build("openai", "gpt-4o", parts, messages=messages, max_input_tokens=10)
    assert box.decision is not None and box.decision.verdict == "over budget"
    assert "over budget: This turn is over budget:" in box.text()


def test_without_messages_the_total_is_the_sum_of_the_parts() -> None:
    parts, _ = request("gpt-4o")
    box = build("openai", "gpt-4o", parts)
    assert box.total.tokens == sum(p.tokens.tokens for p in parts if p.tokens) and box.overhead == 0


def test_a_plot_sent_as_an_image_is_counted_as_an_estimate() -> None:
    parts, _ = request("gpt-4o")
    plot = image_part("plot 1 (cell 5)", 48_213, note="downscaled to 1024 px")
    box = build("openai", "gpt-4o", [*parts, plot])
    assert plot.tokens == Count(IMAGE_TOKENS, "≈") and box.total.how == "≈"
    assert "plot 1 (cell 5) (downscaled to 1024 px)" in box.text() and "≈765" in box.text()
