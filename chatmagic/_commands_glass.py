"""``%chat context``, ``%chat send``, ``%chat cancel``: the glass box of a conversation's next
request, and the answers to a turn that waits over budget (chatmagic._gate)."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ._cell import Host
from ._cellinput import context_items, gather
from ._terminal import is_terminal
from .errors import ChatMagicError
from .glass import glass_bundle
from .preflight import check

__all__ = ["NEXT_MESSAGE", "cmd_cancel", "cmd_context", "cmd_send"]

#: what stands in for the message not written yet
NEXT_MESSAGE = "(your next message)"


def cmd_context(magics: Host, args: Any) -> None:
    """The request the next cell of conversation NAME would send (with ChatMagics.context), taken
    apart and counted as the model counts it; nothing is sent."""
    conv = magics.session.conversations.get(args.name)
    if conv is None or not (len(conv) or conv.system):
        print(
            f"The conversation {args.name!r} is empty: its next request is its system prompt and your message."
        )
        return
    try:
        items = context_items(magics.context)
        found = (
            gather(
                items,
                shell=magics.shell,
                ns=magics.user_ns(),
                last_error=magics.last_error,
                printed=magics.printed,
            )
            if items
            else None
        )
        text = found.attach(NEXT_MESSAGE) if found else NEXT_MESSAGE
        turn = magics.session.prepare(text, conversation=args.name)
    except ChatMagicError as exc:
        raise UsageError(str(exc)) from None
    anatomy = check(
        turn, sections=found.sections if found else (), limits=magics.session.limits, ask_server=True
    )
    note = f"Nothing was sent; {NEXT_MESSAGE!r} stands in for the message you will write."
    if is_terminal(magics.shell):
        print(f"{anatomy.text()}\n  {note}")
    else:
        display(glass_bundle(anatomy, [note]), raw=True)


def cmd_send(magics: Host, args: Any) -> None:
    _answer(magics, args.id, "send")


def cmd_cancel(magics: Host, args: Any) -> None:
    _answer(magics, args.id, "cancel")


def _answer(magics: Host, pending_id: str | None, choice: str) -> None:
    try:
        pending = magics.session.pauses.answer(pending_id, choice)
    except ChatMagicError as exc:
        raise UsageError(str(exc)) from None
    print(f"{pending.id}: {'sent anyway' if pending.answer == 'send' else 'cancelled'}.")
