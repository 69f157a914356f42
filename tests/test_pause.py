"""The pause: a turn waits on the background loop for an answer given from any thread;
no one to ask means an immediate decline; "always" is one tool in one session."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from chatmagic.pause import Audience, PauseError, Pauses
from chatmagic.runner import get_runner


def person() -> Audience:
    audience = Audience()
    audience.from_request(True)  # a frontend that allows stdin: someone is there
    return audience


def test_a_turn_waits_on_the_loop_and_a_click_from_another_thread_answers() -> None:
    pauses = Pauses()
    pending = pauses.ask("tool", "load_sales", {"arguments": {"region": "north"}})
    waiting = get_runner().submit(pauses.reach(pending, person()))
    time.sleep(0.05)
    assert not waiting.done() and pauses.waiting() == [pending]
    # the loop is not blocked while it waits
    assert get_runner().run(asyncio.sleep(0, "free")) == "free"
    threading.Thread(target=pauses.answer, args=(pending.id, "run")).start()
    assert waiting.result(5) == "run" and pending.by == "user"
    assert pauses.waiting() == []


def test_deny_and_the_answers_each_kind_takes() -> None:
    pauses = Pauses()
    tool = pauses.ask("tool", "rm")
    assert pauses.answer(None, "deny").answer == "deny" and tool.result(1) == "deny"
    budget = pauses.ask("budget", "gpt-4o")
    with pytest.raises(PauseError, match="b2 takes send, cancel, not 'always'"):
        pauses.answer(budget.id, "always")
    pauses.answer(budget.id, "approve")  # %chat approve on a budget question sends
    assert budget.result(1) == "send"


def test_always_is_one_function_in_one_session() -> None:
    pauses = Pauses()
    first = pauses.ask("tool", "plot_hist")
    pauses.answer(first.id, "always")
    assert first.result(1) == "run"
    again = pauses.ask("tool", "plot_hist")
    assert again.done and again.result(0) == "run" and again.by == "always"
    other = pauses.ask("tool", "load_sales")
    assert not other.done  # another function still asks
    assert not Pauses().ask("tool", "plot_hist").done  # another session still asks
    pauses.forget("plot_hist")
    assert not pauses.ask("tool", "plot_hist").done


def test_no_one_to_ask_declines_at_once() -> None:
    pauses = Pauses()
    headless = Audience()
    headless.from_request(False)  # nbclient, jupyter execute
    started = time.perf_counter()
    tool = pauses.ask("tool", "load_sales")
    assert get_runner().run(pauses.reach(tool, headless)) == "deny" and tool.by == "no one to ask"
    budget = pauses.ask("budget", "gpt-4o")
    assert get_runner().run(pauses.reach(budget, headless)) == "cancel"
    assert time.perf_counter() - started < 0.5
    assert pauses.waiting() == []


def test_a_widget_that_never_says_hello_declines_after_the_grace() -> None:
    pauses = Pauses()
    unseen = Audience(hello_grace=0.2)  # a panel made outside a cell: no execute request
    started = time.perf_counter()
    assert get_runner().run(pauses.reach(pauses.ask("tool", "f"), unseen)) == "deny"
    assert 0.15 < time.perf_counter() - started < 2
    # one that says hello in time is asked
    seen = Audience(hello_grace=5)
    pending = pauses.ask("tool", "f")
    waiting = get_runner().submit(pauses.reach(pending, seen))
    threading.Timer(0.05, seen.hello).start()
    time.sleep(0.2)
    assert not waiting.done()
    pauses.answer(pending.id, "run")
    assert waiting.result(5) == "run"
    terminal = Audience(hello_grace=0)
    terminal.terminal = True
    assert terminal.present


def test_answers_that_cannot_be_taken_say_why_in_one_line() -> None:
    pauses = Pauses()
    with pytest.raises(PauseError, match="Nothing is waiting"):
        pauses.answer(None, "run")
    a, b = pauses.ask("tool", "f"), pauses.ask("tool", "g")
    with pytest.raises(PauseError, match=rf"Several questions are waiting \({a.id}, {b.id}\)"):
        pauses.answer(None, "run")
    with pytest.raises(PauseError, match=r"No question 't99' is waiting \(waiting: t1, t2\)"):
        pauses.answer("t99", "run")
    with pytest.raises(PauseError, match="takes run, deny, always, not 'maybe'"):
        pauses.answer(a.id, "maybe")
    pauses.answer(a.id, "deny")
    with pytest.raises(PauseError, match="may have been answered already"):
        pauses.answer(a.id, "run")
    assert a.result(0) == "deny"


def test_the_first_of_two_racing_answers_wins() -> None:
    pauses = Pauses()
    pending = pauses.ask("tool", "f")
    results: list[str] = []
    barrier = threading.Barrier(2)

    def answer(choice: str) -> None:
        barrier.wait()
        try:
            pauses.answer(pending.id, choice)
            results.append(choice)
        except PauseError:
            results.append("refused")

    threads = [threading.Thread(target=answer, args=(c,)) for c in ("always", "deny")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("refused") == 1
    won = pending.result(0)
    assert pauses.always("f") == (won == "run")  # a losing "always" is not remembered


def test_stop_declines_every_waiting_question() -> None:
    pauses = Pauses()
    tool, budget = pauses.ask("tool", "f"), pauses.ask("budget", "m")
    waiting = get_runner().submit(pauses.reach(tool, person()))
    pauses.cancel_all()
    assert waiting.result(5) == "deny" and tool.by == "stopped" and budget.result(0) == "cancel"
