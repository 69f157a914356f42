"""The previous display's pacer (bench/_legacy_pacer.py), which the bench simulations compare against."""

from __future__ import annotations

from bench._legacy_pacer import UpdatePacer


def simulate(chunks: int, seconds: float, piece: int = 6) -> tuple[int, int]:
    pacer = UpdatePacer()
    size = sent = 0
    for i in range(chunks):
        size += piece
        now = seconds * i / chunks
        if pacer.due(size, now):
            pacer.sent(size, now)
            sent += size
    return pacer.updates, sent


def test_first_text_goes_out_at_once() -> None:
    pacer = UpdatePacer()
    assert pacer.due(1, now=0.0)


def test_fast_reply_costs_few_updates_and_linear_bytes() -> None:
    updates, sent = simulate(10_000, seconds=0.5)
    assert updates <= 12
    assert sent <= 10 * 60_000


def test_slow_reply_updates_about_once_a_second_at_most_ten() -> None:
    updates, _ = simulate(300, seconds=30.0)
    assert 15 <= updates <= 60
    pacer = UpdatePacer()
    pacer.sent(10, now=0.0)
    assert not pacer.due(1000, now=0.05)  # never more than ten a second
    assert pacer.due(1000, now=0.11)


def test_long_slow_reply_waits_longer_between_time_driven_updates() -> None:
    pacer = UpdatePacer()
    pacer.sent(80_000, now=0.0)
    assert not pacer.due(80_001, now=4.9)
    assert pacer.due(80_001, now=5.0)
