"""History that survives a restart: recorded in the notebook, restored in a fresh kernel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from chatmagic._state import get_session

from .test_magics import reply, run

pytestmark = pytest.mark.usefixtures("fresh")


def test_reply_output_carries_the_exchange(ip: Any) -> None:
    reply(ip, '%%chat -c notes -s "Be kind."\nhello')
    result, io = run(ip, "%%chat -c notes\nagain")
    record = io.outputs[-1].metadata["chatmagic"]
    assert record["conversation"] == "notes" and record["system"] == "Be kind."
    assert record["user"] == "again"
    assert record["assistant"] == "[chatgptt] You said: again\n\nEarlier messages: 3."
    assert record["provider"] == "chatgptt" and record["model"] == "gpt-4o"
    assert record["total_s"] >= record["first_text_s"] >= 0


def test_failed_turn_records_nothing(ip: Any) -> None:
    result, io = run(ip, "%%chat\n[[fault:http500]]hi")
    assert all("chatmagic" not in (o.metadata or {}) for o in io.outputs)


def test_export_markdown_and_json(ip: Any, tmp_path: Path) -> None:
    reply(ip, '%%chat -c ex -s "Sys."\nquestion')
    run(ip, f"%chat export ex {tmp_path / 'ex.md'}")
    md = (tmp_path / "ex.md").read_text()
    assert md.startswith(
        "# Conversation: ex\n\n**System:** Sys.\n\n## User\n\nquestion\n\n## Assistant · chatgptt · gpt-4o"
    )
    run(ip, f"%chat export ex {tmp_path / 'ex.json'}")
    data = json.loads((tmp_path / "ex.json").read_text())
    assert data["system"] == "Sys." and data["exchanges"][0]["user"] == "question"
    result, io = run(ip, "%chat export nothing-here")
    assert "is empty: nothing to export" in io.stdout + io.stderr


def test_restore_needs_a_notebook(ip: Any, tmp_path: Path) -> None:
    result, io = run(ip, "%chat restore")
    assert "Which notebook?" in io.stdout + io.stderr
    result, io = run(ip, f"%chat restore {tmp_path / 'missing.ipynb'}")
    assert "There is no notebook at" in io.stdout + io.stderr


def _execute(cells: list[str], path: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    nbformat.write(nb, path)
    return nb


def test_restore_after_restart_from_the_saved_notebook(tmp_path: Path) -> None:
    saved = tmp_path / "first.ipynb"
    _execute(
        [
            "%load_ext chatmagic",
            "%chat sandbox",
            "%%chat -p opchatgpts\nhello",
            "%%chat\nsecond",
            '%%chat -c other -s "Sys prompt."\nelsewhere',
        ],
        saved,
    )
    # a fresh kernel: nothing in memory until restored
    nb = _execute(
        [
            "%load_ext chatmagic",
            "%chat sandbox",
            f"%chat restore {saved}",
            "%%chat\nthird",
            "import chatmagic\nc = chatmagic.get_session().conversation('other')\nprint(len(c), c.system)",
        ],
        tmp_path / "second.ipynb",
    )
    restored = nb.cells[2].outputs[0]["text"]
    assert restored.strip() == f"Restored from {saved}: default: 2 exchanges, other: 1 exchange."
    third = nb.cells[3].outputs[-1]["data"]["text/plain"]
    assert third.startswith("[opchatgpts] You said: third\n\nEarlier messages: 4.")
    assert nb.cells[4].outputs[0]["text"] == "1 Sys prompt.\n"


def test_restore_into_the_shell_keeps_other_conversations(ip: Any, tmp_path: Path) -> None:
    reply(ip, "%%chat -c keep\nmine")
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("%%chat\nold")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={"text/plain": "x"},
            metadata={
                "chatmagic": {
                    "conversation": "default",
                    "user": "old",
                    "assistant": "reply",
                    "provider": "chatgptt",
                    "model": "gpt-4o",
                    "key": "k1",
                }
            },
        )
    ]
    nb.cells = [cell]
    nbformat.write(nb, tmp_path / "n.ipynb")
    run(ip, f"%chat restore {tmp_path / 'n.ipynb'}")
    session = get_session()
    assert [ex.assistant.content for ex in session.conversation().exchanges] == ["reply"]
    assert len(session.conversation("keep")) == 1


def _saved(records: list[dict[str, Any]], path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    for record in records:
        cell = nbformat.v4.new_code_cell("%%chat")
        cell.outputs = [
            nbformat.v4.new_output("display_data", data={"text/plain": ""}, metadata={"chatmagic": record})
        ]
        nb.cells.append(cell)
    nbformat.write(nb, path)


def _rec(user: str, *, epoch: str, seq: int, at: float, key: str | None = None) -> dict[str, Any]:
    return {
        "conversation": "default",
        "epoch": epoch,
        "user": user,
        "assistant": f"re: {user}",
        "provider": "chatgptt",
        "model": "gpt-4o",
        "seq": seq,
        "finished_at": at,
        "key": key,
    }


def test_restore_keeps_the_newest_epoch_in_conversation_order(ip: Any, tmp_path: Path) -> None:
    _saved(
        [
            _rec("before --new", epoch="old", seq=0, at=1.0, key="a"),
            _rec("second, saved first in the notebook", epoch="new", seq=1, at=4.0, key="c"),
            _rec("first", epoch="new", seq=0, at=3.0, key="b"),
            _rec("first, re-run later", epoch="new", seq=0, at=5.0, key="b"),
        ],
        tmp_path / "e.ipynb",
    )
    run(ip, f"%chat restore {tmp_path / 'e.ipynb'}")
    conv = get_session().conversation()
    assert [ex.user.content for ex in conv.exchanges] == [
        "first, re-run later",
        "second, saved first in the notebook",
    ]
    assert conv.epoch == "new"
    # the next exchange continues the order
    reply(ip, "%%chat\nthird")
    assert [ex.seq for ex in conv.exchanges] == [0, 1, 2]


def test_new_starts_a_new_epoch_and_reruns_keep_their_place(ip: Any) -> None:
    conv = get_session().conversation()
    reply(ip, "%%chat\none", cell_id="x1")
    old_epoch = conv.epoch
    reply(ip, "%%chat --new\ntwo", cell_id="x2")
    assert conv.epoch != old_epoch
    reply(ip, "%%chat\nthree", cell_id="x3")
    reply(ip, "%%chat --new\ntwo again", cell_id="x2")
    assert [ex.user.content for ex in conv.exchanges] == ["two again"]
