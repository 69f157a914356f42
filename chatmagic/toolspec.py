"""Tools the model may call: a Python callable described as OpenAI's ``tools`` JSON schema,
and a call's arguments checked against it.

Rules:

- **Only what the user names is offered.** ``%%chat --tools load_sales,plot_hist`` (or
  ``ChatMagics.tools``) names callables of the namespace; :func:`describe` makes each a
  :class:`ToolSpec` from its signature, type hints and docstring (the summary, and each
  parameter's line of a Google ``Args:`` or NumPy ``Parameters`` section). What cannot be
  described is a :class:`ToolSpecError` naming it (the skin shows it as a UsageError):
  a name that is not a callable, ``*args``/``**kwargs``, a type JSON cannot carry.
  Types: ``str``, ``int``, ``float``, ``bool``, ``None``, ``list[X]``, ``tuple[X, ...]``,
  ``dict[str, X]``, ``Literal[...]``, an ``Enum``, ``Optional[X]``/``X | None``, ``Any`` or
  no annotation (any JSON value); a default makes a parameter optional.
- **The decorator marks, it never approves.** ``@chatmagic.tool`` gives a function a tool
  name and description; it carries no approval, because a notebook is shared and run by
  others (Notebook Intelligence #406: an approval saved in a notebook ran attacker code on
  Run All). Approval lives only in the running session (chatmagic.pause).
- **A call is checked before anything runs** (:meth:`ToolSpec.bind`): unknown or missing
  arguments, a wrong type, a value outside an enum give one line, said to the model as the
  tool's answer and shown to the user; the loop goes on.

This module is core: no IPython, no widgets. The wire's part (ids, fragments, JSON, size
cap, a tool not offered) is ``chatmagic.providers._wire.ToolCall``; running a call where a
cell would, and making its result safe to send, is ``chatmagic.toolrun``; asking the user
is ``chatmagic.pause``.

How a turn uses these: ``chatmagic._toolbox.resolve`` makes the specs of ``--tools`` (the
built-ins of ``chatmagic.notebook_tools`` by ``notebook`` or by name) before anything is sent;
``chatmagic.toolloop`` offers them (``as_wire``), checks each call (``bind``), asks
(chatmagic.pause), runs it (``toolrun``) and answers the model; ``chatmagic.toolstep`` is what
the exchange keeps of each call (shown again, never run again; a record approves nothing).
"""

from __future__ import annotations

import enum
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError

__all__ = ["ToolSpec", "ToolSpecError", "describe", "is_tool", "tool"]

#: the names the API takes (OpenAI: ^[a-zA-Z0-9_-]{1,64}$)
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MARK = "__chatmagic_tool__"
#: how much of a docstring's summary becomes the tool's description
_DESCRIPTION_LIMIT = 1000


class ToolSpecError(ConfigurationError):
    """A callable that cannot be offered as a tool, or a call that does not fit its tool."""


