"""``--context plots[:N]``: the last figures the notebook's cells displayed, for a vision model.

While the extension is loaded, every image a cell displays (a matplotlib figure shown by the
inline backend, ``display(Image(...))``, a result shown as PNG) is copied, as the frontend got
it, into a short history (:class:`PlotHistory`): the shell's display publisher and display
hook are watched, not replaced (as :mod:`chatmagic.printed` watches ``sys.stdout``).

A plot goes to the model downscaled to a pixel and a byte cap (:func:`fit_plot`: at most
:data:`MAX_PLOT_SIDE` pixels on its longer side and :data:`MAX_PLOT_BYTES` bytes, with
Pillow), as an image part of the message (an :class:`~chatmagic.options.Attachment`, sent as
``--attach`` images are), and so counted in the glass box as each attachment is. A chain
with no provider that takes images refuses ``--context plots`` before anything is sent
(:func:`check_vision`).

Nothing here imports IPython: the extension hands over the shell's objects.
"""

from __future__ import annotations

import base64
import binascii
import io
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .attachments import Attachment, shrink
from .errors import ConfigurationError

__all__ = [
    "MAX_PLOT_BYTES",
    "MAX_PLOT_SIDE",
    "Plot",
    "PlotHistory",
    "check_vision",
    "fit_plot",
    "plot_attachments",
]

#: the longer side of a plot as sent: OpenAI's high-detail cost stays at 4 tiles at most (765 tokens)
MAX_PLOT_SIDE = 1024
#: the most bytes one plot may add to a request (base64 adds a third on the wire)
MAX_PLOT_BYTES = 256 * 1024
#: plots kept while the extension is loaded, newest last
KEPT_PLOTS = 12
#: the most bytes the kept images hold together: the oldest go first (a plot is far smaller)
MAX_KEPT_BYTES = 32 * 1024 * 1024
#: what a plot is, as the frontend got it
_MIMES = ("image/png", "image/jpeg")


@dataclass(frozen=True)
class Plot:
    """An image a cell displayed: the cell's number (None: not known), its type and bytes."""

    cell: int | None
    mime: str
    data: bytes = field(repr=False)

    @property
    def name(self) -> str:
        return f"plot of In [{self.cell}]" if self.cell is not None else "plot"


class PlotHistory:
    """The last :data:`KEPT_PLOTS` images the cells displayed (:class:`Plot`), newest last.

    :meth:`watch` wraps the ``publish`` of the shell's display publisher and the
    ``write_format_data`` of its display hook (the two ways an image reaches the frontend);
    :meth:`stop` puts them back, unless something else has wrapped them since.
    """

    def __init__(self, kept: int = KEPT_PLOTS) -> None:
        self._plots: deque[Plot] = deque(maxlen=kept)
        self._lock = threading.Lock()
        self._patched: list[tuple[Any, str, Any, Any]] = []  # object, method name, ours, its own

    def watch(self, display_pub: Any, displayhook: Any, cell: Callable[[], int | None]) -> None:
        """Copy each image ``display_pub.publish`` and ``displayhook.write_format_data`` show;
        ``cell()`` says which cell is running."""
        self._wrap(display_pub, "publish", cell)
        self._wrap(displayhook, "write_format_data", cell)

    def _wrap(self, target: Any, method: str, cell: Callable[[], int | None]) -> None:
        original = getattr(target, method, None)
        if original is None or any(t is target and m == method for t, m, _, _ in self._patched):
            return

        def watched(data: Any, *args: Any, **kwargs: Any) -> Any:
            result = original(data, *args, **kwargs)
            try:
                self.add(data, cell())
            except Exception:  # noqa: BLE001 - watching must never break a display
                pass
            return result

        own = getattr(target, "__dict__", {}).get(method)
        try:
            setattr(target, method, watched)
        except (AttributeError, TypeError):  # an object that takes no attributes: not watched
            return
        self._patched.append((target, method, watched, own))

    def add(self, data: Any, cell: int | None = None) -> None:
        """Keep the image of a display's format dict (``{"image/png": ...}``), if it has one."""
        if not isinstance(data, Mapping):
            return
        for mime in _MIMES:
            raw = _image_bytes(data.get(mime))
            if raw is not None and len(raw) <= MAX_KEPT_BYTES:
                with self._lock:
                    self._plots.append(Plot(cell, mime, raw))
                    while sum(len(p.data) for p in self._plots) > MAX_KEPT_BYTES:
                        self._plots.popleft()
                return

    def last(self, n: int) -> list[Plot]:
        """The newest ``n`` plots, oldest first."""
        with self._lock:
            return list(self._plots)[-n:] if n > 0 else []

    def __len__(self) -> int:
        with self._lock:
            return len(self._plots)

    def stop(self) -> None:
        for target, method, ours, own in self._patched:
            if getattr(target, "__dict__", {}).get(method) is ours:
                if own is None:
                    delattr(target, method)
                else:
                    setattr(target, method, own)
        self._patched.clear()


