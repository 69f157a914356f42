"""Interpolation that does not break on braces, and --dry-run."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from chatmagic._state import get_session
from chatmagic.interpolate import interpolate
from chatmagic.sandbox import Sandbox

from .test_magics import final_output, reply, run

pytestmark = pytest.mark.usefixtures("fresh")

NS: dict[str, Any] = {
    "name": "Ada",
    "n": 3,
    "df": SimpleNamespace(shape=(10, 2), cols=["a", "b"]),
    "Out": {3: "forty-two"},
    "data": {"key": "value"},
    "a": "A!",
    "x": "X!",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello {name}, {n} times", "Hello Ada, 3 times"),
        ("shape {df.shape}, first {df.cols[0]}", "shape (10, 2), first a"),
        ("{Out[3]} and {data['key']} and {data[\"key\"]}", "forty-two and value and value"),
        (
            "unknown {nobody} and {df.missing} and {data['nokey']}",
            "unknown {nobody} and {df.missing} and {data['nokey']}",
        ),
        ('{"json": {"name": 1}}', '{"json": {"name": 1}}'),
        ("a dict {x: 1} and a set {x, n} and {}", "a dict {x: 1} and a set {x, n} and {}"),
        ("literal {{name}}", "literal {{name}}"),
        (
            r"$\frac{a}{x}$ and \frac{a}{x} and x^{n} and a_{n}",
            r"$\frac{a}{x}$ and \frac{a}{x} and x^{n} and a_{n}",
        ),
        ("$$ {a} $$ and $ {a} $ but {a}", "$$ {a} $$ and $ {a} $ but A!"),
        ("```python\nprint(f'{name}')\n```\nnow {name}", "```python\nprint(f'{name}')\n```\nnow Ada"),
        ("inline `f'{name}'` vs {name}", "inline `f'{name}'` vs Ada"),
        ("{name.__class__.__name__}", "str"),
        ("{df.shape[5]}", "{df.shape[5]}"),
    ],
)
def test_only_known_references_expand(text: str, expected: str) -> None:
    assert interpolate(text, NS).text == expected


def test_nothing_is_evaluated() -> None:
    ns = {"os": __import__("os")}
    assert interpolate("{os.system('echo hacked')}", ns).text == "{os.system('echo hacked')}"
    assert interpolate("{data[__import__('os')]}", NS).text == "{data[__import__('os')]}"


def test_long_values_are_shortened_with_a_marker() -> None:
    out = interpolate("{big}", {"big": "x" * 5000}, max_chars=100)
    # the one marker (chatmagic._text), inside the budget: two thirds of the rest before it
    assert out.text == "x" * 40 + "\n[… 4,940 characters of big left out …]\n" + "x" * 20
    assert out.shortened == ["big"] and out.replaced == ["big"]


def test_magic_interpolates_only_when_asked(ip: Any, sandbox_thread: Sandbox) -> None:
    ip.user_ns["who"] = "Grace"
    assert "You said: hi {who}" in reply(ip, "%%chat\nhi {who}")
    assert "You said: hi Grace" in reply(ip, '%%chat -i\nhi {who} {"k": 1}')
    ip.run_line_magic("config", "ChatMagics.interpolate = True")
    try:
        assert "You said: hey Grace" in reply(ip, "%%chat\nhey {who}")
        assert "You said: hey {who}" in reply(ip, "%%chat --no-interpolate\nhey {who}")
    finally:
        ip.run_line_magic("config", "ChatMagics.interpolate = False")
    # the conversation records the prompt as sent
    assert get_session().conversation().exchanges[1].user.content == 'hi Grace {"k": 1}'


def test_out_history_is_reachable(ip: Any) -> None:
    ip.run_cell("6 * 7", store_history=True)
    count = ip.execution_count - 1
    assert "You said: answer 42" in reply(ip, f"%%chat -i\nanswer {{Out[{count}]}}")


def test_dry_run_sends_nothing_and_changes_nothing(ip: Any, sandbox_thread: Sandbox) -> None:
    reply(ip, "%%chat\nfirst")
    ip.user_ns["who"] = "Grace"
    ip.user_ns["long"] = "y" * 3000
    sandbox_thread.clear()
    result, io = run(ip, '%%chat -i --dry-run -s "Be terse." -p opchatgpts\nhello {who} {long}')
    assert result.error_in_exec is None
    plain = final_output(io)["text/plain"]
    assert plain.startswith("[system]\nBe terse.\n\n[user]\nfirst\n\n[assistant]\n[chatgptt] You said: first")
    assert "[user]\nhello Grace yyy" in plain and "characters of long left out" in plain
    assert "dry run: nothing was sent. Provider: opchatgpts (gpt-3.5-turbo)." in plain
    assert "Interpolated: who, long; shortened: long." in plain
    assert sandbox_thread.requests == []
    conv = get_session().conversation()
    assert len(conv) == 1 and conv.provider is None and conv.system is None
    plain = final_output(run(ip, "%%chat --new --dry-run\nagain")[1])["text/plain"]
    assert plain.startswith("[user]\nagain")
    assert len(get_session().conversation()) == 1
