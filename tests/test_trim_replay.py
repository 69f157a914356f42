"""The history budget's choice kept between turns (issue 15, "A turn that costs the same at
exchange 1,000 as at exchange 1"): each turn steps once for its new exchange instead of
replaying the whole conversation, and still chooses what the full replay
(:func:`chatmagic.trim.stable_window`) chooses, after a re-run cell, a restore, a compaction,
new secrets, ``--new`` and a new budget."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from chatmagic import compact
from chatmagic.sandbox import Sandbox
from chatmagic.session import ChatSession, Conversation, Exchange, Message, TurnOptions, fingerprint
from chatmagic.trim import Replay, stable_start, stable_window

SITE = "opchatgpts"
TOKEN_ENV = "MY_REPLAY_TOKEN"


@pytest.fixture
def session(sandbox_thread: Sandbox) -> Iterator[ChatSession]:
    s = ChatSession()
    s.retries = 0
    s.base_urls[SITE] = sandbox_thread.base_url(SITE)
    s.max_history_chars = 1500
    yield s
    s.close()


def full_replay(session: ChatSession, key: str | None) -> list[Exchange]:
    """What the turn with ``key`` would send, replayed from the first exchange (the rule itself)."""
    conv = session.conversation()
    return stable_window(conv.earlier(conv.replaced_key(key)), session.max_history_chars)


def send(session: ChatSession, text: str, key: str) -> None:
    """One turn, after checking that it sends what the full replay chooses."""
    expected = full_replay(session, key)
    turn = session.prepare(text, options=TurnOptions(provider=SITE), key=key)
    conv = session.conversation()
    assert turn.history_sent == len(expected), (turn.history_sent, len(expected), len(conv))
    # what is sent, and its fingerprint, as made from nothing (the previous turn's is reused)
    system = [{"role": "system", "content": conv.system}] if conv.system else []
    history = [m.as_dict() for ex in expected for m in (ex.user, ex.assistant)]
    assert turn.messages[:-1] == system + history
    assert turn.context_hash == fingerprint(turn.messages[:-1])
    session.start(turn)
    turn.result(30)


def question(rng: random.Random, i: int) -> str:
    return f"question {i} " + "words " * rng.randint(0, 60)


def test_the_replay_kept_answers_as_the_full_replay_at_every_length() -> None:
    rng = random.Random(3)
    sizes = [rng.randint(50, 4000) for _ in range(300)]
    for budget, low in ((10_000, 0.3), (10_000, 0.8), (0, 0.3), (2500, 1.0)):
        replay = Replay(budget, low)
        for n, size in enumerate(sizes, 1):
            replay.add(size)
            assert replay.start(n) == stable_start(sizes[:n], budget, low)
        # an exchange changed: cut there, measured again, the same answers as from scratch
        for cut in (250, 17, 0):
            sizes[cut] = rng.randint(50, 4000)
            replay.cut(cut)
            for size in sizes[cut:]:
                replay.add(size)
            assert [replay.start(n) for n in range(len(sizes) + 1)] == [
                stable_start(sizes[:n], budget, low) for n in range(len(sizes) + 1)
            ]


def test_each_turn_chooses_what_the_full_replay_does_across_reruns_restores_compactions_and_secrets(
    session: ChatSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(11)
    conv = session.conversation()
    for i in range(40):
        send(session, question(rng, i), f"cell:{i}")
    # a re-run cell in the middle: its exchange replaced (shorter or longer), the later ones kept
    for i in (30, 5, 38):
        send(session, question(rng, 100 + i), f"cell:{i}")
    send(session, "after the re-runs", "cell:40")
    # a cell's text asked again later (no cell id): a new exchange, the older one no longer "this cell"
    send(session, "the same text", "text:same")
    send(session, "between", "cell:between")
    send(session, "the same text", "text:same")
    assert [ex.key for ex in conv.exchanges].count("text:same") == 1
    assert conv.keyed("text:same") is conv.exchanges[-1]
    # a system prompt given, then changed
    send(session, "a system prompt", "cell:s1")
    conv.system = "Be brief."
    send(session, "with it", "cell:s2")
    send(session, "and again", "cell:s3")
    conv.system = "Be briefer."
    send(session, "another", "cell:s4")
    # a restore merges a history (an older one, here): adopted whole
    conv.adopt(list(conv.exchanges[:25]))
    send(session, "after a restore", "cell:41")
    conv.adopt([*conv.exchanges, *[_exchange(rng, f"cell:r{i}") for i in range(15)]])
    send(session, "after a longer restore", "cell:42")
    # a merged history may hold a cell's text twice: the oldest ends what comes before it,
    # a re-run finds the newest, as reading the list would
    twice = [_exchange(rng, "text:twice"), _exchange(rng, "cell:t"), _exchange(rng, "text:twice")]
    conv.adopt([*conv.exchanges, *twice])
    assert conv.earlier("text:twice") == conv.exchanges[:-3]
    assert conv.keyed("text:twice") is twice[-1] and conv.replaced_key("cell:t") == "cell:t"
    send(session, "after a merge", "cell:t")
    # a compaction: older exchanges replaced by a summary
    turn, plan = compact.summary_turn(session, "default", 6)
    session.start(turn)
    assert turn.wait(30)
    compact.finish(turn, plan)
    send(session, "after a compaction", "cell:43")
    compact.undo(conv)
    send(session, "after undoing it", "cell:44")
    # new secrets: the kept messages that hold one are scrubbed again, shorter or longer (no
    # budget: no step, so the message is in what the previous turn sent)
    session.max_history_chars = 0
    send(session, "a value that becomes a secret", "cell:44a")
    send(session, "after it", "cell:44b")
    monkeypatch.setenv(TOKEN_ENV, "value that becomes")
    send(session, "after a new secret", "cell:45")
    assert "value that becomes" not in str(session.conversation().exchanges[-1].user.content)
    assert "value that becomes" not in str(session.prepare("?", options=TurnOptions(provider=SITE)).messages)
    send(session, "and the next turn", "cell:46")
    monkeypatch.setenv(TOKEN_ENV, "words words")
    send(session, "another secret", "cell:47")
    # a restore that brings another version of an exchange the last turn sent
    merged = list(conv.exchanges)
    merged[-5] = _exchange(rng, merged[-5].key)
    conv.adopt(merged)
    send(session, "after a newer version", "cell:47v")
    session.max_history_chars = 1500
    send(session, "a budget again", "cell:47a")
    # a new budget
    session.max_history_chars = 4000
    send(session, "a larger budget", "cell:48")
    session.max_history_chars = 0
    send(session, "no budget", "cell:49")
    session.max_history_chars = 900
    send(session, "a small budget", "cell:50")
    # the list changed from outside the conversation's methods: noticed, not trusted
    conv.exchanges.append(_exchange(rng, "cell:x1"))
    send(session, "after an append", "cell:51")
    conv.exchanges[:] = conv.exchanges[10:]
    send(session, "after a cut", "cell:52")
    # --new: a fresh history
    session.start(
        session.prepare("afresh", options=TurnOptions(provider=SITE), key="cell:53", fresh=True)
    ).result(30)
    for i in range(54, 70):
        send(session, question(rng, i), f"cell:{i}")
    assert len(conv) == 17


def _exchange(rng: random.Random, key: str | None) -> Exchange:
    # some with the tokens their server reported, as an OpenAI-compatible server does
    usage = (
        {"prompt_tokens": rng.randint(1, 900), "completion_tokens": rng.randint(1, 90)}
        if rng.random() < 0.5
        else None
    )
    reply = Message("assistant", "a" * rng.randint(0, 400))
    return Exchange(Message("user", question(rng, 0)), reply, SITE, "", key, usage=usage)


class _Read(Exchange):
    """An exchange that counts how often its messages and its key are read (a class-wide tally)."""

    reads = 0

    def __getattribute__(self, name: str) -> Any:
        if name in ("user", "assistant", "key"):
            _Read.reads += 1
        return super().__getattribute__(name)


def _read(i: int, text: str) -> _Read:
    return _Read(Message("user", text), Message("assistant", "a" * 150), SITE, "", key=f"cell:{i}")


def test_a_turn_at_exchange_1000_reads_what_it_sends_not_the_whole_conversation(session: ChatSession) -> None:
    conv = session.conversation()
    for i in range(1000):
        conv.record(_read(i, f"q{i}"))
    session.prepare("warm", options=TurnOptions(provider=SITE))  # the history is read once
    reads, sent = [], []
    for i in range(1000, 1003):
        _Read.reads = 0
        # what a cell's turn does with the history: what it sends, and its exchange kept
        turn = session.prepare(f"and now {i}?", options=TurnOptions(provider=SITE), key=f"cell:{i}")
        conv.record(_read(i, f"and now {i}?"))
        reads.append(_Read.reads)
        sent.append(turn.history_sent)
    # the new exchange, a few times (the whole history at a step of the budget): not the 1,000
    # (the full replay read each one's messages, finding a key read each key)
    assert all(0 < n < 10 for n in sent), sent
    assert all(r <= 6 * (n + 1) for r, n in zip(reads, sent, strict=True)), (reads, sent)
    assert min(reads) <= 6, reads  # between steps: what the last turn sent is not read again


def _linear(conv: Any, key: str) -> tuple[int | None, int | None]:
    """Where the oldest and the newest exchange with ``key`` are, reading the whole list."""
    at = [i for i, ex in enumerate(conv.exchanges) if ex.key == key]
    return (at[0], at[-1]) if at else (None, None)


@pytest.mark.parametrize("seed", range(4))
def test_the_index_answers_as_reading_the_whole_list_whatever_changes_it(seed: int) -> None:
    rng = random.Random(seed)
    conv = Conversation("c")
    keys = [None, "text:a", "text:b", "cell:1", "cell:2", "cell:3", "panel:x"]
    for step in range(400):
        op = rng.random()
        key = rng.choice(keys)
        if op < 0.5:
            conv.record(_exchange(rng, key))  # a new exchange, or a re-run cell's in place
        elif op < 0.6 and key:
            conv.release(key)
        elif op < 0.7:  # a restore: a merged history, a cell's text possibly twice
            merged = list(conv.exchanges)
            rng.shuffle(merged)
            conv.adopt(
                [*merged[: rng.randint(0, len(merged))], *[_exchange(rng, k) for k in ("text:a", "text:a")]]
            )
        elif op < 0.75:
            conv.start_afresh()
        elif op < 0.8 and conv.exchanges:  # changed from outside the conversation's methods
            if rng.random() < 0.5:
                conv.exchanges.append(_exchange(rng, "text:b"))
            else:
                del conv.exchanges[rng.randrange(len(conv.exchanges)) :]
        for k in keys[1:]:
            oldest, newest = _linear(conv, k)
            assert conv.earlier(k) == conv.exchanges[:oldest], (step, k)
            assert conv.keyed(k) is (None if newest is None else conv.exchanges[newest]), (step, k)
        used = sum(
            (ex.usage or {}).get(k, 0)
            for ex in conv.exchanges
            for k in ("prompt_tokens", "completion_tokens")
        )
        assert conv.used_tokens() == used, step
        budget = rng.choice([0, 700, 2000])
        for k in (None, rng.choice(keys[1:])):
            sent, before = conv.window(k, budget)
            assert sent == stable_window(conv.earlier(k), budget), (step, k, budget)
            assert before == len(conv.earlier(k)), (step, k)
