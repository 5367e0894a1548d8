"""Home control plugin: one set of tools over three backends (simulated, Home Assistant, MQTT).

The backend is chosen by ``home.backend`` in the config; it is provided to the rest of the
assistant as the ``"home"`` service (the fast path reads its area and device names).
"""

from __future__ import annotations

from pathlib import Path

from assistant.config import HomeConfig
from assistant.toolkit import PluginContext, hookimpl

from .backend import HomeBackend
from .tools import HomeTools

__all__ = ["HomeTools", "make_backend", "register_tools"]


def make_backend(config: HomeConfig, data_dir: Path) -> HomeBackend:
    """The backend the config asks for (not started yet)."""
    if config.backend == "home_assistant":
        from .hass import HomeAssistantHome  # noqa: PLC0415

        return HomeAssistantHome(config.home_assistant)
    if config.backend == "mqtt":
        from .mqtt import MqttHome  # noqa: PLC0415

        return MqttHome(config.mqtt)
    from .simulated import SimulatedHome  # noqa: PLC0415

    return SimulatedHome(config.simulated_home, data_dir / "simulated_state.json")


@hookimpl
def register_tools(register, context: PluginContext) -> None:
    backend = make_backend(context.config.home, context.data_dir)
    context.provide("home", backend)
    register(HomeTools(backend, context.config.home.area))
