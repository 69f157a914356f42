"""Token counts before sending against the truth, and the time counting adds to a turn.

Realistic requests are built from this repository's own text (README and docs as prose,
chatmagic's modules as code, a few lines in French, German, Japanese and with emoji): a
system prompt, a conversation that grows exchange by exchange up to the default history
budget (40,000 characters), and a prompt. Nothing goes beyond 127.0.0.1.

1. **Server tokenizer** (the stand-in, ``chatmagic.sandbox``): for each request,
   :func:`chatmagic.providers.window.server_count` (llama.cpp ``/apply-template`` +
   ``/tokenize``; vLLM ``/tokenize`` with messages) against the ``usage.prompt_tokens`` of
   the chat answer to the same request. Goal: exact. The "≈" estimate (chars / 4) is shown
   against it too (the stand-in's tokenizer is a toy cutting words: that column says how
   far an estimate can be from a tokenizer it knows nothing about, not how real models count).
2. **Offline BPE** (``bpe-openai``): its vocabulary files hashed against the SHA-256 that
   ``tiktoken`` expects of OpenAI's (when ``tiktoken`` is importable: it is not a dependency;
   ``pip install tiktoken`` for this check, it is given the files and downloads nothing);
   its token ids against tiktoken's on every part; the OpenAI cookbook's example (124 tokens
   for gpt-4o, 129 for gpt-4, as the API reported); and each request's count (contents +
   the cookbook's chat overhead) against the reference count (tiktoken's BPE + the same
   overhead). Goal: within 3%. The "≈" estimate against the BPE, for scale.
3. **Time**: the first count in a fresh process (importing the library and reading a
   vocabulary: paid once, never at ``%load_ext``); then, warm, the median time per turn of
   counting a request at the default budget, whole (``count_messages``) and part by part
   as the glass box does. Goal: under 5 ms per turn without a server tokenizer call.

    .venv/bin/python bench/token_estimate.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

from chatmagic.providers.window import discover_window, forget, server_count
from chatmagic.sandbox import Sandbox

# private: the per-text memo (cleared to time cold counts) and the library's encoding
from chatmagic.tokens import (
    REPLY_PRIMER,
    TOKENS_PER_MESSAGE,
    _bpe_len,
    _encoding,
    count_messages,
    count_text,
    encoding_for,
)

ROOT = Path(__file__).resolve().parent.parent
SYSTEM = "You are a careful assistant for data scientists working in Jupyter. Answer briefly, with code."
MULTILINGUAL = (
    "Pourquoi la fonction renvoie-t-elle une valeur différente après le redémarrage du noyau ? "
    "Ich möchte die Spalten zusammenführen, ohne die Indizes zu verlieren. "
    "このデータフレームの欠損値を平均値で埋める方法を教えてください。 "
    "Is 🐍 + 📊 = ❤️? Ça dépend… ¿Verdad? Ω ≈ ∑ x² — naïve café, Zürich, Ålesund."
)
COOKBOOK = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more time to touch base on opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]


def chunks() -> list[str]:
    """Pieces of realistic text: paragraphs of prose and runs of code, 200 to 3,000 characters."""
    texts = [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "chatmagic").glob("*.py")),
    ]
    out: list[str] = []
    for path in texts:
        text = path.read_text(encoding="utf-8")
        step = 2400 if path.suffix == ".py" else 1500
        out += [
            text[i : i + step]
            for i in range(0, min(len(text), 12_000), step)
            if len(text[i : i + step]) > 200
        ]
    return out


def requests(limit_chars: int = 40_000) -> list[list[dict[str, str]]]:
    """Requests of a conversation growing to ``limit_chars`` of history, one per turn."""
    pieces = chunks()
    history: list[dict[str, str]] = []
    made: list[list[dict[str, str]]] = []
    for i in range(0, len(pieces) - 1, 2):
        question = pieces[i][:600] + ("\n" + MULTILINGUAL if i % 6 == 0 else "")
        prompt = {"role": "user", "content": f"About this:\n\n{question}\n\nWhat does it do?"}
        made.append([{"role": "system", "content": SYSTEM}, *history, prompt])
        history += [prompt, {"role": "assistant", "content": pieces[i + 1]}]
        if sum(len(m["content"]) for m in history) > limit_chars:
            break
    return made


def chat_usage(base: str, messages: list[dict[str, str]]) -> int:
    body = json.dumps({"model": "llama3.2", "messages": messages}).encode()
    req = urllib.request.Request(f"{base}/chat/completions", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return int(json.load(resp)["usage"]["prompt_tokens"])


def server_section(reqs: list[list[dict[str, str]]]) -> None:
    print("1. Server tokenizer (the stand-in) vs its usage.prompt_tokens")
    sb = Sandbox().start_in_thread()
    try:
        for site in ("llamacpp", "vllm"):
            forget()
            base = sb.base_url(site)
            window = asyncio.run(discover_window(base, "llama3.2"))
            diffs: list[int] = []
            est_err: list[float] = []
            times: list[float] = []
            for messages in reqs:
                started = time.perf_counter()
                counted = asyncio.run(server_count(base, "llama3.2", window.kind, messages))
                times.append(time.perf_counter() - started)
                truth = chat_usage(base, messages)
                assert counted is not None
                diffs.append(counted - truth)
                estimate = count_messages(messages, "llama3.2").tokens
                est_err.append((estimate - truth) / truth)
            print(
                f"   {site:9} {len(reqs)} requests: server count - usage: min {min(diffs)}, max {max(diffs)} "
                f"(exact: {all(d == 0 for d in diffs)}); "
                f"≈ chars/4 estimate vs usage: mean {statistics.mean(est_err):+.1%}, "
                f"worst {max(est_err, key=abs):+.1%}; server call median {statistics.median(times) * 1e3:.1f} ms"
            )
    finally:
        sb.stop()


#: OpenAI's published vocabularies and the SHA-256 that tiktoken expects of each
PUBLISHED = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
VOCAB_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"


def reference_encoding(name: str, cache: Path) -> Any | None:
    """tiktoken itself over bpe-openai's vocabulary file, if that file is OpenAI's (by hash).

    tiktoken looks in ``TIKTOKEN_CACHE_DIR`` for a file named by the SHA-1 of its URL before
    downloading; the file is put there only once its hash matches, so nothing is downloaded.
    """
    try:
        import tiktoken
    except ImportError:
        return None
    import bpe_openai

    raw = gzip.decompress((Path(bpe_openai.__file__).parent / "data" / f"{name}.tiktoken.gz").read_bytes())
    same = hashlib.sha256(raw).hexdigest() == PUBLISHED[name]
    print(f"   {name}: bpe-openai's vocabulary file is OpenAI's (the SHA-256 tiktoken expects): {same}")
    if not same:
        return None
    (cache / hashlib.sha1(VOCAB_URL.format(name).encode()).hexdigest()).write_bytes(raw)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    return tiktoken.get_encoding(name)


def reference_count(enc: Any, messages: list[dict[str, str]]) -> int:
    # the cookbook's num_tokens_from_messages, with tiktoken as the tokenizer
    total = REPLY_PRIMER
    for m in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in m.items():
            total += len(enc.encode_ordinary(value)) + (1 if key == "name" else 0)
    return total


def bpe_section(reqs: list[list[dict[str, str]]]) -> None:
    print("2. Offline BPE (bpe-openai) vs the reference")
    for model, api in (("gpt-4o", 124), ("gpt-4o-mini", 124), ("gpt-4", 129), ("gpt-3.5-turbo", 129)):
        print(
            f"   cookbook example, {model}: {count_messages(COOKBOOK, model).tokens} (the API reported {api})"
        )
    cache = Path(tempfile.mkdtemp(prefix="tiktoken-"))
    for model in ("gpt-4o", "gpt-4"):
        name = encoding_for(model)
        assert name is not None
        enc = reference_encoding(name, cache)
        if enc is None:
            print("   tiktoken not importable: the reference comparison is skipped (pip install tiktoken)")
            return

        ours = _encoding(name)
        parts = [m["content"] for r in reqs for m in r]
        same_ids = sum(ours.encode_ordinary(p) == enc.encode_ordinary(p) for p in parts)
        errors, est = [], []
        for messages in reqs:
            truth = reference_count(enc, messages)
            errors.append((count_messages(messages, model).tokens - truth) / truth)
            # what a model with no known tokenizer gets: the same request, estimated
            est.append((count_messages(messages, "an-unknown-model").tokens - truth) / truth)
        print(
            f"   {model} ({name}): parts with identical ids {same_ids}/{len(parts)}; request count vs reference: "
            f"worst {max(errors, key=abs):+.2%} over {len(reqs)} requests "
            f"({reference_count(enc, reqs[-1]):,} tokens the largest); "
            f"≈ chars/4 vs BPE: mean {statistics.mean(est):+.1%}, worst {max(est, key=abs):+.1%}"
        )


def time_section(reqs: list[list[dict[str, str]]], repeat: int) -> None:
    print("3. Time")
    code = (
        "import time, warnings; t = time.perf_counter()\n"
        "from chatmagic.tokens import count_text\n"
        "count_text('hello', 'gpt-4o'); a = time.perf_counter()\n"
        "count_text('hello', 'gpt-4'); b = time.perf_counter()\n"
        "print(f'{(a - t) * 1e3:.0f} {(b - a) * 1e3:.0f}')"
    )
    first = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    print(
        f"   first count in a fresh process: {first[0]} ms (import + o200k_base); cl100k_base then {first[1]} ms"
    )
    largest = reqs[-1]
    chars = sum(len(m["content"]) for m in largest)

    def glass_box(messages: list[dict[str, str]]) -> float:
        started = time.perf_counter()
        for m in messages:  # each part, then the whole (as anatomy.build does)
            count_text(m["content"], "gpt-4o")
        count_messages(messages, "gpt-4o")
        return time.perf_counter() - started

    cold, turns = [], []
    for _ in range(repeat):
        _bpe_len.cache_clear()  # nothing remembered: every message counted afresh
        cold.append(glass_box(largest))
    _bpe_len.cache_clear()
    turns = [glass_box(messages) for messages in reqs]  # a conversation, turn after turn
    print(
        f"   the glass box of a request of {len(largest)} messages / {chars:,} chars (gpt-4o), "
        f"every message counted afresh: median {statistics.median(cold) * 1e3:.2f} ms of {repeat}"
    )
    print(
        f"   per turn over the conversation's {len(reqs)} turns (earlier messages remembered): "
        f"median {statistics.median(turns) * 1e3:.2f} ms, max {max(turns) * 1e3:.2f} ms (goal under 5 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="Timing repetitions (median shown).")
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)
    reqs = requests()
    print(f"{len(reqs)} requests, {sum(len(m['content']) for m in reqs[-1]):,} characters the largest")
    server_section(reqs)
    bpe_section(reqs)
    time_section(reqs, args.repeat)


if __name__ == "__main__":
    main()
