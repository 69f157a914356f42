"""Loading and unloading the IPython extension."""

from __future__ import annotations

from typing import Any

_NAMES = ("chat", "chatmagic")


def load(ip: Any) -> None:
    from IPython.core.error import UsageError
    from traitlets import TraitError

    from .magics import ChatMagics

    unload(ip)  # a second %load_ext, or a reload, starts clean
    try:
        magics = ChatMagics(shell=ip)
    except TraitError as exc:  # a bad ChatMagics setting in the configuration, set before loading
        raise UsageError(
            f"chatmagic is not loaded: {exc} Correct the setting (ipython_config.py, or %config) "
            "and load it again."
        ) from None
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
    ip.configurables.append(magics)
    ip.events.register("pre_run_cell", magics.pre_run_cell)
    ip.events.register("post_run_cell", magics.post_run_cell)
    ip._chatmagic_magics = magics


def unload(ip: Any) -> None:
    magics: Any = getattr(ip, "_chatmagic_magics", None)
    if magics is None:
        return
    del ip._chatmagic_magics
    for kind in ("cell", "line"):
        table = ip.magics_manager.magics[kind]
        for name in _NAMES:
            fn = table.get(name)
            if getattr(fn, "__self__", None) is magics:
                del table[name]
    if magics in ip.configurables:
        ip.configurables.remove(magics)
    for event in ("pre_run_cell", "post_run_cell"):
        try:
            ip.events.unregister(event, getattr(magics, event))
        except ValueError:
            pass
    magics.printed.stop()  # unloaded inside a cell: its post_run_cell will not come
