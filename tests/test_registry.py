"""Third-party providers: the entry-point group and run-time registration."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatmagic import providers
from chatmagic.errors import ConfigurationError
from chatmagic.providers import get_provider, provider_names, register
from chatmagic.providers.base import Provider


@pytest.fixture
def clean_registry() -> Iterator[None]:
    saved = (dict(providers._paths), dict(providers._loaded), providers._entry_points_read)
    yield
    providers._paths.clear()
    providers._paths.update(saved[0])
    providers._loaded.clear()
    providers._loaded.update(saved[1])
    providers._entry_points_read = saved[2]


def test_entry_point_group_adds_a_provider(
    tmp_path: Path, clean_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "echo_plugin.py").write_text(
        textwrap.dedent("""
        from chatmagic.providers.base import Provider

        class Echo(Provider):
            name = "echo"
            label = "Echo"
            url = "http://127.0.0.1:9"
            default_model = "e1"
            models = ("e1",)

            async def _reply(self, messages, model, params, images):
                yield "echo: " + messages[-1]["content"]
    """)
    )
    dist = tmp_path / "echo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[chatmagic.providers]\nEcho = echo_plugin:Echo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    providers._entry_points_read = False
    assert "echo" in provider_names()
    cls = get_provider("ECHO")
    assert cls.label == "Echo"
    sys.modules.pop("echo_plugin", None)


async def test_register_at_run_time(clean_registry: None) -> None:
    @register
    class Upper(Provider):
        name = "upper"
        label = "Upper"
        url = "http://127.0.0.1:9"
        default_model = "u"
        models = ("u",)

        async def _reply(
            self, messages: list[dict[str, str]], model: str, params: dict[str, Any], images: tuple[Any, ...]
        ) -> AsyncIterator[str]:
            yield messages[-1]["content"].upper()

    async with get_provider("upper")() as p:
        assert [c async for c in p.stream([{"role": "user", "content": "hi"}])] == ["HI"]


def test_broken_plugin_is_a_clear_error(clean_registry: None) -> None:
    providers._paths["broken"] = "no_such_module_anywhere:Thing"
    with pytest.raises(ConfigurationError, match="could not be loaded from no_such_module_anywhere:Thing"):
        get_provider("broken")
