"""A turn in a cell: ``%%chat`` and ``%chat fix``, from the parsed arguments to the reply shown.

The options, the notebook context and the interpolation make the message; the session
prepares the turn (chatmagic.session), with the tools it offers (chatmagic._toolcell); the
glass box takes it apart and decides (chatmagic.preflight); then either the dry run shows the
messages and their glass box and nothing is sent, or the gate lets it go (refused over the
window, asked over budget: chatmagic._gate) and the turn runs and streams into the cell's
display handles (chatmagic._cellshow: chatmagic._cellstream, or patches to the reply view,
chatmagic._replyview), or is printed in terminal IPython (chatmagic._terminal). A turn whose
tool call waits for an answer ends the cell and goes on in its outputs. Every error leaves as
one line.

The functions take the loaded magics (chatmagic.magics.ChatMagics) as :class:`Host`:
the layers let this module know it only by what it offers.
"""

from __future__ import annotations

import contextvars
import html
import json
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from IPython.core.error import UsageError
from IPython.display import display

from . import present
from ._cellinput import attachment, context_items, gather, last_error_context
from ._cellshow import end_outputs, reply_view, stream_outputs
from ._cellstream import SHEET, ReplyStream
from ._compacting import with_plots
from ._gate import gate
from ._lasterror import LastError
from ._terminal import TerminalReply, is_terminal
from ._text import cell_key, text_key
from ._toolcell import ToolCell, offer_tools, tool_cell
from .anatomy import Anatomy
from .code import INSERTED, code_of
from .context import Context
from .errors import ConfigurationError, TurnStopped
from .glass import glass_html
from .interpolate import Expansion, interpolate
from .options import TurnOptions, parse_option
from .plots import PlotHistory
from .preflight import check, sent_messages
from .present import outcome, status_html, table_html
from .printed import PrintedOutput
from .session import ChatSession, Turn
from .session.toolhistory import shown_text
from .unrestored import unrestored_message

if TYPE_CHECKING:
    from ._replyview import ReplyView

#: the conversation a %chat fix without -c starts afresh
FIX_CONVERSATION = "fix"
FIX_REQUEST = (
    "Explain briefly what caused this error, then give the corrected code in one Python code block, "
    "changing only what the fix needs."
)


class Host(Protocol):
    """What a turn in a cell needs of the loaded magics (chatmagic.magics.ChatMagics)."""

    @property
    def shell(self) -> Any: ...
    @property
    def session(self) -> ChatSession: ...
    @property
    def cell_id(self) -> str | None: ...
    @property
    def printed(self) -> PrintedOutput: ...
    @property
    def plots(self) -> PlotHistory: ...
    @property
    def last_error(self) -> LastError: ...
    @property
    def format(self) -> str: ...
    @property
    def context(self) -> str: ...
    @property
    def interpolate(self) -> bool: ...
    @property
    def interpolate_max_chars(self) -> int: ...
    @property
    def tools(self) -> str | list[str]: ...
    @property
    def max_tool_steps(self) -> int: ...
    def user_ns(self) -> dict[str, Any]: ...
    def note_notebook(self) -> None: ...


def run_cell(magics: Host, args: Any, cell: str) -> None:
    """A ``%%chat`` cell, its arguments parsed: the message made, then sent or shown (--dry-run)."""
    try:
        options = TurnOptions(
            provider=args.provider,
            model=args.model,
            system=args.system,
            proxy=args.proxy,
            base_url=args.base_url,
            timeout=args.timeout,
            params=dict(parse_option(o) for o in args.option) or None,
            attachments=tuple(attachment(magics.user_ns(), name) for name in args.attach),
        )
        spec = ",".join(filter(None, [magics.context, args.context, "error" if args.error else ""]))
        items = context_items(spec)
        options = with_plots(magics.session, magics.plots, items, options, args.conversation, args.new)
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None
    text, expansion = cell, None
    if args.interpolate or (magics.interpolate and not args.no_interpolate):
        expansion = interpolate(cell, magics.user_ns(), magics.interpolate_max_chars)
        text = expansion.text
    notes: list[str] = []
    sections: list[tuple[str, str]] = []
    if items:
        context = gather(
            items,
            shell=magics.shell,
            ns=magics.user_ns(),
            last_error=magics.last_error,
            printed=magics.printed,
        )
        if not context and args.error:
            raise UsageError("There is no error to attach yet: run the cell that fails first.")
        text = context.attach(text)
        sections = context.sections
        if context:
            notes.append(f"with {', '.join(context.titles).lower()}")
    key = _exchange_key(magics, cell)
    _send(
        magics,
        text,
        args,
        options,
        key=key,
        expansion=expansion,
        notes=notes,
        sections=sections,
        tools=args.tools or "",
    )