@dataclass(frozen=True)
class ToolSpec:
    """One tool: its name, the callable, and the schema the model sees."""

    name: str
    function: Callable[..., Any]
    description: str
    parameters: dict[str, Any]
    #: names that must be passed by position (positional-only parameters), in order
    positional: tuple[str, ...] = ()
    #: Enum types of parameters, to turn the model's values back into members
    enums: Mapping[str, type[enum.Enum]] = field(default_factory=dict)
    #: a built-in that only reads the notebook: runs without asking
    read_only: bool = False

    def as_wire(self) -> dict[str, Any]:
        """The ``tools`` entry sent to the server."""
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    def bind(self, arguments: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """The positional and keyword arguments of a call, or a :class:`ToolSpecError` (one line)."""
        props: dict[str, Any] = self.parameters["properties"]
        unknown = [k for k in arguments if k not in props]
        if unknown:
            raise ToolSpecError(
                f"{self.name}: no parameter {unknown[0]!r} (its parameters: {', '.join(props) or 'none'})."
            )
        missing = [k for k in self.parameters.get("required", []) if k not in arguments]
        if missing:
            raise ToolSpecError(f"{self.name}: missing the argument {missing[0]!r}.")
        values: dict[str, Any] = {}
        for key, value in arguments.items():
            problem = _mismatch(props[key], value)
            if problem is not None:
                raise ToolSpecError(f"{self.name}: the argument {key!r} {problem}.")
            values[key] = self.enums[key](value) if key in self.enums and value is not None else value
        args = [values.pop(k) for k in self.positional if k in values]
        return args, values


def tool(
    function: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None
) -> Any:
    """Mark a function as a tool the model may be offered (``--tools`` still names it).

    ``@chatmagic.tool`` or ``@chatmagic.tool(name="sales", description="...")``. The function
    is returned unchanged; it gains no approval (see the module docstring).
    """

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise ToolSpecError(f"@chatmagic.tool marks functions; {fn!r:.60} is not callable.")
        setattr(fn, _MARK, {"name": name, "description": description})
        describe(fn)  # a signature that cannot be described fails where it is written
        return fn

    return mark(function) if function is not None else mark


def is_tool(value: Any) -> bool:
    """Marked with ``@chatmagic.tool``."""
    return isinstance(getattr(value, _MARK, None), dict)


def describe(function: Any, name: str | None = None, *, read_only: bool = False) -> ToolSpec:
    """The :class:`ToolSpec` of ``function``; ``name``: what the user called it (``--tools NAME``)."""
    mark = getattr(function, _MARK, None)
    mark = mark if isinstance(mark, dict) else {}
    label = name or getattr(function, "__name__", None) or repr(function)[:40]
    if not callable(function):
        raise ToolSpecError(f"--tools {label}: not a function (it is a {type(function).__name__}).")
    tool_name = mark.get("name") or getattr(function, "__name__", None) or name or ""
    if not _NAME.match(tool_name):
        raise ToolSpecError(
            f"--tools {label}: {tool_name!r} cannot be a tool's name (letters, digits, _ and -, at most 64); "
            "give it one with @chatmagic.tool(name=...)."
        )
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        raise ToolSpecError(
            f"--tools {label}: its signature cannot be read (a built-in?): wrap it in a def with named parameters."
        ) from None
    try:
        hints = typing.get_type_hints(function, include_extras=False)
    except Exception:  # noqa: BLE001 - a forward reference that does not resolve, in user code
        raise ToolSpecError(
            f"--tools {label}: its type hints cannot be resolved: define the types they name first."
        ) from None
    summary, documented = _docstring(inspect.getdoc(function) or "")
    properties: dict[str, Any] = {}
    required: list[str] = []
    positional: list[str] = []
    enums: dict[str, type[enum.Enum]] = {}
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            star = "*" if param.kind is param.VAR_POSITIONAL else "**"
            raise ToolSpecError(
                f"--tools {label}: {star}{param.name} cannot be described to a model: name each parameter."
            )
        hint = hints.get(param.name, param.annotation)
        try:
            schema = _schema(hint)
        except TypeError as exc:
            raise ToolSpecError(
                f"--tools {label}: parameter {param.name!r} has a type JSON cannot carry ({exc})."
            ) from None
        found = _enum_of(hint)
        if found is not None:
            enums[param.name] = found
        if param.name in documented:
            schema = {**schema, "description": documented[param.name]}
        if param.default is param.empty:
            required.append(param.name)
        elif _is_json(param.default):
            schema = {
                **schema,
                "default": param.default.value if isinstance(param.default, enum.Enum) else param.default,
            }
        properties[param.name] = schema
        if param.kind is param.POSITIONAL_ONLY:
            positional.append(param.name)
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    description = mark.get("description") or summary
    return ToolSpec(
        tool_name, function, description[:_DESCRIPTION_LIMIT], parameters, tuple(positional), enums, read_only
    )


# -- types as JSON schema ---------------------------------------------------------------

_SIMPLE: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    None: {"type": "null"},
    list: {"type": "array"},
    dict: {"type": "object"},
}


