"""Loading and unloading the IPython extension."""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from IPython.core.error import UsageError
from traitlets import TraitError

from .magics import ChatMagics

_NAMES = ("chat", "chatmagic")


def load(ip: Any) -> None:
    unload(ip)  # a second %load_ext, or a reload, starts clean
    before: dict[str, Any] | None = getattr(ip, "_chatmagic_settings", None)  # what it had taken
    try:
        magics = ChatMagics(shell=ip)
    except TraitError as exc:
        # A bad ChatMagics setting in the configuration: from ipython_config.py, or a %config
        # that was refused (the shell keeps a refused value in its own config all the same,
        # so a later %reload_ext would meet it). Load without it, and say so in one line.
        _forget(ip, ChatMagics)  # IPython's Magics.__init__ listed the half-made one
        magics, refused = _without_refused(ip, ChatMagics, before)
        if not refused:
            raise UsageError(f"chatmagic is not loaded: {exc}") from None
        for name, why in refused:
            kept = "the value it had is kept" if before is not None else "its default is used"
            print(f"chatmagic: ChatMagics.{name} was not taken ({why}); {kept}.")
    manager = ip.magics_manager
    taken = manager.magics["cell"].get("chat")
    if taken is not None and not isinstance(getattr(taken, "__self__", None), ChatMagics):
        print(
            "chatmagic: another extension already provides %%chat; "
            "chatmagic's is available as %%chatmagic and %chatmagic."
        )
        manager.register_function(magics.chat, "cell", "chatmagic")
        manager.register_function(magics.chat_line, "line", "chatmagic")
    else:
        ip.register_magics(magics)
        manager.register_function(magics.chat, "cell", "chatmagic")
        manager.register_function(magics.chat_line, "line", "chatmagic")
    # Magics.__init__ has put it in ip.configurables (what %config sets): once is enough
    ip.events.register("pre_run_cell", magics.pre_run_cell)
    ip.events.register("post_run_cell", magics.post_run_cell)
    magics.plots.watch(ip.display_pub, ip.displayhook, lambda: ip.execution_count)
    ip._chatmagic_magics = magics


def unload(ip: Any) -> None:
    magics: Any = getattr(ip, "_chatmagic_magics", None)
    if magics is None:
        return
    del ip._chatmagic_magics
    ip._chatmagic_settings = {n: deepcopy(getattr(magics, n)) for n in magics.trait_names(config=True)}
    for kind in ("cell", "line"):
        table = ip.magics_manager.magics[kind]
        for name in _NAMES:
            fn = table.get(name)
            if getattr(fn, "__self__", None) is magics:
                del table[name]
    _forget(ip, type(magics))
    for event in ("pre_run_cell", "post_run_cell"):
        try:
            ip.events.unregister(event, getattr(magics, event))
        except ValueError:
            pass
    magics.plots.stop()
    magics.printed.stop()  # unloaded inside a cell: its post_run_cell will not come


def _forget(ip: Any, cls: type) -> None:
    """Take every ``cls`` out of ``ip.configurables``: one left there would go on taking
    ``%config`` values (and passing them to the shared session) after it was unloaded."""
    ip.configurables[:] = [c for c in ip.configurables if not isinstance(c, cls)]


def _without_refused(ip: Any, cls: Any, before: dict[str, Any] | None) -> tuple[Any, list[tuple[str, str]]]:
    """``cls`` made with the shell's config less the settings it refuses; which, and why.

    A refused setting goes back, in the shell's config too, to the value it had when
    chatmagic was last unloaded (``before``: a reload), or to its default.
    """

    section = ip.config.get(cls.__name__)
    wanted = dict(section or {})
    if section:
        section.clear()
    magics = cls(shell=ip)
    refused: list[tuple[str, str]] = []
    for name, value in wanted.items():
        if not magics.has_trait(name):
            section[name] = value
            continue
        try:
            setattr(magics, name, value)
            section[name] = value
        except TraitError as exc:
            refused.append((name, str(exc).rstrip(".")))
            if before is not None and name in before:
                setattr(magics, name, before[name])
                section[name] = before[name]
    return magics, refused
