"""The error tree: public names, one-line rendering, redaction, a missing dependency."""

from __future__ import annotations

import sys

import pytest

import chatmagic
import chatmagic.errors as errors
from chatmagic.errors import ChatMagicError, MissingDependencyError, ProviderError, redact
from chatmagic.providers import get_provider
from chatmagic.sandbox import Sandbox


def test_all_is_sorted_and_complete() -> None:
    assert errors.__all__ == sorted(errors.__all__)
    public = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, Exception)}
    assert public <= set(errors.__all__)
    assert chatmagic.__all__ == sorted(chatmagic.__all__)


def test_every_error_is_documented_in_the_tree() -> None:
    for name in errors.__all__:
        if name[0].isupper():
            assert name in (errors.__doc__ or ""), name


def test_renders_as_one_line_in_ipython() -> None:
    err = ProviderError("ChatGptt", "the site answered HTTP 500. Try again later.")
    assert err._render_traceback_() == [
        "ProviderError: ChatGptt: the site answered HTTP 500. Try again later."
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("via http://ann:s3cret@127.0.0.1:3128 failed", "via http://***@127.0.0.1:3128 failed"),
        ("socks5://user@host:1080", "socks5://***@host:1080"),
        ("no credentials http://127.0.0.1:1/x", "no credentials http://127.0.0.1:1/x"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert ChatMagicError(text).message == expected


async def test_missing_curl_cffi_is_named(monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> None:
    monkeypatch.setitem(sys.modules, "curl_cffi", None)
    monkeypatch.setitem(sys.modules, "curl_cffi.requests", None)
    cls = get_provider("chatgptes")
    with pytest.raises(MissingDependencyError, match="ChatGptEs needs the curl_cffi package"):
        async with cls(base_url=sandbox.base_url("chatgptes")) as p:
            [c async for c in p.stream([{"role": "user", "content": "hi"}])]
