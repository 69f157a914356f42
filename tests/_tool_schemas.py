"""Tool schemas the tool tests offer the stand-in (tests/test_sandbox_tools.py, test_tool_wire.py)."""

from __future__ import annotations

#: the key the stand-in's OpenAI API accepts
KEY = "sk-sandbox"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
CLOCK = {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}
