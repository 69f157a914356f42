"""--tools in a real IPython shell: what cannot be offered is a UsageError before anything is
sent; an approved tool runs on the main thread and its card, record, history and export show
it; the terminal asks on the prompt line; the reply view's buttons answer."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from IPython.utils.capture import capture_output

from chatmagic._state import get_session
from chatmagic._toolcards import cards_html
from chatmagic._toolcell import ToolCell
from chatmagic.pause import Audience, Pauses
from chatmagic.record import exchange_record, saved_exchanges
from chatmagic.sandbox import Sandbox
from chatmagic.toolstep import ToolStep

from ._tool_schemas import KEY

pytestmark = pytest.mark.usefixtures("fresh")


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def run(ip: Any, source: str) -> tuple[Any, str]:
    with capture_output() as io:
        result = ip.run_cell(source)
    shown = "\n".join(o.data.get("text/plain", "") for o in io.outputs)
    return result, io.stdout + io.stderr + shown


def test_what_cannot_be_offered_is_refused_before_sending(ip: Any, sandbox_thread: Sandbox) -> None:
    ip.run_cell("def load_sales(region: str) -> str:\n    return region\nnot_a_function = 3")
    ip.run_cell("def loose(**options):\n    return options")
    for line, said in [
        ("-p chatgptt --tools load_sales", "ChatGptt is a web site's chat and cannot call tools"),
        ("-p openai --tools nope", "--tools nope: there is no 'nope' in the notebook"),
        ("-p openai --tools not_a_function", "--tools not_a_function: not a function (it is a int)"),
        ("-p openai --tools loose", "--tools loose: **options cannot be described to a model"),
    ]:
        result, shown = run(ip, f"%%chat {line}\nhi")
        assert result.error_in_exec is not None and said in shown, shown
        assert "Traceback" not in shown
    assert sandbox_thread.requests == []  # every refusal came before anything was sent
    result, shown = run(ip, "%%chat -p openai --tools load_sales --dry-run\nhi")
    assert (
        result.error_in_exec is None
        and 'Tools offered: [{"type": "function", "function": {"name": "load_sales"' in shown
    )
    assert "tool schemas (1)" in shown  # the glass box counts what the tools add to the request
    # nothing was sent to the model (a dry run may ask the server for its window: not a chat)
    assert [r.path for r in sandbox_thread.requests if r.path.endswith("/chat/completions")] == []
    with capture_output() as io:
        ip.run_line_magic("config", "ChatMagics.max_tool_steps = 0")
    assert "max_tool_steps must be 1 or more" in io.stderr
    assert ip.magics_manager.registry["ChatMagics"].max_tool_steps == 8


def test_an_approved_tool_runs_and_every_view_of_the_exchange_shows_it(
    ip: Any, sandbox_thread: Sandbox, tmp_path: Path
) -> None:
    ip.run_cell(
        "import threading\nran_on = []\n"
        "def load_sales(region: str) -> str:\n"
        "    '''Sales of a region.'''\n"
        "    ran_on.append(threading.current_thread() is threading.main_thread())\n"
        "    return f'120 units in {region}'"
    )
    get_session().pauses.allow("load_sales")
    ip.run_line_magic("config", "ChatMagics.tools = ['load_sales']")
    try:
        result, shown = run(ip, '%%chat -p openai -c t --new\n[[tool:load_sales {"region": "north"}]]')
    finally:
        ip.run_line_magic("config", "ChatMagics.tools = []")
    assert result.error_in_exec is None, shown
    assert ip.user_ns["ran_on"] == [True]  # on the main thread, run by the waiting cell
    assert "[tool] load_sales(region=north) · done in" in shown and "120 units in north" in shown
    (ex,) = get_session().conversation("t").exchanges
    (step,) = ex.tools
    assert step.state == "done" and step.by == "always"
    # the record keeps it, and a record read back approves nothing: only shown
    record = exchange_record(get_session().conversation("t"), ex)
    assert record["tools"][0]["name"] == "load_sales"
    record["tools"][0]["state"] = "waiting"
    outputs = [{"output_type": "display_data", "data": {}, "metadata": {"chatmagic": record}}]
    cells = [{"cell_type": "code", "source": "", "metadata": {}, "outputs": outputs, "execution_count": 1}]
    (saved,), bad = saved_exchanges({"nbformat": 4, "metadata": {}, "cells": json.loads(json.dumps(cells))})
    assert bad == 0
    assert saved.exchange.tools[0].state == "stopped"
    _, history = run(ip, "%chat history t")
    assert "[tool] load_sales(region=north) · done in" in history
    path = tmp_path / "t.md"
    run(ip, f"%chat export t {path}")
    text = path.read_text()
    assert "**Tool call** `load_sales`" in text and '{"region": "north"}' in text


def test_what_a_tool_displays_is_drawn_in_its_card_and_the_model_is_told_only_that(
    ip: Any, sandbox_thread: Sandbox
) -> None:
    ip.run_cell(
        "import base64\nfrom IPython.display import Image, display\n"
        "PNG = base64.b64decode("
        "'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==')\n"
        "def plot_sales(region: str) -> str:\n"
        "    '''A plot of a region's sales.'''\n"
        "    display(Image(data=PNG))\n"
        "    return 'plotted'"
    )
    get_session().pauses.allow("plot_sales")
    result, shown = run(
        ip, '%%chat -p openai -c p --new --tools plot_sales\n[[tool:plot_sales {"region": "north"}]]'
    )
    assert result.error_in_exec is None, shown
    (ex,) = get_session().conversation("p").exchanges
    (step,) = ex.tools
    assert step.state == "done" and len(step.images) == 1
    assert step.images[0].startswith("data:image/png;base64,iVBOR")
    assert "Displayed (image/png)" in step.result and "iVBOR" not in step.result  # the model: words only
    assert f'<img class="cm-tool-image" src="{step.images[0]}"' in cards_html(ex.tools)
    # the record keeps the image for the card (a record's image that is not PNG/JPEG data is dropped)
    record = exchange_record(get_session().conversation("p"), ex)
    assert record["tools"][0]["images"] == step.images


def test_the_terminal_asks_on_the_prompt_line() -> None:
    pauses = Pauses()
    pending = pauses.ask("tool", "rm_tree", {"arguments": {"path": "/tmp/x"}})
    step = ToolStep("c1", "rm_tree", '{"path": "/tmp/x"}', 1, state="waiting", ask=pending.id)
    turn = SimpleNamespace(
        steps=[step], waiting=[step], session=SimpleNamespace(pauses=pauses, audience=Audience())
    )
    asked: list[str] = []

    def answer(prompt: str) -> str:
        asked.append(prompt)
        return "a"

    with capture_output() as io:
        ToolCell(turn, main=SimpleNamespace(drain=lambda: 0), terminal=True, ask=answer).look()  # type: ignore[arg-type]
    assert asked == ["Run rm_tree? [y]es, [n]o, [a]lways for rm_tree in this session: "]
    assert "[tool] rm_tree(path=/tmp/x) · waiting" in io.stdout
    assert pending.result(1) == "run" and pauses.always("rm_tree")


def test_the_reply_views_buttons_answer() -> None:
    from chatmagic._replyview import ReplyView

    pauses = Pauses()
    pending = pauses.ask("tool", "plot")
    view = ReplyView.for_reply()
    turn = SimpleNamespace(steps=[], waiting=[], session=SimpleNamespace(pauses=pauses, audience=Audience()))
    ToolCell(turn, main=SimpleNamespace(drain=lambda: 0), view=view)  # type: ignore[arg-type]
    view._on_msg(view, {"type": "answer", "id": pending.id, "choice": "deny"}, [])
    assert pending.result(1) == "deny" and pending.by == "user"
    view._on_msg(view, {"type": "answer", "id": pending.id, "choice": "run"}, [])  # a stale click: nothing
    assert pending.answer == "deny"


def test_a_decorated_function_is_offered_by_its_tool_name(ip: Any) -> None:
    ip.run_cell(
        "import chatmagic\n"
        "@chatmagic.tool(name='sales', description='Units sold in a region.')\n"
        "def load_sales(region: str) -> str:\n"
        "    return f'{region}: 7 units'"
    )
    get_session().pauses.allow("sales")
    result, shown = run(
        ip, '%%chat -p openai -c deco --new --tools load_sales\n[[tool:sales {"region": "west"}]]'
    )
    assert result.error_in_exec is None, shown
    assert "[tool] sales(region=west) · done in" in shown and "west: 7 units" in shown