def _schema(hint: Any) -> dict[str, Any]:
    """The JSON schema of a type hint; TypeError (its name) for one JSON cannot carry."""
    if hint is inspect.Parameter.empty or hint is Any:
        return {}
    if hint in _SIMPLE:
        return dict(_SIMPLE[hint])
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = [m.value for m in hint]
        if not all(_is_json(v) for v in values):
            raise TypeError(f"the values of {hint.__name__} are not JSON")
        return {"enum": values}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        if not all(_is_json(v) for v in args):
            raise TypeError("a Literal of values that are not JSON")
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        inner = _schema(options[0]) if len(options) == 1 else {"anyOf": [_schema(a) for a in options]}
        return {"anyOf": [inner, {"type": "null"}]} if len(options) < len(args) else inner
    if origin in (list, set, frozenset) or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        return {"type": "array", "items": _schema(args[0])} if args else {"type": "array"}
    if origin is dict:
        if args and args[0] is not str:
            raise TypeError("a dict whose keys are not str")
        return {"type": "object", "additionalProperties": _schema(args[1])} if args else {"type": "object"}
    if isinstance(hint, str):
        raise TypeError(f"the annotation {hint!r} names no type")
    raise TypeError(getattr(hint, "__name__", None) or repr(hint))


def _enum_of(hint: Any) -> type[enum.Enum] | None:
    options = (
        [hint, *typing.get_args(hint)]
        if typing.get_origin(hint) in (typing.Union, types.UnionType)
        else [hint]
    )
    for option in options:
        if isinstance(option, type) and issubclass(option, enum.Enum):
            return option
    return None


def _is_json(value: Any) -> bool:
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _mismatch(schema: Mapping[str, Any], value: Any) -> str | None:
    """What is wrong with ``value`` for ``schema`` (of the kinds :func:`_schema` makes), or None."""
    if "anyOf" in schema:
        if any(_mismatch(s, value) is None for s in schema["anyOf"]):
            return None
        return f"is not any of the types it takes (got {type(value).__name__})"
    if "enum" in schema and value not in schema["enum"]:
        return f"must be one of {', '.join(repr(v) for v in schema['enum'])} (got {value!r:.60})"
    kind = schema.get("type")
    if isinstance(kind, str) and not _JSON_TYPES[kind](value):
        return f"must be {'an' if kind[0] in 'aeiou' else 'a'} {kind} (got {_json_name(value)})"
    if kind == "array" and "items" in schema:
        for i, item in enumerate(value):
            problem = _mismatch(schema["items"], item)
            if problem is not None:
                return f"item {i} {problem}"
    if kind == "object" and "additionalProperties" in schema:
        for k, item in value.items():
            problem = _mismatch(schema["additionalProperties"], item)
            if problem is not None:
                return f"key {k!r} {problem}"
    return None


def _json_name(value: Any) -> str:
    for name, check in _JSON_TYPES.items():
        if check(value) and name != "number":
            return name
    return "a number" if isinstance(value, float) else type(value).__name__


# -- docstrings -------------------------------------------------------------------------

_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments)\s*:?\s*$")
_OTHER_SECTION = re.compile(
    r"^(Returns?|Yields?|Raises|Examples?|Notes?|See Also|References|Attributes|Warnings?)\s*:?\s*$"
)
_GOOGLE_ITEM = re.compile(r"^(\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_NUMPY_ITEM = re.compile(r"^(\w+)\s*(?::\s*(.*))?$")


def _docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (first paragraph) and each parameter's description (Google or NumPy style)."""
    lines = doc.splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line.strip()) or _OTHER_SECTION.match(line.strip()):
            break
        summary.append(line.strip())
    described: dict[str, str] = {}
    i = 0
    while i < len(lines):
        if not _SECTION.match(lines[i].strip()):
            i += 1
            continue
        i += 1
        numpy = i < len(lines) and set(lines[i].strip()) == {"-"}
        i += 1 if numpy else 0
        current: str | None = None
        base = None
        while i < len(lines):
            line = lines[i]
            text = line.strip()
            if not text:
                i += 1
                if numpy:
                    continue
                break
            indent = len(line) - len(line.lstrip())
            if base is None:
                base = indent
            if (
                indent < base
                or _OTHER_SECTION.match(text)
                or (numpy and i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"})
            ):
                break
            match = (_NUMPY_ITEM if numpy else _GOOGLE_ITEM).match(text) if indent == base else None
            if match is not None:
                current = match.group(1)
                described[current] = "" if numpy else match.group(3).strip()
            elif current is not None:
                described[current] = (described[current] + " " + text).strip()
            i += 1
    return " ".join(summary), described
