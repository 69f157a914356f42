"""Fault names: every failure a client of the sites may meet."""

from __future__ import annotations

__all__ = ["FAULTS", "MODES", "PAGE_FAULTS", "UnknownFault", "parse_faults"]

FAULTS: dict[str, str] = {
    "http500": "HTTP 500 with a small HTML body",
    "http429": "HTTP 429 with Retry-After: 1 and a JSON body",
    "http503": "HTTP 503 with a small HTML body",
    "cloudflare": "HTTP 403 Cloudflare 'Just a moment...' challenge page (page fetches too)",
    "bad_token": "the nonce check fails for this request",
    "no_tokens": "the chat page (or start_session) carries no tokens",
    "service_error": "the plugin reports 'Missing API Setting' (openai: an error object mid-stream)",
    "consent": "success whose reply is the consent-box refusal 'Du musst das Kästchen anklicken!'",
    "broken_line": "a 'data: {not json' line mid-stream; truncated JSON for JSON answers",
    "wrong_content_type": "200 text/html maintenance page instead of the answer",
    "missing_field": "an answer or event lacking its required field",
    "drop": "part of the reply, then the connection is aborted",
    "stall": "the first piece, then silence for stall_seconds, then the connection closes",
    "slow_first_byte": "wait slow_seconds before the response headers",
    "slow_stream": "wait slow_chunk_seconds between pieces",
    "empty": "an empty reply",
    "long_line": "the reply carries one 200 KiB piece (a single line over 128 KiB)",
    "crlf": "CRLF line endings in streams",
    "cr": "bare CR line endings in streams",
    "tiny_writes": "the body goes out in 3-byte writes (cutting lines and UTF-8 characters)",
    "no_end": "the stream ends with a plain JSON object instead of its end marker",
}

#: How real OpenAI-compatible servers differ from OpenAI's API (docs/sandbox.md, "Modes").
#: Only the OpenAI-compatible sites heed them; chosen like faults, and they combine.
MODES: dict[str, str] = {
    "length": 'the reply stops halfway with finish_reason "length" (the token limit)',
    "content_filter": 'the reply stops halfway with finish_reason "content_filter"',
    "reasoning": "delta.reasoning_content pieces (the model thinking) before the content",
    "reasoning_only": 'only reasoning, then finish_reason "length": every token spent thinking',
    "reasoning_field": "reasoning goes in delta.reasoning instead of delta.reasoning_content",
    "refusal": "the model refuses: delta.refusal pieces and no content",
    "tool_calls": 'the reply is only a call of the tool lookup, tools offered or not (finish_reason "tool_calls")',
    "split_data": "each event's JSON spread over several data: lines (one event, joined by LF)",
    "usage_no_choices": "the usage chunk has no choices key at all",
    "usage_empty_delta": 'the usage chunk\'s choices is [{"index": 0, "delta": {}}] (LiteLLM)',
    "vllm_error": 'vLLM\'s {"object": "error", ...} instead of the next chunk, mid-stream',
    "model_400": "an unknown model is an HTTP 400, not a 404 (LiteLLM, llama-server's router)",
    "litellm": (
        "LiteLLM's proxy: no finish_reason on non-final chunks, its usage chunk as "
        '[{"index": 0, "delta": {}}], an unknown model a 400 in its words, error codes as text'
    ),
    "llama_server": (
        "llama.cpp's llama-server (router): the role chunk's content null, a timings object, "
        "integer error codes, an unknown model a 400, its tool calls, token endpoints and window"
    ),
    "vllm": (
        "vLLM's shapes on any site: tool call ids chatcmpl-tool-<hex>, a call's name and first "
        "argument piece in one delta, its window error (the vllm site does this by itself)"
    ),
    "tool_args_whole": "each tool call's arguments in one piece instead of fragments",
    "no_tools": (
        "the server takes no tools: a request with tools gets llama-server's 500 'tools param "
        "requires --jinja flag', Ollama's or vLLM's 400, or OpenAI's unsupported_parameter"
    ),
    "llama_cpp_python": (
        "llama-cpp-python: 401 as {\"detail\": ...}, ': ping - <date>' comments in the stream, "
        "any model name accepted"
    ),
}

# Faults that also hit page loads and start_session; the rest only hit chat requests.
PAGE_FAULTS = frozenset({"cloudflare", "http500", "http429", "http503", "slow_first_byte", "no_tokens"})


class UnknownFault(ValueError):
    """A fault name the stand-in does not know."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        valid = ", ".join(sorted({*FAULTS, *MODES}))
        super().__init__(f"Unknown sandbox fault(s): {', '.join(names)}. Valid names: {valid}.")


def parse_faults(*specs: str | None) -> set[str]:
    """Comma-separated lists of faults and modes → a set of names; raises UnknownFault."""
    names = {n.strip() for spec in specs if spec for n in spec.split(",") if n.strip()}
    unknown = sorted(names - FAULTS.keys() - MODES.keys())
    if unknown:
        raise UnknownFault(unknown)
    return names
