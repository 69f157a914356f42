"""How often a request begins with the previous request's messages, under a history budget that binds.

A provider's prompt cache matches the longest prefix a request shares with an earlier one:
when the history budget drops the oldest exchange, everything after the system prompt
changes and the cache misses. Over ``--turns`` turns (50) of a conversation whose
exchanges read like a real one's (a question of 80 to 800 characters, a Markdown reply of
600 to 4,000 from ``bench/_reply_text.py``, seeded), each request is built as
``ChatSession._context`` builds it (the system prompt, then each earlier exchange kept
as a user and an assistant message, then the prompt), with two rules:

- **the old rule** (main before issue 19): :func:`chatmagic.session.within_budget`, the
  newest exchanges that fit;
- **the step rule**: :func:`chatmagic.trim.stable_window` (drop down to ``low_water`` of
  the budget when over it), at a few low-water marks;
- **as sent**: what :func:`chatmagic.session.sent.sent_before` keeps now (the
  function ``ChatSession.prepare`` calls, so the figure is what a turn sends).

For each, over the turns after the first: the share of requests whose messages begin
with the previous request's messages (a turn where a step dropped exchanges counts as a
miss; goal at least 90%), the share of all characters sent that lie in such a shared prefix
(what a prefix cache can hit), the steps taken, and the mean characters of history sent
(the other side: a step rule sends less history on average), and the characters per
request outside a shared prefix (what a cache cannot serve: what is paid in full). Each figure is the mean over
``--seeds`` conversations, at the default budget (40,000 characters) and a tighter one.

    .venv/bin/python bench/prefix_stability.py [--turns 50] [--seeds 5] [--reply-chars 600 4000]

Measured after wiring (issue 19; 5 seeds, 50 turns): at the default budget the session's
requests extend the previous one in 91.4% of turns (old rule: 37.6%), at 16,000 chars 77.6%
(old: 21.6%).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _reply_text import markdown_reply  # noqa: E402

from chatmagic.session import (  # noqa: E402
    DEFAULT_MAX_HISTORY_CHARS,
    Conversation,
    Exchange,
    Message,
    within_budget,
)
from chatmagic.session.sent import sent_before  # noqa: E402
from chatmagic.trim import DEFAULT_LOW_WATER, stable_window  # noqa: E402

SYSTEM = "You are a careful assistant for data scientists working in Jupyter. Answer briefly, with code."
Rule = Callable[[list[Exchange], int], list[Exchange]]


def conversation(turns: int, seed: int, reply_chars: tuple[int, int]) -> list[Exchange]:
    rng = random.Random(seed)
    made = []
    for i in range(turns):
        question = markdown_reply(rng.randint(80, 800), seed=seed * 1000 + i)
        reply = markdown_reply(rng.randint(*reply_chars), seed=seed * 1000 + i + 500)
        made.append(Exchange(Message("user", question), Message("assistant", reply), "openai", "gpt-4o"))
    return made


def request(rule: Rule, earlier: list[Exchange], prompt: str, budget: int) -> list[tuple[str, str]]:
    # as ChatSession._context: system prompt, the kept exchanges, then the prompt
    messages = [("system", SYSTEM)]
    for ex in rule(earlier, budget):
        messages += [("user", ex.user.content), ("assistant", ex.assistant.content)]
    return [*messages, ("user", prompt)]


def as_sent(earlier: list[Exchange], budget: int) -> list[Exchange]:
    """The exchanges a turn sends before its prompt under ``budget`` (``sent_before``)."""
    conv = Conversation("bench")
    conv.adopt(list(earlier))
    _, sent, total, _ = sent_before(conv, None, SYSTEM, [], None, budget)
    return earlier[total - sent :]


def measure(rule: Rule, exchanges: list[Exchange], budget: int) -> tuple[float, float, int, float, float]:
    """Share of requests extending the previous one, share of chars in a shared prefix, steps,
    mean history sent, mean characters per request outside a shared prefix (what a cache cannot serve)."""
    previous: list[tuple[str, str]] | None = None
    extended = steps = 0
    shared_chars = all_chars = 0
    history: list[int] = []
    for t, ex in enumerate(exchanges):
        messages = request(rule, exchanges[:t], ex.user.content, budget)
        history.append(sum(len(c) for _, c in messages[1:-1]))
        if previous is not None:
            same = messages[: len(previous)] == previous
            extended += same
            steps += not same
            common = 0
            for a, b in zip(messages, previous, strict=False):
                if a != b:
                    break
                common += len(a[1])
            shared_chars += common
            all_chars += sum(len(c) for _, c in messages)
        previous = messages
    pairs = len(exchanges) - 1
    uncached = (all_chars - shared_chars) / pairs
    return extended / pairs, shared_chars / all_chars, steps, statistics.mean(history), uncached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=50, help="Turns per conversation.")
    parser.add_argument("--seeds", type=int, default=5, help="Conversations (seeds) averaged.")
    parser.add_argument(
        "--reply-chars",
        type=int,
        nargs=2,
        default=(600, 4000),
        help="The range of a reply's length in characters.",
    )
    args = parser.parse_args()
    convs = [conversation(args.turns, seed, tuple(args.reply_chars)) for seed in range(args.seeds)]
    mean_chars = statistics.mean(len(e.user.content) + len(e.assistant.content) for c in convs for e in c)
    print(
        f"{args.seeds} conversations of {args.turns} turns, {mean_chars:,.0f} chars per exchange on average "
        f"({mean_chars * args.turns:,.0f} in all: the budget binds)"
    )
    rules: list[tuple[str, Rule]] = [
        ("old: session.within_budget", within_budget),
        ("as sent: session.sent_before", as_sent),
    ]
    for low in (0.3, 0.4, 0.5, 0.6):
        name = f"steps, low water {low:.0%}" + (" *" if low == DEFAULT_LOW_WATER else "")
        rules.append((name, lambda ex, b, low=low: stable_window(ex, b, low_water=low)))
    for budget in (DEFAULT_MAX_HISTORY_CHARS, 16_000):
        print(f"\nhistory budget {budget:,} chars (* the default low water)")
        print(
            f"  {'rule':28} {'requests extending the previous':>32} {'chars in a shared prefix':>25}"
            f" {'steps':>6} {'history sent (mean)':>20} {'chars not shared (mean)':>24}"
        )
        for name, rule in rules:
            results = [measure(rule, c, budget) for c in convs]
            share, chars, steps, history, uncached = (
                statistics.mean(r[i] for r in results) for i in range(5)
            )
            print(
                f"  {name:28} {share:>32.1%} {chars:>25.1%} {steps:>6.1f} {history:>20,.0f} {uncached:>24,.0f}"
            )


if __name__ == "__main__":
    main()
