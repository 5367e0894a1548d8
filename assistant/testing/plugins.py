"""Test helpers for tool-plugin authors.

Load your plugin the way the assistant does (through a real :class:`ToolRegistry`), call its
tools, check what the fast path makes of a sentence, and see the events, with no audio and no
LLM::

    from assistant.testing.plugins import PluginHarness
    import jarvis_weather

    async def test_weather_now(tmp_path):
        async with PluginHarness(jarvis_weather, "weather", tmp_path, settings={"base_url": url}, confirm=True) as h:
            out = await h.call("weather_now")
            assert out.ok and "degrees" in out.say
            assert h.route("what's the weather like").tool == "weather_now"

``confirm`` answers every confirmation question (True = yes, False = no); the questions asked
are kept in :attr:`PluginHarness.confirmations`.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from ..bus import EventBus
from ..config import Config
from ..events import Event
from ..toolkit.api import Tool
from ..toolkit.registry import ConfirmationRequest, ToolOutcome, ToolRegistry

__all__ = ["PluginHarness", "check_tool_documented"]


class PluginHarness:
    """One plugin (plus, optionally, the built-ins) loaded into a registry, in a temp data dir.

    Args:
        plugin: The plugin module (or object with a ``register_tools`` hook).
        name: Its entry-point name (the ``[plugins.<name>]`` settings key).
        data_dir: A temporary folder for state.
        settings: The plugin's settings table.
        confirm: Answer to confirmation questions.
        builtins: Also load the installed entry-point plugins (the built-in tools).
        config_overrides: Dotted config overrides, e.g. ``{"tools.timeout_s": 1}``.
    """

    def __init__(
        self,
        plugin: ModuleType | Any,
        name: str,
        data_dir: Path,
        *,
        settings: dict[str, Any] | None = None,
        confirm: bool = True,
        builtins: bool = False,
        config_overrides: dict[str, Any] | None = None,
    ) -> None:
        overrides = {"paths.data_dir": str(data_dir), "plugins": {name: settings or {}}, **(config_overrides or {})}
        self.config = Config().with_overrides(overrides)
        self.plugin, self.name, self.builtins = plugin, name, builtins
        self.bus = EventBus()
        self.events: list[Event] = self.bus.record()
        self.confirmations: list[ConfirmationRequest] = []
        self._answer = confirm
        self.registry: ToolRegistry | None = None
        self._fast = None

    async def _confirm(self, req: ConfirmationRequest) -> bool:
        self.confirmations.append(req)
        return self._answer

    async def __aenter__(self) -> "PluginHarness":
        self.registry = await ToolRegistry.create(
            self.config, self.bus, confirm=self._confirm, entry_points=self.builtins, extra_plugins=[(self.name, self.plugin)]
        )
        if self.registry.errors:
            raise AssertionError("plugin failed to load: " + "; ".join(self.registry.errors))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.registry is not None:
            await self.registry.close()

    @property
    def tools(self) -> dict[str, Tool]:
        assert self.registry is not None
        return self.registry.tools

    async def call(self, tool: str, **arguments: Any) -> ToolOutcome:
        """Call a tool as the controller would (validation, confirmation, timeout)."""
        assert self.registry is not None
        return await self.registry.call(tool, arguments)

    def route(self, sentence: str):
        """What the fast path makes of a sentence (a FastMatch, or None)."""
        from ..controller.fastpath import FastPath  # noqa: PLC0415

        assert self.registry is not None
        if self._fast is None:
            self._fast = FastPath(self.registry)
        return self._fast.match(sentence)


def check_tool_documented(tool: Tool) -> list[str]:
    """What an LLM would miss about a tool: undocumented parameters. Returns problems (empty = fine)."""
    problems = []
    for name in tool.args_model.model_fields:
        if not tool.param_docs.get(name):
            problems.append(f"{tool.name}: parameter '{name}' has no description in the docstring's Args: section")
    if len(tool.description) < 10:
        problems.append(f"{tool.name}: the description is too short for a model to choose the tool")
    return problems
