"""Images sent with a message: the :class:`Attachment` a turn carries, and reading one from
what a variable holds (``--attach NAME``).

A matplotlib figure, a PIL image, PNG/JPEG/GIF/WebP bytes, a path to an image file, or an
object that shows itself as PNG/JPEG (``IPython.display.Image``, ``Out[n]``): each is read
by its shape, without importing the library it comes from. An image too large to send is
downscaled with Pillow when it is installed, else refused with a message saying so; a file
is read only if it is a regular file, and never more of it than the cap.
"""

from __future__ import annotations

import base64
import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._secrets import scrub
from .errors import ConfigurationError

__all__ = ["MAX_IMAGE_BYTES", "MAX_IMAGE_FILE_BYTES", "MAX_IMAGE_SIDE", "Attachment", "attachment_from"]

#: images larger than this are made smaller (with Pillow) or refused (without it)
MAX_IMAGE_BYTES = 4 * 1024 * 1024
#: the longer side of an image is brought down to this when Pillow is there to do it
MAX_IMAGE_SIDE = 2048
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def _image_type(data: bytes) -> str | None:
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class Attachment:
    """An image sent with a message: its bytes, their type, and where they came from."""

    name: str
    mime: str
    data: bytes = field(repr=False)
    #: how it was changed to fit (e.g. "downscaled from 4000×3000"), or ""
    note: str = ""

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    def describe(self) -> str:
        """One line for --dry-run and the status line: ``fig (image/png, 41 KB)``."""
        size = f"{len(self.data) / 1024:.0f} KB" if len(self.data) >= 1024 else f"{len(self.data)} bytes"
        # a name may be a path, and a path may hold a token
        return f"{scrub(self.name)} ({self.mime}, {size}{'; ' + self.note if self.note else ''})"


def attachment_from(value: Any, name: str) -> Attachment:
    """An image from what a variable holds: a matplotlib figure, a PIL image, PNG/JPEG bytes, a
    path to an image file, or an object that shows itself as PNG/JPEG (``IPython.display.Image``,
    ``Out[n]``). Too large: downscaled with Pillow, or refused without it."""
    data = _image_bytes(value, name)
    mime = _image_type(data)
    if mime is None:
        raise ConfigurationError(f"--attach {name}: the bytes are not a PNG, JPEG, GIF or WebP image.")
    return _fit(Attachment(name, mime, data))


def _image_bytes(value: Any, name: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (str, os.PathLike)):
        return _image_file(Path(value).expanduser(), name)
    if hasattr(value, "savefig"):  # a matplotlib figure
        buf = io.BytesIO()
        value.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()
    if hasattr(value, "save") and hasattr(value, "mode") and hasattr(value, "size"):  # a PIL image
        buf = io.BytesIO()
        value.save(buf, format="PNG")
        return buf.getvalue()
    for method in ("_repr_png_", "_repr_jpeg_"):  # IPython's rich display: display.Image, ...
        shown = getattr(value, method, None)
        data = shown() if callable(shown) else None
        if isinstance(data, tuple):  # (data, metadata)
            data = data[0]
        if isinstance(data, str):  # base64, as some objects give it
            data = base64.b64decode(data)
        if isinstance(data, bytes):
            return data
    raise ConfigurationError(
        f"--attach {name}: a {type(value).__name__} is not an image. Attach a matplotlib figure, "
        "a PIL image, PNG/JPEG bytes, a path to an image file, or Out[n] holding an image."
    )


#: the largest image file read for --attach (Pillow brings it down to MAX_IMAGE_BYTES)
MAX_IMAGE_FILE_BYTES = 64 * 1024 * 1024


def _image_file(path: Path, name: str) -> bytes:
    """An image file's bytes: a regular file only (not /dev/zero, not a pipe), its type
    checked from its first bytes and its size from the file system before it is read, and
    never more read than the cap."""
    try:
        # checked before opening: opening a named pipe would wait for a writer
        if not stat.S_ISREG(path.stat().st_mode):
            raise ConfigurationError(f"--attach {name}: {str(path)!r} is not a regular file.")
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(16)
            if _image_type(head) is None:
                raise ConfigurationError(
                    f"--attach {name}: {str(path)!r} is not a PNG, JPEG, GIF or WebP image."
                )
            if size > MAX_IMAGE_FILE_BYTES:
                raise ConfigurationError(
                    f"--attach {name}: {str(path)!r} is {size / 2**20:,.0f} MB, over the "
                    f"{MAX_IMAGE_FILE_BYTES // 2**20} MB read for an image. Make it smaller first."
                )
            return head + f.read(MAX_IMAGE_FILE_BYTES - len(head))
    except FileNotFoundError:
        raise ConfigurationError(f"--attach {name}: there is no image file at {str(path)!r}.") from None
    except OSError as exc:
        raise ConfigurationError(f"--attach {name}: cannot read {str(path)!r} ({exc.strerror}).") from None


def _fit(image: Attachment) -> Attachment:
    """The image within MAX_IMAGE_BYTES and MAX_IMAGE_SIDE, downscaled by Pillow if it is installed."""
    try:
        from PIL import Image  # noqa: F401 - is Pillow there? (shrink uses it)
    except ImportError:
        if len(image.data) > MAX_IMAGE_BYTES:
            raise ConfigurationError(
                f"--attach {image.name}: the image is {len(image.data) / 2**20:.1f} MB, over the "
                f"{MAX_IMAGE_BYTES // 2**20} MB that is sent. Make it smaller, or pip install pillow "
                "to let chatmagic downscale it."
            ) from None
        return image
    fitted = shrink(
        image.data, MAX_IMAGE_SIDE, MAX_IMAGE_BYTES, f"--attach {image.name}: the image", _photo, 0.7
    )
    return image if fitted is None else Attachment(image.name, *fitted)


def _photo(img: Any, size: tuple[int, int]) -> tuple[bytes, str]:
    """A photo or screenshot: PNG where it has transparency, else JPEG."""
    buf = io.BytesIO()
    if img.mode == "RGBA":
        img.resize(size).save(buf, format="PNG", optimize=True)
        return buf.getvalue(), "image/png"
    img.resize(size).save(buf, format="JPEG", quality=85)
    return buf.getvalue(), "image/jpeg"


def shrink(
    data: bytes,
    max_side: int,
    max_bytes: int,
    what: str,
    encode: Callable[[Any, tuple[int, int]], tuple[bytes, str]],
    step: float,
) -> tuple[str, bytes, str] | None:
    """An image brought within ``max_side`` pixels and ``max_bytes`` bytes: None when it is
    already, else ``(mime, data, note)``. The size goes down by ``step`` until ``encode``
    (a Pillow image and a size -> bytes, mime) gives few enough bytes, or 5% of the first
    size is reached. Needs Pillow (the caller says what to do without it); an image Pillow
    cannot read is a ConfigurationError starting with ``what``."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
            if len(data) <= max_bytes and max(width, height) <= max_side:
                return None
            img = opened.convert("RGBA" if opened.mode in ("RGBA", "LA", "P") else "RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ConfigurationError(f"{what} cannot be read ({exc}).") from None
    scale = min(1.0, max_side / max(width, height))
    while True:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        encoded, mime = encode(img, size)
        if len(encoded) <= max_bytes or scale < 0.05:
            break
        scale *= step
    return mime, encoded, f"downscaled from {width}×{height} to {size[0]}×{size[1]}"
