"""``%chat compact`` in the session core, against the stand-in: older exchanges replaced by a
summary the model writes, what the next turn sends, undo, and failures that change nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from chatmagic import compact, compacted
from chatmagic.errors import ConfigurationError, ConversationBusy
from chatmagic.sandbox import Sandbox
from chatmagic.session import ChatSession, Exchange, TurnOptions

from .conftest import SITES

SITE = "opchatgpts"


@pytest.fixture
def session(sandbox_thread: Sandbox) -> Iterator[ChatSession]:
    s = ChatSession()
    s.retries = 0
    s.base_urls.update({site: sandbox_thread.base_url(site) for site in SITES})
    sandbox_thread.clear()
    yield s
    s.close()


def chat(session: ChatSession, *prompts: str) -> None:
    for prompt in prompts:
        session.send(prompt, options=TurnOptions(provider=SITE)).result(timeout=30)


def summarize(session: ChatSession, keep: int = 2) -> Exchange:
    turn, plan = compact.summary_turn(session, "default", keep)
    session.start(turn)
    assert turn.wait(30)
    return compact.finish(turn, plan)


def last_sent(sandbox: Sandbox) -> str:
    posts = [r for r in sandbox.requests if r.method == "POST"]
    return json.dumps(posts[-1].form if posts[-1].form is not None else posts[-1].json, ensure_ascii=False)


def test_compact_replaces_older_exchanges_and_the_next_turn_sends_the_summary(
    session: ChatSession, sandbox_thread: Sandbox
) -> None:
    conv = session.conversation()
    conv.system = "Be brief."
    chat(session, "one ONE-MARK", "two TWO-MARK", "three", "four", "five")
    before = list(conv.exchanges)
    summary = summarize(session, keep=2)
    # the summary request carried the three older exchanges, not the two kept
    request = last_sent(sandbox_thread)
    assert "ONE-MARK" in request and "TWO-MARK" in request and "Summarize our conversation" in request
    assert "four" not in request.split("Summarize")[0].split("three")[-1]
    assert conv.exchanges == [summary, *before[3:]]
    assert (
        summary.summarizes == tuple(before[:3])
        and compacted.label(summary) == "Summary of 3 earlier exchanges"
    )
    assert summary.assistant.content.startswith(f"[{SITE}] You said: Summarize our conversation")
    assert summary.provider == SITE and summary.key is None
    # the next turn: system, the summary pair, the two kept exchanges, the prompt
    chat(session, "six")
    assert conv.exchanges[-1].assistant.content.endswith("Earlier messages: 7.")
    sent = last_sent(sandbox_thread)
    assert "ONE-MARK" not in sent and "Summarize our conversation" in sent and "four" in sent
    # every original is still there, in order, followed by the summary that stands for them
    assert compacted.originals(conv.exchanges) == [*before[:3], summary, *before[3:], conv.exchanges[-1]]
    # the record names the originals; the seq keeps the conversation's order
    assert [o["seq"] for o in summary.to_dict()["summarizes"]] == [0, 1, 2]
    assert [ex.seq for ex in conv.exchanges] == [2, 3, 4, 5]


def test_undo_puts_the_originals_back(session: ChatSession, sandbox_thread: Sandbox) -> None:
    conv = session.conversation()
    chat(session, "one ONE-MARK", "two", "three")
    before = list(conv.exchanges)
    summarize(session, keep=1)
    assert len(conv) == 2
    taken = compact.undo(conv)
    assert taken.summarizes == tuple(before[:2]) and conv.exchanges == before
    chat(session, "four")
    assert "ONE-MARK" in last_sent(sandbox_thread)
    with pytest.raises(ConfigurationError, match="holds no summary"):
        compact.undo(conv)


def test_a_summary_of_a_summary_and_one_step_back(session: ChatSession) -> None:
    conv = session.conversation()
    chat(session, "a", "b", "c")
    first = summarize(session, keep=1)
    chat(session, "d", "e")
    second = summarize(session, keep=0)
    assert conv.exchanges == [second] and compacted.count(second) == 5
    assert compacted.label(second) == "Summary of 5 earlier exchanges"
    assert second.summarizes[0] is first
    compact.undo(conv)
    assert conv.exchanges[0] is first and len(conv) == 4
    with pytest.raises(ConfigurationError, match="already one summary"):
        compact.plan(conv, keep=3)


@pytest.mark.parametrize("fault", ["http500", "length", "empty"])
def test_a_failed_summary_changes_nothing(session: ChatSession, sandbox_thread: Sandbox, fault: str) -> None:
    site = "ollama"  # the OpenAI API with no key, which can also cut a reply ("length")
    session.base_urls[site] = sandbox_thread.base_url(site)
    conv = session.conversation()
    for prompt in ("one", "two", "three"):
        session.send(prompt, options=TurnOptions(provider=site)).result(timeout=30)
    before = list(conv.exchanges)
    sandbox_thread.inject(site, fault)
    with pytest.raises(ConfigurationError, match="[Nn]othing changed"):
        summarize(session)
    assert conv.exchanges == before and conv.active is None


def test_a_stopped_summary_changes_nothing_and_the_conversation_is_busy_meanwhile(
    session: ChatSession, sandbox_thread: Sandbox
) -> None:
    conv = session.conversation()
    chat(session, "one", "two", "three")
    before = list(conv.exchanges)
    sandbox_thread.inject(SITE, "stall")
    turn, plan = compact.summary_turn(session, "default", 1)
    session.start(turn)
    with pytest.raises(ConversationBusy):
        session.send("meanwhile", options=TurnOptions(provider=SITE))
    time.sleep(0.3)
    turn.stop()
    assert turn.wait(5) and turn.state == "stopped"
    with pytest.raises(ConfigurationError, match="stopped. Nothing changed"):
        compact.finish(turn, plan)
    assert conv.exchanges == before


def test_nothing_to_compact_says_what_to_do(session: ChatSession) -> None:
    chat(session, "one", "two")
    with pytest.raises(ConfigurationError, match="Use --keep with a smaller number"):
        compact.plan(session.conversation(), keep=2)


def test_restore_folds_the_originals_back_into_their_summary(session: ChatSession) -> None:
    import dataclasses

    conv = session.conversation()
    chat(session, "a", "b", "c")
    summary = summarize(session, keep=1)
    # as records come back from a file: the originals on their own, the summary naming them
    named = compact.read_summarizes(json.loads(json.dumps(summary.to_dict()))["summarizes"])
    assert named is not None and [ex.user.content for ex in named] == ["", ""]
    from_file = dataclasses.replace(summary, summarizes=named)
    top, folded = compacted.fold([*summary.summarizes, from_file, *conv.exchanges[1:]])
    assert folded == 2
    assert [ex.user.content for ex in top] == [summary.user.content, "c"]
    assert top[0].summarizes == summary.summarizes
    # a record whose list is malformed is not valid; one without the field summarizes nothing
    assert compact.read_summarizes([{"key": 3, "finished_at": 1.0}]) is None
    assert compact.read_summarizes([{"key": None, "finished_at": float("nan")}]) is None
    assert compact.read_summarizes(None) == ()


def test_a_summary_of_a_summary_restores_when_the_first_ones_record_is_gone(session: ChatSession) -> None:
    import dataclasses

    conv = session.conversation()
    chat(session, "a", "b", "c")
    first = summarize(session, keep=1)
    chat(session, "d")
    second = summarize(session, keep=0)
    # the records a file still holds: every original's, and the second summary's (the cell
    # that made the first was run again, so its output, and record, are the second's)
    record = json.loads(json.dumps(second.to_dict()))
    named = compact.read_summarizes(record["summarizes"])
    assert named is not None
    from_file = dataclasses.replace(second, summarizes=named)
    plain = [ex for ex in compacted.originals(conv.exchanges) if not ex.summarizes]
    assert [ex.user.content for ex in plain] == ["a", "b", "c", "d"]
    top, folded = compacted.fold([*plain, from_file])
    assert folded == 4
    assert [ex.user.content for ex in top] == [second.user.content]
    (restored,) = top
    assert compacted.count(restored) == 4 and compacted.label(restored) == "Summary of 4 earlier exchanges"
    inner = restored.summarizes[0]
    assert inner.assistant.content == first.assistant.content and compacted.count(inner) == 2
    assert [ex.user.content for ex in compacted.originals(top) if not ex.summarizes] == ["a", "b", "c", "d"]


def test_a_summary_whose_originals_were_not_restored_stays(session: ChatSession) -> None:
    import dataclasses

    conv = session.conversation()
    chat(session, "a", "b", "c")
    summary = summarize(session, keep=1)
    named = compact.read_summarizes(json.loads(json.dumps(summary.to_dict()))["summarizes"])
    assert named is not None
    top, _ = compacted.fold([dataclasses.replace(summary, summarizes=named), *conv.exchanges[1:]])
    conv.adopt(top)  # restored from a notebook whose first two outputs were cleared
    with pytest.raises(ConfigurationError, match="2 exchanges whose record was not restored"):
        compact.undo(conv)
    assert conv.exchanges == top
