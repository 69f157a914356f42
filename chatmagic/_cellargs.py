"""The options of a ``%%chat`` cell: one argparse declaration (IPython's magic_arguments).

``%%chat?`` prints them under the manual (chatmagic.magics.ChatMagics.chat), each with a
full sentence. Imported at load: nothing here but the declaration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython.core import magic_arguments

from ._defaults import DEFAULT_CONVERSATION
from .render import FORMATS

_OPTIONS = (
    magic_arguments.argument(
        "-p",
        "--provider",
        help="Provider to answer, e.g. chatgptt (see %%chat providers). "
        "It becomes the conversation's provider for the next cells.",
    ),
    magic_arguments.argument(
        "-m", "--model", help="Model of that provider; leave it out for the provider's default."
    ),
    magic_arguments.argument(
        "-s", "--system", help="System prompt; it stays with the conversation until changed."
    ),
    magic_arguments.argument(
        "-c",
        "--conversation",
        default=DEFAULT_CONVERSATION,
        help="Name of the conversation to continue (default: 'default').",
    ),
    magic_arguments.argument(
        "--new", action="store_true", help="Start the named conversation afresh before this message."
    ),
    magic_arguments.argument("--proxy", help="Proxy URL for this message, e.g. http://host:3128."),
    magic_arguments.argument(
        "--timeout",
        type=float,
        help="Seconds to wait for a connection or for the next bytes (not for the whole reply).",
    ),
    magic_arguments.argument(
        "--base-url", help="Address replacing the provider's site (a mirror, or the local stand-in)."
    ),
    magic_arguments.argument(
        "-f", "--format", choices=FORMATS, help="Show the reply as markdown (default), text or code."
    ),
    magic_arguments.argument(
        "-i",
        "--interpolate",
        action="store_true",
        help="Expand {name}, {obj.attr}, {Out[3]} from your variables; other braces stay as written.",
    ),
    magic_arguments.argument(
        "--no-interpolate",
        action="store_true",
        help="Send the cell exactly as written even when interpolation is on by default.",
    ),
    magic_arguments.argument(
        "-e",
        "--error",
        action="store_true",
        help="Attach the last error: its type and message, your frames of the traceback and the cell "
        "that raised (as --context error).",
    ),
    magic_arguments.argument(
        "--context",
        metavar="SPEC",
        help="Attach notebook context, items separated by commas: error (the last error), cells:N "
        "(the last N cells: their code, what they printed and their results), vars (your variables: names, types, shapes), "
        "plots:N (the last N figures the cells showed, as images for a vision model, at most 1024 px and 256 KB each). Each "
        "item has a size budget; cuts are marked.",
    ),
    magic_arguments.argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="A request parameter for OpenAI-compatible servers, e.g. -o temperature=0.2 -o max_tokens=500 "
        "-o stop='[\"\\n\\n\"]' (the value is read as JSON when it is JSON, else as text). Repeatable; "
        "overrides ChatMagics.options.",
    ),
    magic_arguments.argument(
        "--attach",
        action="append",
        default=[],
        metavar="NAME",
        help="Send an image with the message to a vision model: a variable holding a matplotlib figure, "
        "a PIL image, PNG/JPEG bytes or a path, or Out[n]. Repeatable. Large images are downscaled "
        "(with Pillow).",
    ),
    magic_arguments.argument(
        "--tools",
        metavar="NAMES",
        help="Offer the model tools, separated by commas: your functions by name (each call waits for "
        "your approval: Run, Deny, Always), or 'notebook' for the built-ins that only read the notebook "
        "(variables, a variable's summary, a cell, the last error) and propose_cell.",
    ),
    magic_arguments.argument(
        "--dry-run",
        action="store_true",
        help="Show the exact messages that would be sent, and send nothing.",
    ),
)


def chat_options(magic: Callable[..., Any]) -> Any:
    """Declare the options on ``magic`` (as stacking the ``@argument`` decorators would)."""
    for option in reversed(_OPTIONS):  # the decorator nearest the function goes on first
        magic = option(magic)
    return magic_arguments.magic_arguments(name="%chat")(magic)
