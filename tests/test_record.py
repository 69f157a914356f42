"""History that survives a restart: recorded in the notebook, restored in a fresh kernel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from chatmagic import export as chatexport
from chatmagic._state import get_session
from chatmagic.errors import ConfigurationError
from chatmagic.restore import restore

from ._notebooks import save_records
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
            f"%chat restore --settings {saved}",  # my own notebook: its settings too
            "%%chat\nthird",
            "import chatmagic\nc = chatmagic.get_session().conversation('other')\nprint(len(c), c.system)",
        ],
        tmp_path / "second.ipynb",
    )
    restored = nb.cells[2].outputs[0]["text"]
    assert restored.strip() == (
        f"Restored from {saved}: default: 2 added; other: 1 added.\n"
        "Settings from the file, now the conversation's: default: provider opchatgpts; "
        'other: system prompt "Sys prompt.".'
    )
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
    save_records(
        tmp_path / "e.ipynb",
        _rec("before --new", epoch="old", seq=0, at=1.0, key="a"),
        _rec("second, saved first in the notebook", epoch="new", seq=1, at=4.0, key="c"),
        _rec("first", epoch="new", seq=0, at=3.0, key="b"),
        _rec("first, re-run later", epoch="new", seq=0, at=5.0, key="b"),
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


# -- saved records from outside: checked, never trusted ---------------------------------

_GOOD = {
    "version": 1,
    "conversation": "default",
    "epoch": "e1",
    "system": "Be brief.",
    "chain": "chatgptt",
    "key": "cell:good",
    "provider": "chatgptt",
    "model": "gpt-4o",
    "user": "hello",
    "assistant": "hi there",
    "stopped": False,
    "first_text_s": 0.1,
    "total_s": 0.2,
    "finished_at": 100.0,
    "seq": 0,
}


def _output(record: Any) -> dict[str, Any]:
    return {"output_type": "display_data", "data": {"text/plain": ""}, "metadata": {"chatmagic": record}}


def _notebook(*outputs: Any) -> dict[str, Any]:
    """A notebook as plain JSON: a cell with the good record, then one per output given."""
    nb = json.loads(nbformat.writes(nbformat.v4.new_notebook()))
    nb["cells"] = [
        {
            "cell_type": "code",
            "id": f"c{i}",
            "metadata": {},
            "source": "%%chat",
            "execution_count": i,
            "outputs": [output],
        }
        for i, output in enumerate([_output(_GOOD), *outputs])
    ]
    return nb


def _bad(**fields: Any) -> dict[str, Any]:
    """A second record (the newest) with fields changed; ... removes one."""
    record = {**_GOOD, "key": "cell:bad", "user": "later", "finished_at": 101.0, "seq": 1}
    record.update(fields)
    return {k: v for k, v in record.items() if v is not ...}


def _with(change: Any) -> Any:
    nb = _notebook()
    change(nb)
    return nb


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def change(nb: dict[str, Any]) -> None:
        target: Any = nb
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return _with(change)


_DEEP = 100_000
# (notebook JSON text or object, skipped records, valid exchanges restored)
MALFORMED: dict[str, tuple[Any, int, int]] = {
    "cells not a list": (_set(("cells",), {"a": 1}), 1, 0),
    "cells a string": (_set(("cells",), "cells"), 1, 0),
    "a cell not an object": (_with(lambda nb: nb["cells"].append(["x"])), 1, 1),
    "outputs not a list": (_set(("cells", 0, "outputs"), {"x": 1}), 1, 0),
    "outputs a number": (_set(("cells", 0, "outputs"), 7), 1, 0),
    "an output not an object": (_with(lambda nb: nb["cells"][0]["outputs"].append(3)), 1, 1),
    "metadata not an object": (_set(("cells", 0, "outputs", 0, "metadata"), [1]), 1, 0),
    "chatmagic entry not an object": (_notebook(_output("text")), 1, 1),
    "panel log not a list": (_notebook(_output({"version": 1, "exchanges": 5})), 1, 1),
    "panel log entry not an object": (
        _notebook(_output({"version": 1, "exchanges": [1, _bad(key=None, user="panel")]})),
        1,
        2,
    ),
    "seq as text": (_notebook(_output(_bad(seq="later"))), 1, 1),
    "seq as digits": (_notebook(_output(_bad(seq="1"))), 1, 1),
    "seq a float": (_notebook(_output(_bad(seq=1.5))), 1, 1),
    "seq a bool": (_notebook(_output(_bad(seq=True))), 1, 1),
    "finished_at as text": (_notebook(_output(_bad(finished_at="yesterday"))), 1, 1),
    "finished_at NaN": (_notebook(_output(_bad(finished_at=float("nan")))), 1, 1),
    "finished_at beyond a float": (_notebook(_output(_bad(finished_at=10**400))), 1, 1),
    "key a list": (_notebook(_output(_bad(key=["a"]))), 1, 1),
    "key an object": (_notebook(_output(_bad(key={"a": 1}))), 1, 1),
    "key a number": (_notebook(_output(_bad(key=5))), 1, 1),
    "system an object": (_notebook(_output(_bad(system={"role": "system"}))), 1, 1),
    "chain a number": (_notebook(_output(_bad(chain=5))), 1, 1),
    "chain with an empty name": (_notebook(_output(_bad(chain="chatgptt,,opchatgpts"))), 1, 1),
    "chain blank": (_notebook(_output(_bad(chain="  "))), 1, 1),
    "chain empty": (_notebook(_output(_bad(chain=""))), 1, 1),
    "chain a lone comma": (_notebook(_output(_bad(chain=","))), 1, 1),
    "provider a number": (_notebook(_output(_bad(provider=5))), 1, 1),
    "model a list": (_notebook(_output(_bad(model=["gpt-4o"]))), 1, 1),
    "user a number": (_notebook(_output(_bad(user=5))), 1, 1),
    "user missing": (_notebook(_output(_bad(user=...))), 1, 1),
    "assistant null": (_notebook(_output(_bad(assistant=None))), 1, 1),
    "assistant nested": (_notebook(_output(_bad(assistant=json.loads("[" * 500 + "]" * 500)))), 1, 1),
    "stopped as text": (_notebook(_output(_bad(stopped="no"))), 1, 1),
    "stopped a number": (_notebook(_output(_bad(stopped=1))), 1, 1),
    "first_text_s as text": (_notebook(_output(_bad(first_text_s="fast"))), 1, 1),
    "total_s as text": (_notebook(_output(_bad(total_s="slow"))), 1, 1),
    "epoch a number": (_notebook(_output(_bad(epoch=5))), 1, 1),
    "epoch an object": (_notebook(_output(_bad(epoch={"e": 1}))), 1, 1),
    "conversation a number": (_notebook(_output(_bad(conversation=5))), 1, 1),
    "version as text": (_notebook(_output(_bad(version="1"))), 1, 1),
    "lone surrogates": (_notebook(_output(_bad(user="\ud800 hi", assistant="re \udfff"))), 0, 2),
    # the file is no notebook at all: ConfigurationError
    "not a JSON object": ("[1, 2]", -1, 0),
    "nested too deeply": ('{"cells": ' + "[" * _DEEP + "]" * _DEEP + "}", -1, 0),
    "not UTF-8": (b'{"cells": "\xff\xfe"}', -1, 0),
    "not JSON": ("{cells", -1, 0),
}


def _assert_typed(conv: Any) -> None:
    """Every field has the type session.py declares."""
    assert isinstance(conv.epoch, str)
    assert conv.system is None or type(conv.system) is str
    assert conv.provider is None or type(conv.provider) is str
    for ex in conv.exchanges:
        assert type(ex.user.content) is str and type(ex.assistant.content) is str
        assert type(ex.assistant.stopped) is bool and ex.user.stopped is False
        assert type(ex.provider) is str and type(ex.model) is str
        assert ex.key is None or type(ex.key) is str
        assert ex.first_text_s is None or type(ex.first_text_s) is float
        assert ex.total_s is None or type(ex.total_s) is float
        assert type(ex.finished_at) is float and type(ex.seq) is int
        for text in (ex.user.content, ex.assistant.content, ex.provider, ex.model, ex.key or ""):
            text.encode("utf-8")


@pytest.mark.parametrize("case", list(MALFORMED))
def test_restore_skips_what_is_not_valid_and_everything_works_after(
    ip: Any, tmp_path: Path, case: str
) -> None:
    content, skipped, valid = MALFORMED[case]
    path = tmp_path / "nb.ipynb"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    session = get_session()
    if skipped < 0:
        with pytest.raises(ConfigurationError, match="nb.ipynb"):
            restore(session, path)
        assert not session.conversations
    else:
        report = restore(session, path)
        assert report.invalid == skipped
        assert sum(len(conv) for conv in session) == valid
        summary = report.summary()
        if skipped:
            assert summary.endswith("Skipped 1 saved record that was not valid.")
        if not valid:
            assert summary.startswith(f"No chatmagic exchange could be restored from {path}.")
        else:
            assert summary.startswith(f"Restored from {path}: default: {valid} added")
    # every later command works
    reply(ip, "%%chat\nhi")
    for line in ("chat conversations", "chat history default", f"chat export default {tmp_path / 'x.json'}"):
        result, io = run(ip, f"%{line}")
        assert result.error_in_exec is None, (line, io.stdout, io.stderr)
    for conv in session:
        _assert_typed(conv)
        conv.messages()
        chatexport.to_json(conv)
        chatexport.to_markdown(conv)
        chatexport.export(conv, tmp_path / f"{conv.name}.md")
        session.prepare("hi", conversation=conv.name)
    if case == "lone surrogates":
        users = [ex.user.content for ex in session.conversation().exchanges]
        assert users[:2] == ["hello", "\ufffd hi"]
        assert "re \ufffd" in (tmp_path / "default.md").read_text(encoding="utf-8")


@pytest.fixture
def conv(ip: Any) -> Any:
    reply(ip, "%%chat -c ex\nquestion")
    return get_session().conversation("ex")


def test_export_to_a_place_it_cannot_write_says_what_to_do(ip: Any, conv: Any, tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("")
    cases = {
        str(tmp_path / "nope" / "chat-ex.md"): f"Cannot write chat-ex.md: the folder '{tmp_path / 'nope'}' "
        "does not exist. Give a path in an existing folder.",
        str(
            tmp_path
        ): f"Cannot write to '{tmp_path}': it is a folder. Give a file name, e.g. {tmp_path}/chat.md.",
        str(
            tmp_path / ("a" * 300 + ".md")
        ): "the file name or path is too long (303 characters in the name). Give a shorter one.",
        str(tmp_path / "file.txt" / "chat.md"): "is not a folder. Give a path in an existing folder.",
    }
    if Path("/sys").is_dir():  # root may write anywhere else
        cases["/sys/chat-ex.md"] = "Cannot write chat-ex.md: the folder '/sys' cannot be written to."
    for path, message in cases.items():
        result, io = run(ip, f"%chat export ex {path}")
        error = result.error_in_exec
        assert type(error).__name__ == "ConfigurationError", (path, error)
        assert message in str(error), path
        with pytest.raises(ConfigurationError):
            chatexport.export(conv, path)
    with pytest.raises(ConfigurationError, match="the path holds a character no file name can"):
        chatexport.export(conv, tmp_path / "nul\0.md")


def test_export_writes_text_that_cannot_be_encoded_as_replacement(conv: Any, tmp_path: Path) -> None:
    conv.system = "sys \udcff"  # a surrogate, as a decoded file name can carry
    target = chatexport.export(conv, tmp_path / "s.json")
    assert json.loads(target.read_text(encoding="utf-8"))["system"] == "sys \ufffd"
    assert "sys \ufffd" in chatexport.export(conv, tmp_path / "s.md").read_text(encoding="utf-8")
