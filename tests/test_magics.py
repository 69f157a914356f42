"""%%chat and %chat in a real IPython shell, against the local stand-in."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest
from IPython.utils.capture import CapturedIO, capture_output

from chatmagic import present
from chatmagic._cellstream import SHEET
from chatmagic._state import get_session
from chatmagic.errors import ChatMagicError, TurnStopped
from chatmagic.sandbox import ForwardProxy, Sandbox

from .conftest import SITES

pytestmark = pytest.mark.usefixtures("fresh")


def run(ip: Any, source: str, cell_id: str | None = None) -> tuple[Any, CapturedIO]:
    with capture_output() as io:
        result = ip.run_cell(source, cell_id=cell_id)
    return result, io


def final_output(io: CapturedIO) -> dict[str, str]:
    """What the cell finally shows: the last bundle published for the reply's display."""
    return io.outputs[-1].data


def reply(ip: Any, source: str, cell_id: str | None = None) -> str:
    result, io = run(ip, source, cell_id)
    assert result.error_in_exec is None, io.stdout
    return final_output(io)["text/plain"]


# -- loading ---------------------------------------------------------------------------


def test_loading_imports_no_network_library() -> None:
    code = (
        "import sys, time\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        "ip.run_line_magic('load_ext', 'chatmagic')\n"
        "heavy = [m for m in ('aiohttp', 'curl_cffi', 'chatmagic.providers.chatgptt', 'markdown_it')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("[]"), out.stdout + out.stderr


def test_loading_imports_only_what_registering_the_magics_needs() -> None:
    # the session (asyncio), the providers' registry (importlib.metadata), the records, the
    # context and the panel come at first use; a %config before that still reaches the session
    code = (
        "import sys\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        "before = set(sys.modules)\n"
        "ip.run_line_magic('load_ext', 'chatmagic')\n"
        "late = ('chatmagic.session', 'chatmagic._state', 'chatmagic.providers', 'chatmagic.record',"
        " 'chatmagic.context', 'chatmagic.restore', 'chatmagic.panel', 'chatmagic.log', 'asyncio',"
        " 'importlib.metadata', 'anywidget')\n"
        "print([m for m in late if m in set(sys.modules) - before])\n"
        "ip.run_line_magic('config', 'ChatMagics.retries = 5')\n"
        "ip.run_line_magic('config', 'ChatMagics.default_provider = \"opchatgpts\"')\n"
        "from chatmagic._state import get_session\n"
        "s = get_session()\n"
        "print(s.retries, s.default_provider, len(s.sinks))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-2:] == ["[]", "5 opchatgpts 1"], out.stdout + out.stderr


def test_loading_leaves_the_cell_and_the_commands_to_their_first_use() -> None:
    # the magics only declare: a turn in a cell (chatmagic._cell) and the %chat commands
    # (chatmagic._commands) are imported by the first %%chat and the first %chat
    code = (
        "import sys\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        "ip.run_line_magic('load_ext', 'chatmagic')\n"
        "cell = ('chatmagic._cell', 'chatmagic._cellinput', 'chatmagic._cellstream', 'chatmagic.interpolate')\n"
        "commands = ('chatmagic._commands', 'chatmagic._commands_conv')\n"
        "print([m for m in cell + commands if m in sys.modules])\n"
        "ip.run_line_magic('chat', 'help')\n"
        "print([m for m in commands if m not in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "[]" and lines[-1] == "[]", out.stdout + out.stderr


def test_manual_has_examples(ip: Any) -> None:
    doc = ip.find_cell_magic("chat").__doc__
    assert "Examples" in doc and "In [2]: %%chat --provider chatgptt" in doc
    assert "--conversation" in doc and "--base-url" in doc


def test_reload_keeps_conversations(ip: Any) -> None:
    reply(ip, "%%chat\nremember me")
    ip.run_line_magic("reload_ext", "chatmagic")
    assert "Earlier messages: 2." in reply(ip, "%%chat\nstill there?")


def test_another_chat_magic_keeps_ours_as_chatmagic(ip: Any) -> None:
    ip.run_line_magic("unload_ext", "chatmagic")
    ip.register_magic_function(lambda line, cell: "theirs", "cell", "chat")
    try:
        with capture_output() as io:
            ip.run_line_magic("load_ext", "chatmagic")
        assert "already provides %%chat" in io.stdout
        assert ip.run_cell_magic("chat", "", "x") == "theirs"
        assert "You said: ours" in reply(ip, "%%chatmagic\nours")
    finally:
        ip.run_line_magic("unload_ext", "chatmagic")
        del ip.magics_manager.magics["cell"]["chat"]
        ip.run_line_magic("load_ext", "chatmagic")


# -- conversations ---------------------------------------------------------------------


def test_reply_streams_into_one_display_and_history_continues(ip: Any) -> None:
    SHEET.reset()  # the kernel session's first reply
    result, io = run(ip, "%%chat\nExplain this traceback in two sentences.")
    assert result.error_in_exec is None
    style, first, *updates = io.outputs
    # the stylesheet goes once, in an output of its own: the updates never carry it again
    assert style.data["text/html"] == present.STYLE and not style.update
    assert not first.update and all(o.update for o in updates)
    assert not any(present.STYLE in o.data["text/html"] for o in [first, *updates[:-1]])
    display_id = first.transient["display_id"]
    assert all(o.transient["display_id"] == display_id for o in updates)
    final = final_output(io)
    assert final["text/plain"].startswith(
        "[chatgptt] You said: Explain this traceback in two sentences.\n\nEarlier messages: 0."
    )
    assert "chatgptt · gpt-4o · first text" in final["text/plain"]
    assert "<p>[chatgptt] You said:" in final["text/html"]
    assert "Earlier messages: 2." in reply(ip, "%%chat\nNow as a haiku.")
    conv = get_session().conversation()
    assert [m.role for m in conv.history()] == ["user", "assistant"] * 2


def test_named_conversations_and_new(ip: Any) -> None:
    reply(ip, "%%chat -c a\none")
    reply(ip, "%%chat -c b\nother")
    assert "Earlier messages: 2." in reply(ip, "%%chat -c a\ntwo")
    assert "Earlier messages: 0." in reply(ip, "%%chat -c a --new\nafresh")
    assert len(get_session().conversation("a")) == 1
    assert len(get_session().conversation("b")) == 1


def test_rerunning_a_cell_replaces_its_exchange(ip: Any) -> None:
    reply(ip, "%%chat\nfirst", cell_id="cell-1")
    reply(ip, "%%chat\nsecond", cell_id="cell-2")
    # re-run cell-1 with new text: replaced in place, sent with only what came before it
    assert "Earlier messages: 0." in reply(ip, "%%chat\nfirst, edited", cell_id="cell-1")
    conv = get_session().conversation()
    assert [ex.user.content for ex in conv.exchanges] == ["first, edited", "second"]


def test_without_cell_id_rerunning_the_last_cell_replaces_it(ip: Any) -> None:
    reply(ip, "%%chat\nsame")
    reply(ip, "%%chat\nsame")
    assert len(get_session().conversation()) == 1
    reply(ip, "%%chat\ndifferent")
    reply(ip, "%%chat\nsame")
    assert [ex.user.content for ex in get_session().conversation().exchanges] == ["same", "different", "same"]


# -- options ---------------------------------------------------------------------------


@pytest.mark.parametrize("site", SITES)
def test_provider_option(ip: Any, site: str) -> None:
    assert reply(ip, f"%%chat -p {site}\nhi").startswith(f"[{site}] You said: hi")
    # the provider stays with the conversation
    assert reply(ip, "%%chat\nagain").startswith(f"[{site}] You said: again")


def test_model_option_and_unknown_model(ip: Any) -> None:
    assert "chatgptt · gpt-4o-mini" in reply(ip, "%%chat -m gpt-4o-mini\nhi")
    result, io = run(ip, "%%chat -m gpt-9\nhi")
    assert isinstance(result.error_in_exec, ChatMagicError)
    assert "ChatGptt has no model 'gpt-9'" in io.stdout
    assert "Traceback" not in io.stdout and "File " not in io.stdout


def test_system_option_is_sent_and_kept(ip: Any, sandbox_thread: Sandbox) -> None:
    reply(ip, '%%chat -s "Answer in French."\nhello')
    reply(ip, "%%chat\nmore")
    posted = [r for r in sandbox_thread.requests if r.method == "POST"]
    assert posted[0].form["message"] == "System: Answer in French.\nUser: hello\nAssistant:"
    assert posted[1].form["message"].startswith("System: Answer in French.\nUser: hello\n")


def test_base_url_option(ip: Any, sandbox_thread: Sandbox) -> None:
    url = f"{sandbox_thread.url}/_fault/cloudflare/chatgptt"
    result, io = run(ip, f"%%chat --base-url {url}\nhi")
    assert "bot check (Cloudflare" in io.stdout


def test_proxy_option(ip: Any) -> None:
    proxy = ForwardProxy().start_in_thread()
    try:
        assert "via proxy" in reply(ip, f"%%chat --proxy {proxy.url}\nvia proxy")
        assert proxy.requests
    finally:
        proxy.stop()


def test_timeout_option(ip: Any) -> None:
    result, io = run(ip, "%%chat -p opchatgpts --timeout 0.5\n[[fault:stall]]one two three")
    assert "Opchatgpts: the site stopped sending for 0.5 s" in io.stdout
    assert len(get_session().conversation()) == 0


@pytest.mark.parametrize("fmt", ["text", "code"])
def test_format_option(ip: Any, fmt: str) -> None:
    _, io = run(ip, f"%%chat -f {fmt}\n[[reply]]```python\nprint('<b>')\n```")
    html = final_output(io)["text/html"]
    assert "&lt;b&gt;" in html and "<b>" not in html
    if fmt == "text":  # as written, fences and all
        assert '<pre class="chatmagic-text">' in html and "```" in html
    else:  # rendered: -f code shows the reply as Markdown too, and puts its code in a new cell
        assert "```" not in html and "<pre" in html


def test_config_defaults(ip: Any) -> None:
    ip.run_line_magic("config", "ChatMagics.default_provider = 'opchatgpts'")
    assert reply(ip, "%%chat\nhi").startswith("[opchatgpts]")


def test_config_refuses_an_unknown_provider_in_one_line(ip: Any) -> None:
    for value, said in (
        ("'nosuch'", "No provider named 'nosuch'. Known providers:"),
        ("'opchatgpt'", "No provider named 'opchatgpt': did you mean 'opchatgpts'?"),
        ("'chatgptt,nosuch'", "No provider named 'nosuch'."),
    ):
        with capture_output() as io:
            ip.run_line_magic("config", f"ChatMagics.default_provider = {value}")
        assert io.stderr.startswith(said) and io.stderr.count("\n") == 1, io.stderr
        assert ip.run_line_magic("config", "ChatMagics.default_provider") == "chatgptt"
    with capture_output() as io:
        ip.run_line_magic("config", "ChatMagics.timeout = -1")
    assert io.stderr == "ChatMagics.timeout must be a number of seconds, 0 for no limit (got -1.0).\n"
    # a preset, a chain, an endpoint configured with it
    ip.run_line_magic("config", "ChatMagics.default_provider = 'ollama,openai'")
    assert ip.run_line_magic("config", "ChatMagics.default_provider") == "ollama,openai"


def test_a_mistyped_provider_gets_did_you_mean(ip: Any) -> None:
    result, io = run(ip, "%%chat -p opchatgpt\nhi")
    assert "No provider named 'opchatgpt': did you mean 'opchatgpts'?" in io.stdout


def test_bad_arguments_get_a_usage_message(ip: Any) -> None:
    result, io = run(ip, "%%chat --nope\nhi")
    assert "UsageError" in io.stdout + io.stderr and "unrecognized arguments: --nope" in io.stdout + io.stderr
    result, io = run(ip, "%%chat --timeout -1\nhi")
    assert "--timeout must be a positive number" in io.stdout + io.stderr
    result, io = run(ip, "%%chat\n   ")
    assert "The message is empty" in io.stdout
    result, io = run(ip, "%%chat -p nosuch\nhi")
    assert "No provider named 'nosuch'. Known providers:" in io.stdout


# -- errors ----------------------------------------------------------------------------

ERRORS = [
    ("http500", "HTTP 500"),
    ("cloudflare", "bot check"),
    ("service_error", "Missing API Setting"),
    ("broken_line", "not"),
    ("wrong_content_type", "web page"),
    ("missing_field", ""),
    ("empty", "empty"),
    ("drop", "connection was cut in the middle of the reply"),
]


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize(("fault", "text"), ERRORS, ids=[e[0] for e in ERRORS])
def test_provider_errors_are_one_line(ip: Any, site: str, fault: str, text: str) -> None:
    result, io = run(ip, f"%%chat -p {site}\n[[fault:{fault}]] one two three four")
    assert isinstance(result.error_in_exec, ChatMagicError)
    lines = [line for line in io.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, io.stdout
    assert text in lines[0]
    assert len(get_session().conversation()) == 0  # a failed turn adds nothing


def test_interrupt_stops_at_once_and_keeps_the_partial_text(ip: Any, sandbox_thread: Sandbox) -> None:
    timer = threading.Timer(0.6, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    result, io = run(ip, "%%chat -p opchatgpts\n[[words:400]][[delay:0.05]]")
    timer.cancel()
    assert isinstance(result.error_in_exec, TurnStopped)
    final = final_output(io)["text/plain"]
    assert final.startswith("w1 w2 ") and "■ stopped" in final
    assert "w400" not in final
    (ex,) = get_session().conversation().exchanges
    assert ex.stopped and ex.assistant.content.startswith("w1 w2")
    # the next cell continues a consistent conversation
    assert "Earlier messages: 2." in reply(ip, "%%chat\nand now?")


# -- display ---------------------------------------------------------------------------


def test_model_html_never_runs(ip: Any) -> None:
    evil = (
        "[[reply]]Hi <script>alert(1)</script> <img src=x onerror=alert(2)> "
        "[click](javascript:alert(3)) ![pic](http://example.invalid/p.png) "
        "<iframe src='http://example.invalid'></iframe> **bold**"
    )
    html = final_output(run(ip, f"%%chat\n{evil}")[1])["text/html"]
    lowered = html.lower()
    for bad in ("<script", "<img", "<iframe", 'href="javascript'):
        assert bad not in lowered
    assert not re.search(r"<[^>]*\bon\w+=", lowered)  # no event handler inside any tag
    assert '<a href="http://example.invalid/p.png"' in html  # the image became a link
    assert "<strong>bold</strong>" in html
    assert "&lt;script&gt;" in html  # shown as text, not run


def test_long_reply_is_paced(ip: Any) -> None:
    """Finished blocks go out once each, the open tail is updated, the end carries the record."""
    from chatmagic._cellstream import ReplyStream, message_size

    paragraphs = [" ".join(f"p{i}w{j}" for j in range(30)) for i in range(40)]
    text = "\n\n".join(paragraphs)
    result, io = run(ip, f"%%chat -p chatgpt4online\n[[delay:0.001]][[reply]]{text}")
    assert result.error_in_exec is None, io.stdout
    outputs = io.outputs
    final = outputs[-1]
    assert final.update and final.data["text/plain"].startswith(text + "\n\n— chatgpt4online")
    # exactly one output carries the record (what %chat restore reads)
    assert [o for o in outputs if "chatmagic" in (o.metadata or {})] == [final]
    # what a reader sees, output after output: every word once, in order
    last: dict[str, str] = {}
    for o in outputs:
        last[o.transient.get("display_id", "style")] = o.data["text/html"]
    shown = re.sub(r"<style>.*?</style>|<[^>]+>", " ", " ".join(last.values())).split()
    assert [w for w in shown if w.startswith("p")] == text.split()
    # while streaming (the final update excluded): the fixed multiple of the reply, 10 a second
    budget = ReplyStream()
    streamed = sum(message_size(o.data) for o in outputs[:-1])
    assert streamed <= budget.allowance + budget.per_char * len(text)
    assert len(outputs) < 1200 / 4  # not one message per chunk
    assert len(last) > 1  # finished paragraphs went into outputs of their own


# -- %chat -----------------------------------------------------------------------------


def test_line_commands(ip: Any) -> None:
    with capture_output() as io:
        ip.run_line_magic("chat", "providers")
    assert "chatgptfree" in io.outputs[0].data["text/plain"]
    reply(ip, "%%chat -c notes\nhello")
    with capture_output() as io:
        ip.run_line_magic("chat", "conversations")
        ip.run_line_magic("chat", "history notes")
    assert "notes" in io.outputs[0].data["text/plain"]
    assert "user: hello" in io.outputs[1].data["text/plain"]
    with capture_output() as io:
        ip.run_line_magic("chat", "reset notes")
    assert len(get_session().conversation("notes")) == 0
    with capture_output() as io:
        ip.run_line_magic("chat", "use chatgptfree gpt-4o-mini")
    assert "[chatgptfree]" in reply(ip, "%%chat\nhi")
    result, io = run(ip, "%chat frobnicate")
    assert "has no command 'frobnicate'" in io.stdout + io.stderr
    result, io = run(ip, "%chat use nosuch")
    assert "No provider named" in io.stdout + io.stderr


def test_sandbox_fault_command(ip: Any) -> None:
    from chatmagic import _state

    result, io = run(ip, "%chat sandbox fault chatgptt http500")
    assert "The stand-in is not running" in io.stdout + io.stderr
    saved = dict(get_session().base_urls)
    try:
        run(ip, "%chat sandbox")
        result, io = run(ip, "%chat sandbox fault chatgptes cloudflare 1")
        assert "will answer the next 1 chat request(s) with: cloudflare" in io.stdout
        assert "(after chatgptes failed)" in reply(ip, "%%chat -p chatgptes,chatgptt\nhi")
        result, io = run(ip, "%chat sandbox fault nosite http500")
        assert "No such site 'nosite'" in io.stdout + io.stderr
        # what a cell did not use waits for later cells: listed, and cleared
        result, io = run(ip, "%chat sandbox fault opchatgpts http500 3")
        assert "Each retry is a request (ChatMagics.retries = 0: a cell makes up to 1)" in io.stdout
        assert "%chat sandbox clear" in io.stdout
        result, io = run(ip, "%chat sandbox faults")
        assert io.stdout.strip() == "opchatgpts: http500 for the next 3 chat request(s)"
        result, io = run(ip, "%chat sandbox clear")
        assert io.stdout.startswith("Cleared 1 waiting fault(s)")
        result, io = run(ip, "%chat sandbox faults")
        assert io.stdout.startswith("No fault is waiting")
        assert "You said: hi" in reply(ip, "%%chat -p opchatgpts\nhi")
    finally:
        _state.stop_sandbox(get_session())
        get_session().base_urls.update(saved)


def test_new_with_a_mistake_loses_nothing(ip: Any) -> None:
    reply(ip, "%%chat -p opchatgpts -s 'Be brief.'\nkeep me")
    result, io = run(ip, "%%chat --new -p nosuch\nhi")
    assert "No provider named 'nosuch'" in io.stdout
    conv = get_session().conversation()
    assert len(conv) == 1 and conv.system == "Be brief." and conv.provider == "opchatgpts"
    # a real --new starts from the session's defaults
    assert reply(ip, "%%chat --new\nfresh").startswith("[chatgptt] You said: fresh\n\nEarlier messages: 0.")
    assert conv.system is None and len(conv) == 1


def test_running_a_code_cell_again_adds_no_second_copy(ip: Any) -> None:
    inserted: list[str] = []
    ip.set_next_input = lambda text, replace=False: inserted.append(text)  # what the frontend is asked
    try:
        source = "%%chat -f code -p opchatgpts\n[[reply]]Try:\n\n```python\nprint('hi')\n```\n"
        first = reply(ip, source, cell_id="code-cell")
        again = reply(ip, source, cell_id="code-cell")
        assert inserted == ["print('hi')"]
        assert "code put in a new cell below" in first
        assert "the same code is already in the cell below" in again
        # other code from the same cell is inserted
        reply(ip, source.replace("'hi'", "'bye'"), cell_id="code-cell")
        assert inserted == ["print('hi')", "print('bye')"]
    finally:
        del ip.set_next_input


def test_tables_are_left_aligned_and_keep_a_prompts_indentation(ip: Any) -> None:
    # JupyterLab aligns the cells of rendered HTML right (.jp-RenderedHTMLCommon td, one class
    # and a type): each line of a multi-line prompt then sits against the right edge
    result, io = run(ip, "%%chat --dry-run\ndef f():\n    return 1\n")
    shown = final_output(io)["text/html"]
    assert present.TABLE_STYLE in shown and '<table class="chatmagic-table">' in shown
    assert "def f():\n    return 1" in shown
    assert ".chatmagic-table.chatmagic-table :is(th,td){text-align:left" in present.TABLE_STYLE
    result, io = run(ip, "%chat providers")
    shown = final_output(io)["text/html"]
    assert present.TABLE_STYLE in shown and '<table class="chatmagic-table">' in shown