def _image_bytes(value: Any) -> bytes | None:
    """The bytes of a displayed image: frontends get base64 text; a raw display may hand bytes."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value)
        if value.startswith((b"\x89PNG", b"\xff\xd8\xff")):
            return value
    if isinstance(value, (str, bytes)):
        try:
            data = base64.b64decode(value, validate=False)
        except (binascii.Error, ValueError):
            return None
        return data if data.startswith((b"\x89PNG", b"\xff\xd8\xff")) else None  # not an image: a URL, ...
    return None


# -- to the model -----------------------------------------------------------------------


def fit_plot(plot: Plot, max_side: int = MAX_PLOT_SIDE, max_bytes: int = MAX_PLOT_BYTES) -> Attachment:
    """The plot within ``max_side`` pixels (its longer side) and ``max_bytes`` bytes.

    Plots are flat colours and lines: a palette of 256 colours keeps them sharp at a
    fraction of the bytes, and the size is brought down in steps until the bytes fit.
    Without Pillow, a plot that does not fit already is refused, saying what to install.
    """
    try:
        from PIL import Image  # noqa: F401 - is Pillow there? (shrink uses it)
    except ImportError:
        size = _png_size(plot.data)
        if len(plot.data) <= max_bytes and size is not None and max(size) <= max_side:
            return Attachment(plot.name, plot.mime, plot.data)
        raise ConfigurationError(
            f"--context plots: the {plot.name} is larger than what is sent ({max_side} pixels, "
            f"{max_bytes // 1024} KB): pip install pillow to let chatmagic downscale it."
        ) from None
    fitted = shrink(plot.data, max_side, max_bytes, f"--context plots: the {plot.name}", _plot_png, 0.8)
    if fitted is None:
        return Attachment(plot.name, plot.mime, plot.data)
    if len(fitted[1]) > max_bytes:  # noise at 50 pixels: not a plot
        raise ConfigurationError(f"--context plots: the {plot.name} does not fit in {max_bytes // 1024} KB.")
    return Attachment(plot.name, *fitted)


def _plot_png(img: Any, size: tuple[int, int]) -> tuple[bytes, str]:
    """Flat colours and lines: resampled smoothly, a palette of 256 colours, PNG."""
    from PIL import Image

    buf = io.BytesIO()
    img.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0).quantize(256).save(
        buf, format="PNG", optimize=True
    )
    return buf.getvalue(), "image/png"


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None


def plot_attachments(history: PlotHistory, n: int) -> list[Attachment]:
    """The newest ``n`` plots, each fitted (:func:`fit_plot`); ConfigurationError when the
    cells displayed none yet."""
    plots = history.last(n)
    if not plots:
        raise ConfigurationError(
            "--context plots: no cell has displayed a figure yet (since chatmagic was loaded). "
            "Show one first, e.g. with plt.show(), or attach an image with --attach NAME."
        )
    return [fit_plot(p) for p in plots]


def check_vision(chain: Sequence[Any]) -> None:
    """Refuse ``--context plots`` for a chain (provider classes) none of which takes images,
    before anything is sent (ConfigurationError naming the option and what to do)."""
    if any(cls.takes_images for cls in chain):
        return
    names = ", ".join(cls.name for cls in chain)
    raise ConfigurationError(
        f"--context plots sends images, and {names} takes none: leave plots out, or use a vision "
        "model on an OpenAI-compatible server (e.g. -p openai -m gpt-4o, -p ollama -m llava)."
    )