def fix(magics: Host, args: Any) -> None:
    """``%chat fix``: the last error and its code sent with FIX_REQUEST; the reply streams here."""
    error = last_error_context(magics.shell, magics.last_error)
    if error is None:
        raise UsageError("There is no error yet: %chat fix explains the last exception a cell raised.")
    try:
        options = TurnOptions(provider=args.provider, model=args.model)
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None
    context = Context()
    context.add("Error", error)
    text = context.attach(FIX_REQUEST)
    # a fix carries the error and its code, not a conversation: unless -c names one, it
    # starts the conversation FIX_CONVERSATION afresh (%%chat -c fix goes on from it)
    args.new = args.conversation is None
    args.conversation = args.conversation or FIX_CONVERSATION
    args.dry_run, args.format = False, None
    _send(magics, text, args, options, key=_exchange_key(magics, text), notes=["with the last error"])


def _send(
    magics: Host,
    text: str,
    args: Any,
    options: TurnOptions,
    *,
    key: str,
    expansion: Expansion | None = None,
    notes: list[str],
    sections: list[tuple[str, str]] | None = None,
    tools: str | None = None,
) -> None:
    """Prepare, then show the dry run or run the turn: the one path of %%chat and %chat fix.

    ``tools``: a ``%%chat`` cell's ``--tools`` ("" for none: ``ChatMagics.tools`` still offers
    its own); None for ``%chat fix``, which offers none."""
    magics.note_notebook()
    session = magics.session
    if not args.new:  # never from an empty history while the notebook holds this one's
        refused = unrestored_message(session, args.conversation, key)
        if refused is not None:
            raise UsageError(refused)
    turn = session.prepare(text, conversation=args.conversation, options=options, key=key, fresh=args.new)
    if tools is not None:
        offer_tools(magics, turn, tools)
    try:
        turn.notes += notes
        # the glass box: each part counted, the window, the cost, the budget's decision (the
        # server's own tokenizer for a dry run; before a turn only near a limit)
        offered = turn.tools.wire() if turn.tools is not None else None  # the tool schemas count too
        anatomy = check(
            turn,
            sections=sections or (),
            tools=offered,
            limits=session.limits,
            ask_server=args.dry_run or None,
        )
        if args.dry_run:
            _show_dry_run(turn, expansion, anatomy)
            return
        fmt = args.format or magics.format
        gate(magics.shell, anatomy, session.pauses, session.audience, make_view=lambda: reply_view(fmt))
        if fmt == "code":  # shown as Markdown; its code goes into a new cell below
            turn.code_to_cell = True
            run(magics, turn, "markdown")
            _code_to_cell(magics, turn)
        else:
            run(magics, turn, fmt)
    except KeyboardInterrupt:
        # Ctrl-C once the turn exists but before run took charge of it (or after it let
        # go): the one-line message, never a raw KeyboardInterrupt from deep inside
        turn.stop()
        raise stopped(turn) from None


def _code_to_cell(magics: Host, turn: Turn) -> None:
    code = code_of(turn.text) if turn.state == "done" and turn.code_to_cell else ""
    # running the cell again adds no second copy of the same code
    if code and magics.shell is not None and INSERTED.is_new(turn.key, code):
        # JupyterLab and Notebook 7 insert it as a new cell below; the terminal pre-fills the prompt
        magics.shell.set_next_input(code, replace=False)
        INSERTED.put(turn.key, code)


def _exchange_key(magics: Host, cell: str) -> str:
    """The cell id; without one, the text (a re-run of the last exchange replaces it)."""
    if magics.cell_id:
        return cell_key(magics.cell_id)
    return text_key(cell)


