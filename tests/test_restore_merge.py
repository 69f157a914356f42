"""%chat restore in a live kernel merges: it never discards an exchange the kernel holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatmagic._state import get_session
from chatmagic.record import exchange_record
from chatmagic.restore import restore
from chatmagic.session import TEXT_KEY_PREFIX, Conversation, Exchange, Message

from ._notebooks import save_records
from .test_magics import reply, run

pytestmark = pytest.mark.usefixtures("fresh")


def _exchange(user: str, assistant: str, *, key: str | None, at: float) -> Exchange:
    return Exchange(
        user=Message("user", user),
        assistant=Message("assistant", assistant),
        provider="chatgptt",
        model="gpt-4o",
        key=key,
        first_text_s=0.1,
        total_s=0.5,
        finished_at=at,
    )


def _live(name: str = "default") -> tuple[Conversation, list[Exchange]]:
    """A conversation of four exchanges, two from cells, two from a panel (no key)."""
    conv = get_session().conversation(name)
    exchanges = [
        _exchange("one", "first answer", key="cell:a", at=10.0),
        _exchange("two", "from the panel", key=None, at=11.0),
        _exchange("three", "third answer", key="cell:c", at=12.0),
        _exchange("four", "from the panel again", key=None, at=13.0),
    ]
    for ex in exchanges:
        conv.record(ex)
    return conv, exchanges


def _texts(conv: Conversation) -> list[tuple[str, str]]:
    return [(ex.user.content, ex.assistant.content) for ex in conv.exchanges]


def test_restore_keeps_what_the_notebook_lacks_and_takes_a_newer_version(ip: Any, tmp_path: Path) -> None:
    conv, (one, two, three, four) = _live()
    epoch = conv.epoch
    # saved before three was re-run (it finished at 12 in the kernel, at 20 in the notebook)
    rerun = _exchange("three", "third answer, re-run", key="cell:c", at=20.0)
    rerun.seq = three.seq
    path = save_records(tmp_path / "nb.ipynb", exchange_record(conv, one), exchange_record(conv, rerun))

    report = restore(get_session(), path)

    assert _texts(conv) == [
        ("one", "first answer"),
        ("two", "from the panel"),
        ("three", "third answer, re-run"),
        ("four", "from the panel again"),
    ]
    assert [ex.key for ex in conv.exchanges] == ["cell:a", None, "cell:c", None]
    assert [ex.seq for ex in conv.exchanges] == [0, 1, 2, 3]
    assert conv.epoch == epoch
    counts = report.conversations["default"]
    assert (counts.added, counts.replaced, counts.kept, counts.older) == (0, 1, 3, 0)
    assert report.summary() == f"Restored from {path}: default: 1 replaced, 3 kept."


def test_restore_adds_what_the_kernel_lacks_in_its_place(ip: Any, tmp_path: Path) -> None:
    conv, (one, two, three, four) = _live()
    # the notebook has: an older version of one, an exchange the kernel lacks (in the place
    # after two), four as the kernel has it, a panel exchange after four, and a conversation
    # the kernel does not have
    lost = _exchange("lost", "answer the kernel lacks", key="cell:lost", at=11.5)
    lost.seq = 1
    same_four = _exchange("four", "from the panel again", key=None, at=13.0)
    same_four.seq = 3
    stale_one = _exchange("one", "an older answer", key="cell:a", at=5.0)
    later = _exchange("five", "a later panel answer", key=None, at=14.0)
    later.seq = 4
    review = Conversation("review", system="Review it.", provider="opchatgpts")
    path = save_records(
        tmp_path / "nb.ipynb",
        exchange_record(conv, stale_one),
        exchange_record(conv, lost),
        exchange_record(conv, same_four),
        exchange_record(conv, later),
        exchange_record(review, _exchange("r1", "a1", key="cell:r1", at=1.0)),
        exchange_record(review, _exchange("r2", "a2", key=None, at=2.0)),
    )

    report = restore(get_session(), path, settings=True)

    assert _texts(conv) == [
        ("one", "first answer"),  # the kernel's is newer: kept
        ("two", "from the panel"),
        ("lost", "answer the kernel lacks"),
        ("three", "third answer"),
        ("four", "from the panel again"),  # the same, not a second copy
        ("five", "a later panel answer"),
    ]
    assert [ex.seq for ex in conv.exchanges] == list(range(6))
    assert report.conversations["default"].added == 2 and report.conversations["default"].kept == 4
    restored = get_session().conversation("review")
    assert _texts(restored) == [("r1", "a1"), ("r2", "a2")]
    assert (restored.system, restored.provider, restored.epoch) == ("Review it.", "opchatgpts", review.epoch)
    assert report.summary() == (
        f"Restored from {path}: default: 2 added, 4 kept; review: 2 added.\n"
        "Settings from the file, now the conversation's: review: provider opchatgpts, "
        'system prompt "Review it.".'
    )
    # the conversation goes on in order, with everything in it
    assert "You said: six\n\nEarlier messages: 12." in reply(ip, "%%chat\nsix")
    assert [ex.seq for ex in conv.exchanges] == list(range(7))


def test_a_question_asked_twice_stays_twice(ip: Any, tmp_path: Path) -> None:
    conv = get_session().conversation()
    # a panel's exchanges have no key: asked twice, with the same answer
    first = _exchange("hi", "hello", key=None, at=1.0)
    second = _exchange("hi", "hello", key=None, at=2.0)
    conv.record(first)
    conv.record(second)
    path = save_records(tmp_path / "nb.ipynb", exchange_record(conv, second))

    report = restore(get_session(), path)

    assert [ex.finished_at for ex in conv.exchanges] == [1.0, 2.0]
    assert report.summary() == f"Restored from {path}: default: 2 kept."


def test_a_cells_text_asked_again_is_matched_in_both_places(ip: Any, tmp_path: Path) -> None:
    # where the frontend sends no cell id, a cell's key is made from its text; the same
    # text asked again takes the key, and the earlier exchange keeps none in the kernel
    # while its record in the notebook still has it
    key = f"{TEXT_KEY_PREFIX}0123"
    conv = get_session().conversation()
    first = _exchange("hi", "hello", key=key, at=1.0)
    conv.record(first)
    saved_first = exchange_record(conv, first)
    first.key = None  # as ChatSession.start leaves it
    second = _exchange("hi", "hello again", key=key, at=2.0)
    conv.record(second)
    rerun = _exchange("hi", "hello, re-run", key=key, at=3.0)
    rerun.seq = second.seq
    path = save_records(tmp_path / "nb.ipynb", saved_first, exchange_record(conv, rerun))

    report = restore(get_session(), path)

    assert _texts(conv) == [("hi", "hello"), ("hi", "hello, re-run")]
    assert [ex.key for ex in conv.exchanges] == [None, key]
    assert report.summary() == f"Restored from {path}: default: 1 replaced, 1 kept."


def test_a_notebook_from_before_a_new_is_skipped(ip: Any, tmp_path: Path) -> None:
    conv, exchanges = _live()
    before = save_records(tmp_path / "old.ipynb", *(exchange_record(conv, ex) for ex in exchanges[:2]))
    conv.reset()  # what --new does
    conv.record(_exchange("afresh", "new start", key="cell:n", at=30.0))

    report = restore(get_session(), before)

    assert _texts(conv) == [("afresh", "new start")]
    assert report.summary() == f"Restored from {before}: default: 1 kept, 2 from before a --new skipped."


def test_a_newer_notebook_of_another_epoch_follows_the_kernels_exchanges(ip: Any, tmp_path: Path) -> None:
    conv, exchanges = _live()
    other = Conversation("default", system="Later system.")
    newer = [_exchange("n1", "a1", key="cell:n1", at=40.0), _exchange("n2", "a2", key=None, at=41.0)]
    newer[1].seq = 1
    path = save_records(tmp_path / "nb.ipynb", *(exchange_record(other, ex) for ex in newer))

    report = restore(get_session(), path)

    assert [u for u, _ in _texts(conv)] == ["one", "two", "three", "four", "n1", "n2"]
    assert [ex.seq for ex in conv.exchanges] == list(range(6))
    # the file's system prompt is named, not taken: the user says so with --settings
    assert (conv.epoch, conv.system) == (other.epoch, None)
    assert report.summary() == (
        f"Restored from {path}: default: 2 added, 4 kept.\n"
        'Settings saved in the file, not applied: default: system prompt "Later system.". '
        "%chat restore --settings applies them."
    )
    report = restore(get_session(), path, settings=True)
    assert (conv.epoch, conv.system) == (other.epoch, "Later system.")
    assert report.summary() == (
        f"Restored from {path}: default: 6 kept.\n"
        'Settings from the file, now the conversation\'s: default: system prompt "Later system.".'
    )


def test_a_restarted_kernel_that_chatted_first_gets_the_notebook_before_its_own(
    ip: Any, tmp_path: Path
) -> None:
    saved_conv = Conversation("default")
    saved = [_exchange("old1", "a1", key="cell:o1", at=10.0), _exchange("old2", "a2", key="cell:o2", at=11.0)]
    saved[1].seq = 1
    path = save_records(tmp_path / "nb.ipynb", *(exchange_record(saved_conv, ex) for ex in saved))
    # after the restart: a fresh conversation (a new epoch, but no --new) that chatted once
    conv = get_session().conversation()
    conv.record(_exchange("after restart", "fresh", key="cell:r", at=50.0))

    report = restore(get_session(), path)

    assert [u for u, _ in _texts(conv)] == ["old1", "old2", "after restart"]
    assert conv.epoch == saved_conv.epoch
    assert report.summary() == f"Restored from {path}: default: 2 added, 1 kept."


def test_restore_command_prints_the_summary(ip: Any, tmp_path: Path) -> None:
    conv, exchanges = _live()
    path = save_records(tmp_path / "nb.ipynb", exchange_record(conv, exchanges[0]), {"user": 5})
    result, io = run(ip, f"%chat restore {path}")
    assert io.stdout.strip() == (
        f"Restored from {path}: default: 4 kept. Skipped 1 saved record that was not valid."
    )
    empty = save_records(tmp_path / "empty.ipynb")
    result, io = run(ip, f"%chat restore {empty}")
    assert io.stdout.strip() == (
        f"No chatmagic exchanges are saved in {empty}: run %%chat cells and save the notebook."
    )
    assert len(conv) == 4
