"""The tool plugin API: everything a tool author imports.

A minimal plugin (see ``docs/plugins.md`` and ``examples/jarvis-weather``)::

    from assistant.toolkit import Risk, hookimpl, tool

    @tool(risk=Risk.READ_ONLY, templates=["roll [a] dice"])
    def roll_dice(sides: int = 6) -> str:
        \"\"\"Roll a die.

        Args:
            sides: Number of sides.
        \"\"\"
        import random
        return f"You rolled a {random.randint(1, sides)}."

    @hookimpl
    def register_tools(register):
        register(roll_dice)

and in its ``pyproject.toml``::

    [project.entry-points."jarvis_assistant.tools"]
    dice = "jarvis_dice"
"""

from .api import Risk, Tool, Toolbox, tool
from .registry import (
    ENTRY_POINT_GROUP,
    ConfirmationRequest,
    ConfirmHook,
    PluginContext,
    ToolOutcome,
    ToolRegistry,
    hookimpl,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ConfirmHook",
    "ConfirmationRequest",
    "PluginContext",
    "Risk",
    "Tool",
    "ToolOutcome",
    "ToolRegistry",
    "Toolbox",
    "hookimpl",
    "tool",
]