def _show_dry_run(turn: Turn, expansion: Expansion | None, anatomy: Anatomy) -> None:
    """The messages exactly as they would be sent, then their glass box; nothing sent."""
    chain = " → ".join(f"{p} ({turn.models.get(p, '')})" for p in turn.chain)
    notes = [f"dry run: nothing was sent. Provider: {chain}."]
    if expansion is not None:
        notes.append(
            f"Interpolated: {', '.join(expansion.replaced) or 'nothing'}"
            + (f"; shortened: {', '.join(expansion.shortened)}" if expansion.shortened else "")
            + "."
        )
    params = {**turn.session.default_params, **(turn.options.params or {})}
    if params:
        notes.append(f"Options: {json.dumps(params, ensure_ascii=False)}.")
    if turn.options.attachments:
        notes.append(f"Attached: {', '.join(a.describe() for a in turn.options.attachments)}.")
    if turn.tools is not None:  # each tool's schema goes with the request: the messages' part of it
        notes.append(f"Tools offered: {json.dumps(turn.tools.wire(), ensure_ascii=False)}.")
    sent = sent_messages(turn)  # earlier tool calls as the provider takes them
    plain = "\n\n".join(f"[{m['role']}]\n{shown_text(m)}" for m in sent)
    rows = "".join(
        f"<tr><td><b>{html.escape(m['role'])}</b></td>"
        f'<td><pre class="chatmagic-text">{html.escape(shown_text(m))}</pre></td></tr>'
        for m in sent
    )
    display(
        {
            "text/html": f"{table_html(rows)}{glass_html(anatomy)}{status_html(' '.join(notes))}",
            "text/plain": f"{plain}\n\n{anatomy.text()}\n\n— {' '.join(notes)}",
        },
        raw=True,
    )


def run(magics: Host, turn: Turn, fmt: str) -> None:
    """Start the turn and stream it into the cell (_cellstream.ReplyStream), or the terminal.

    In a notebook the last output shows the kernel's reply view (chatmagic._replyview):
    once it says hello the reply goes to it as patches. Until then the reply's finished
    blocks go into outputs of their own, sent once, and the open tail into the last
    output. Its final update carries the status line, the whole reply as plain text and
    the record for ``%chat restore``, and replaces the view. In
    terminal IPython the text is printed as it arrives (chatmagic._terminal).

    Ctrl-C at any moment once the turn exists, even before it has started or before
    its display exists, stops it: the user sees the one-line "Stopped" message and
    the reply never joins the history behind their back.
    """
    terminal = None
    if is_terminal(magics.shell):
        terminal = TerminalReply()
    stream = ReplyStream(fmt)
    view = reply_view(fmt) if terminal is None else None
    handles: list[Any] = []
    thinking_handle: Any = None
    interrupted = False
    tools: ToolCell | None = None
    try:
        magics.session.start(turn)
        tools = tool_cell(magics, turn, view, terminal=terminal is not None)  # offered, or replayed
        if terminal is not None:
            terminal.follow(turn, tools.look if tools is not None else None)
        else:
            if SHEET.claim(magics.cell_id):  # the stylesheet goes once a kernel session
                display(stream.style(time.monotonic()), raw=True)
            else:  # an earlier reply carried it: this one's final output, the small fallback
                stream.styled, stream.fallback = True, present.FALLBACK_STYLE
            if tools is not None:
                tools.open()
            first = stream.start(present.waiting(turn), time.monotonic())
            handles.append(display(view.bundle(first) if view else first, raw=True, display_id=True))
            thinking_handle = stream_outputs(turn, stream, handles, view, tools)
    except KeyboardInterrupt:
        interrupted = True
        turn.stop()
        turn.wait(10)
    if tools is not None and not turn.done and not interrupted:
        # a call waits for an answer: the cell ends and other cells run; a thread follows the
        # turn into the same outputs, in this cell's context (its updates are this cell's)
        tools.hold()
        rest = (turn, stream, handles, view, tools, thinking_handle)
        follow = contextvars.copy_context()
        threading.Thread(
            target=follow.run, args=(_follow, *rest), name="chatmagic-tools", daemon=True
        ).start()
        return
    end_outputs(turn, stream, handles, thinking_handle, terminal, tools)
    if turn.state == "failed" and turn.error is not None:
        raise turn.error
    # Ctrl-C inside a tool that ran here stops the turn too (chatmagic.toolloop)
    interrupted = interrupted or any(s.state == "stopped" and s.ms is not None for s in turn.steps)
    if turn.state == "stopped" and interrupted:
        raise stopped(turn)


def _follow(
    turn: Turn,
    stream: ReplyStream,
    handles: list[Any],
    view: ReplyView | None,
    tools: ToolCell,
    thinking: Any,
) -> None:
    """After the cell ended with a call waiting: the rest of the turn, in the same outputs."""
    thinking = stream_outputs(turn, stream, handles, view, tools, detach=False) or thinking
    end_outputs(turn, stream, handles, thinking, None, tools)


def stopped(turn: Turn) -> TurnStopped:
    """The one-line message of a turn the user stopped with Ctrl-C."""
    return TurnStopped(f"Stopped by the user. {outcome(turn)}")
