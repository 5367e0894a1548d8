"""One interface for every home: the simulated one, Home Assistant, MQTT devices.

Commands are Home Assistant service calls (``light.turn_on`` with ``brightness_pct``,
``cover.set_cover_position`` with ``position`` ...), whatever the backend, so the tools and the
fast path speak one vocabulary. :func:`service_for` maps an intent-level verb ("turn on",
"turn off") to the right service for each domain, as Home Assistant's intents do (turning on a
cover opens it, turning on a lock locks it).
"""

from __future__ import annotations

import abc
import logging
from typing import Any, Callable

from assistant.errors import ToolError
from assistant.home.model import Entity, HomeSnapshot

__all__ = ["HomeBackend", "SERVICES", "service_for"]

log = logging.getLogger(__name__)

# verb -> {domain: service}; "*" = any other domain
SERVICES: dict[str, dict[str, str]] = {
    "turn_on": {"cover": "open_cover", "valve": "open_valve", "lock": "lock", "vacuum": "start", "button": "press", "input_button": "press", "*": "turn_on"},
    "turn_off": {"cover": "close_cover", "valve": "close_valve", "lock": "unlock", "vacuum": "return_to_base", "*": "turn_off"},
    "toggle": {"cover": "toggle", "valve": "toggle", "*": "toggle"},
}

ON_OFF_DOMAINS = {"light", "switch", "fan", "input_boolean", "media_player", "climate", "automation", "siren", "humidifier", "water_heater"}
ACTIVATE_DOMAINS = {"scene", "script", "button", "input_button"}
CONTROLLABLE = ON_OFF_DOMAINS | ACTIVATE_DOMAINS | {"cover", "valve", "lock", "vacuum"}


def service_for(verb: str, domain: str) -> str | None:
    """The service that carries out ``verb`` on a ``domain`` entity, or None if it makes no sense."""
    if domain not in CONTROLLABLE:
        return None
    if domain in ACTIVATE_DOMAINS and verb != "turn_on":
        return None
    if domain == "lock" and verb == "toggle":
        return None  # never flip a lock without saying which way
    table = SERVICES[verb]
    return table.get(domain, table["*"])


class HomeBackend(abc.ABC):
    """A home the assistant can read and control."""

    name = "home"

    def __init__(self) -> None:
        self._listeners: list[Callable[[Entity], None]] = []

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect and load areas and entities.

        Raises:
            AssistantError: The home cannot be reached (with what to check).
        """

    async def close(self) -> None:
        """Disconnect."""

    @abc.abstractmethod
    def snapshot(self) -> HomeSnapshot:
        """Floors, areas and entities as last known (kept current by the backend)."""

    @abc.abstractmethod
    async def call_service(self, entity: Entity, service: str, data: dict[str, Any] | None = None) -> Entity:
        """Run a Home Assistant-style service on one entity and return its new state.

        Raises:
            ToolError: The service is not supported for the entity, or the home refused it.
        """

    async def todo_items(self, entity: Entity) -> list[dict[str, Any]]:
        """The items of a to-do list entity: ``[{"summary": ..., "status": "needs_action" | "completed"}]``.

        Raises:
            ToolError: The backend has no to-do lists, or the list cannot be read.
        """
        raise ToolError(f"{entity.name} is a list this home cannot read")

    def on_change(self, callback: Callable[[Entity], None]) -> Callable[[], None]:
        """Call ``callback(entity)`` whenever an entity changes (live views)."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _changed(self, entity: Entity) -> None:
        for cb in list(self._listeners):
            try:
                cb(entity)
            except Exception:  # noqa: BLE001
                log.exception("home change listener failed")
