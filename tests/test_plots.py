"""``--context plots``: displayed figures kept, downscaled to a pixel and byte cap, counted,
and refused for a chain that takes no images."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest

from chatmagic.errors import ConfigurationError
from chatmagic.plots import (
    MAX_PLOT_BYTES,
    MAX_PLOT_SIDE,
    Plot,
    PlotHistory,
    check_vision,
    fit_plot,
    plot_attachments,
)

Image = pytest.importorskip("PIL.Image")


def png(width: int, height: int, noisy: bool = False) -> bytes:
    import os

    if noisy:  # random pixels: no compression helps, only fewer pixels and colours do
        img = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        img = Image.new("RGB", (width, height), "white")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        return img.size


def test_a_large_plot_is_downscaled_to_the_pixel_and_byte_caps() -> None:
    big = png(3000, 2000, noisy=True)
    assert len(big) > 10 * MAX_PLOT_BYTES
    fitted = fit_plot(Plot(7, "image/png", big))
    width, height = size_of(fitted.data)
    assert max(width, height) <= MAX_PLOT_SIDE and len(fitted.data) <= MAX_PLOT_BYTES
    assert abs(width / height - 1.5) < 0.02  # the shape stays
    assert fitted.mime == "image/png" and fitted.name == "plot of In [7]"
    assert fitted.note.startswith("downscaled from 3000×2000 to ")


def test_a_matplotlib_figure_keeps_its_shape_and_fits() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 8), dpi=200)
    ax.plot(range(100), [x * x for x in range(100)])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    fitted = fit_plot(Plot(3, "image/png", buf.getvalue()))
    assert size_of(buf.getvalue()) == (2400, 1600)
    assert size_of(fitted.data) == (1024, 683) and len(fitted.data) <= MAX_PLOT_BYTES


def test_a_small_plot_goes_as_it_is() -> None:
    small = png(400, 300)
    fitted = fit_plot(Plot(1, "image/png", small))
    assert fitted.data == small and fitted.note == ""


def test_the_history_keeps_the_images_displays_carried_newest_last() -> None:
    history = PlotHistory(kept=2)
    first, second, third = png(10, 10), png(20, 20), png(30, 30)
    history.add({"text/plain": "<Figure>", "image/png": base64.b64encode(first).decode()}, 1)
    history.add({"text/plain": "no image"}, 2)
    history.add({"image/png": second}, 3)  # a raw display hands bytes
    history.add({"image/png": base64.b64encode(third).decode()}, 4)
    assert [(p.cell, p.data) for p in history.last(5)] == [(3, second), (4, third)]
    assert [p.cell for p in history.last(1)] == [4]
    (only,) = plot_attachments(history, 1)
    assert only.data == third
    with pytest.raises(ConfigurationError, match="no cell has displayed a figure yet"):
        plot_attachments(PlotHistory(), 1)


def test_a_chain_without_vision_is_refused_naming_the_option() -> None:
    from chatmagic.providers import get_provider

    with pytest.raises(ConfigurationError, match="--context plots sends images, and chatgptt takes none"):
        check_vision([get_provider("chatgptt")])
    check_vision([get_provider("openai")])
    check_vision([get_provider("chatgptt"), get_provider("ollama")])  # the one that takes images gets them


def test_what_is_not_an_image_is_not_kept() -> None:
    history = PlotHistory()
    history.add({"image/png": "https://example.org/plot.png"}, 1)
    history.add({"image/png": base64.b64encode(b"not an image").decode()}, 2)
    history.add("a display without a format dict", 3)
    assert len(history) == 0


async def test_a_server_says_whether_its_model_sees_images(sandbox: Any) -> None:
    from chatmagic.providers.vision import sees_images

    assert await sees_images(sandbox.base_url("llamacpp"), "") is False  # /props: modalities.vision
    assert await sees_images(sandbox.base_url("ollama"), "llama3.2") is False  # /api/show: capabilities
    assert await sees_images(sandbox.base_url("ollama"), "gpt-4o") is True
    assert await sees_images(sandbox.base_url("ollama"), "") is None  # Ollama describes a named model
    assert await sees_images(sandbox.base_url("openai"), "gpt-4o") is None  # OpenAI does not say
