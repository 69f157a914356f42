"""Tool specs: a Python function described as OpenAI's ``tools`` schema, and a call's
arguments checked against it, as a user would write the functions in a notebook."""

from __future__ import annotations

import enum
from typing import Any, Literal, Optional

import pytest

import chatmagic
from chatmagic.toolspec import ToolSpecError, describe, is_tool, tool


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def load_sales(
    region: str,
    year: int = 2024,
    scale: float = 1.0,
    cumulative: bool = False,
    months: list[int] | None = None,
    unit: Literal["eur", "usd"] = "eur",
    colour: Colour = Colour.RED,
    tags: dict[str, str] | None = None,
    note: Optional[str] = None,  # noqa: UP045 - the old spelling is described too
    anything: Any = None,
) -> str:
    """Load the sales of a region.

    The data comes from the warehouse.

    Args:
        region: The region's name,
            e.g. "north".
        year (int): The year.
        scale: A factor.

    Returns:
        A summary.
    """
    return f"{region} {year} {colour.value} {months}"


def numpy_style(a: int, b: str = "x") -> None:
    """Add things.

    Parameters
    ----------
    a : int
        The first thing,
        on two lines.
    b : str
        The second.

    Returns
    -------
    None
    """


def test_a_function_becomes_a_schema() -> None:
    spec = describe(load_sales)
    wire = spec.as_wire()
    assert wire["type"] == "function"
    function = wire["function"]
    assert function["name"] == "load_sales" and function["description"] == "Load the sales of a region."
    params = function["parameters"]
    assert params["required"] == ["region"]
    props = params["properties"]
    assert props["region"] == {"type": "string", "description": 'The region\'s name, e.g. "north".'}
    assert props["year"] == {"type": "integer", "description": "The year.", "default": 2024}
    assert props["scale"]["type"] == "number" and props["cumulative"] == {"type": "boolean", "default": False}
    assert props["months"] == {
        "anyOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "null"}],
        "default": None,
    }
    assert props["unit"] == {"enum": ["eur", "usd"], "default": "eur"}
    assert props["colour"] == {"enum": ["red", "blue"], "default": "red"}
    assert props["tags"]["anyOf"][0] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert props["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    assert props["anything"] == {"default": None}


def test_numpy_docstrings() -> None:
    props = describe(numpy_style).parameters["properties"]
    assert props["a"]["description"] == "The first thing, on two lines."
    assert props["b"]["description"] == "The second."
    assert describe(numpy_style).description == "Add things."


def test_a_call_is_bound_and_checked() -> None:
    spec = describe(load_sales)
    args, kwargs = spec.bind({"region": "north", "colour": "blue", "months": [1, 2]})
    assert args == [] and kwargs == {"region": "north", "colour": Colour.BLUE, "months": [1, 2]}
    assert spec.function(*args, **kwargs) == "north 2024 blue [1, 2]"
    cases = {
        "missing the argument 'region'": {},
        "no parameter 'regon' (its parameters: region, year,": {"regon": "x"},
        "the argument 'year' must be an integer (got string)": {"region": "x", "year": "2024"},
        "the argument 'year' must be an integer (got boolean)": {"region": "x", "year": True},
        "the argument 'unit' must be one of 'eur', 'usd' (got 'gbp')": {"region": "x", "unit": "gbp"},
        "the argument 'months' is not any of the types it takes": {"region": "x", "months": ["a"]},
    }
    for words, arguments in cases.items():
        with pytest.raises(ToolSpecError) as info:
            spec.bind(arguments)
        assert words in str(info.value) and str(info.value).startswith("load_sales: ")
        assert "\n" not in str(info.value)


def test_positional_only_parameters_are_passed_by_position() -> None:
    def scale(x: float, /, factor: float = 2.0) -> float:
        return x * factor

    spec = describe(scale)
    args, kwargs = spec.bind({"x": 3, "factor": 3})
    assert args == [3] and spec.function(*args, **kwargs) == 9


class Frame:
    pass


def test_what_cannot_be_described_is_named() -> None:
    def star(*rows: int) -> None: ...
    def kw(**options: str) -> None: ...
    def table(df: Frame) -> None: ...
    def keys(d: dict[int, str]) -> None: ...
    def unresolved(x: NoSuchType) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    cases = [
        (42, "--tools answer: not a function (it is a int)."),
        (star, "--tools star: *rows cannot be described to a model: name each parameter."),
        (kw, "--tools kw: **options cannot be described"),
        (table, "--tools table: parameter 'df' has a type JSON cannot carry (Frame)."),
        (keys, "parameter 'd' has a type JSON cannot carry (a dict whose keys are not str)"),
        (unresolved, "--tools unresolved: its type hints cannot be resolved"),
        (print, "--tools print: *args cannot be described"),
        (lambda x: x, "'<lambda>' cannot be a tool's name"),
    ]
    for value, words in cases:
        with pytest.raises(ToolSpecError) as info:
            describe(value, "answer" if value == 42 else None)
        assert words in str(info.value), str(info.value)


def test_the_decorator_marks_and_never_approves() -> None:
    @chatmagic.tool
    def plot_hist(column: str) -> None:
        """Plot a histogram."""

    @chatmagic.tool(name="sales", description="Sales by region.")
    def load(region: str) -> None: ...

    assert is_tool(plot_hist) and is_tool(load) and not is_tool(load_sales)
    assert describe(plot_hist).description == "Plot a histogram."
    assert describe(load).name == "sales" and describe(load).description == "Sales by region."
    assert not describe(load).read_only  # approval is the session's, never the code's
    with pytest.raises(TypeError):
        tool(approve=False)  # type: ignore[call-arg]
    with pytest.raises(ToolSpecError):

        @tool
        def bad(*a: int) -> None: ...


def test_the_package_exports_tool_lazily() -> None:
    import subprocess
    import sys

    code = (
        "import sys, chatmagic; assert 'chatmagic.toolspec' not in sys.modules; "
        "t = chatmagic.tool; assert 'chatmagic.toolspec' in sys.modules; print(t.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "tool"
