"""The embedded simulated home: a YAML home whose states change as a real one would, kept across restarts.

The home is described in Home Assistant's fixture YAML shape (see :mod:`assistant.home.model`); the
bundled ``demo_home.yaml`` is used when none is configured. States changed by commands are
written (atomically) to a JSON file in the plugin's data folder and restored at the next start.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from assistant.errors import ToolError

from .backend import HomeBackend
from assistant.home.model import Entity, HomeSnapshot, load_home_yaml

__all__ = ["SimulatedHome", "DEMO_HOME"]

DEMO_HOME = Path(__file__).with_name("demo_home.yaml")


def _clamp(v: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, v))


class SimulatedHome(HomeBackend):
    """A home that lives in this process.

    Args:
        home_file: The YAML home (None = the bundled demo home).
        state_file: Where changed states are kept (None = not persisted).
    """

    name = "simulated"

    def __init__(self, home_file: Path | None, state_file: Path | None) -> None:
        super().__init__()
        self.home_file = Path(home_file) if home_file else DEMO_HOME
        self.state_file = state_file
        self._snap = HomeSnapshot()
        self._memory: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        """Every service call made, in order: (entity id, service, data) (tests and benchmarks read it)."""

    async def start(self) -> None:
        self._snap = load_home_yaml(self.home_file)
        saved = self._load_saved()
        if saved:
            self._snap.entities = [
                e.with_state(saved[e.id]["state"], **saved[e.id].get("attributes", {})) if e.id in saved else e
                for e in self._snap.entities
            ]

    def _load_saved(self) -> dict[str, Any]:
        if not self.state_file or not self.state_file.exists():
            return {}
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if data.get("home_file") != str(self.home_file.resolve()):
            return {}  # another home: start from its YAML states
        return data.get("entities", {})

    def _save(self) -> None:
        if not self.state_file:
            return
        changed = {
            e.id: {"state": e.state, "attributes": e.attributes} for e in self._snap.entities
        }
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"home_file": str(self.home_file.resolve()), "entities": changed}), encoding="utf-8")
            os.replace(tmp, self.state_file)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ToolError(f"the change was made but could not be saved: {exc}", hint="free some disk space") from None

    def snapshot(self) -> HomeSnapshot:
        return self._snap

    def set_states(self, states: dict[str, Any]) -> None:
        """Set entities' states (and attributes) directly, as a device would report them, without
        running a service (for scripted homes: tests, benchmarks, demos). Nothing is saved.

        Args:
            states: ``{entity_id: "on"}`` or ``{entity_id: {"state": "on", "brightness": 128}}``.
        """
        ents = {e.id: e for e in self._snap.entities}
        for eid, value in states.items():
            if eid not in ents:
                raise ToolError(f"no entity {eid} in this home")
            if isinstance(value, dict):
                attrs = {k: v for k, v in value.items() if k != "state"}
                ents[eid] = ents[eid].with_state(value.get("state"), **attrs)
            else:
                ents[eid] = ents[eid].with_state(str(value))
        self._snap.entities = [ents[e.id] for e in self._snap.entities]

    async def todo_items(self, entity: Entity) -> list[dict[str, Any]]:
        current = self._snap.entity(entity.id) or entity
        return [dict(i) for i in current.attributes.get("items") or []]

    async def call_service(self, entity: Entity, service: str, data: dict[str, Any] | None = None) -> Entity:
        data = data or {}
        self.calls.append((entity.id, service, dict(data)))
        new = _apply(entity, service, data, self._memory.setdefault(entity.id, {}))
        self._snap.entities = [new if e.id == entity.id else e for e in self._snap.entities]
        self._save()
        self._changed(new)
        return new


_OFF_ATTRS = {
    "light": ("brightness", "rgb_color", "color_temp_kelvin", "color_mode"),
    "fan": ("percentage",),
}
"""Attributes Home Assistant reports as none while the device is off."""


def _apply(e: Entity, service: str, data: dict[str, Any], memory: dict[str, Any]) -> Entity:
    """What a service does to an entity's state, with Home Assistant's state semantics.

    ``memory`` keeps what a real device remembers while off (a light's last brightness, a fan's
    last speed, a thermostat's last mode), per entity.
    """
    d = e.domain
    if service == "toggle":
        if d in ("cover", "valve"):
            service = f"close_{d}" if e.state in ("open", "opening") else f"open_{d}"
        else:
            service = "turn_off" if e.state in ("on", "playing", "open", "heat", "cool", "auto", "heat_cool", "dry", "fan_only") else "turn_on"
    if d in ("scene", "script", "button", "input_button") and service in ("turn_on", "press"):
        return e.with_state(time.strftime("%Y-%m-%dT%H:%M:%S"))
    if d == "light":
        return _light(e, service, data, memory)
    if d == "fan":
        return _fan(e, service, data, memory)
    if d == "climate":
        return _climate(e, service, data, memory)
    if d == "media_player":
        return _media(e, service, data, memory)
    if d in ("cover", "valve"):
        return _cover(e, service, data)
    if d == "vacuum":
        states = {"start": "cleaning", "turn_on": "cleaning", "pause": "paused", "stop": "idle", "return_to_base": "returning", "turn_off": "returning"}
        if service == "locate":
            return e
        if service in states:
            return e.with_state(states[service])
    if d == "lock" and service in ("lock", "unlock", "open"):
        return e.with_state({"lock": "locked", "unlock": "unlocked", "open": "open"}[service])
    if d in ("input_number", "number") and service == "set_value":
        lo, hi = float(e.attributes.get("min", -1e9)), float(e.attributes.get("max", 1e9))
        return e.with_state(str(float(_clamp(float(data["value"]), lo, hi))))
    if d == "todo":
        return _todo(e, service, data)
    if service in ("turn_on", "turn_off") and d in ("switch", "input_boolean", "siren", "humidifier", "automation", "water_heater"):
        return e.with_state("on" if service == "turn_on" else "off")
    raise ToolError(f"{e.name} does not support {service.replace('_', ' ')}")


def _light(e: Entity, service: str, data: dict[str, Any], memory: dict[str, Any]) -> Entity:
    if service == "turn_off":
        if e.attributes.get("brightness"):
            memory["brightness"] = e.attributes["brightness"]
        return e.with_state("off", **{k: None for k in _OFF_ATTRS["light"] if k in e.attributes or k == "brightness"})
    if service != "turn_on":
        raise ToolError(f"{e.name} does not support {service.replace('_', ' ')}")
    attrs: dict[str, Any] = {}
    if "brightness_pct" in data:
        attrs["brightness"] = round(_clamp(float(data["brightness_pct"]), 0, 100) * 255 / 100)
    elif "brightness" in data:
        attrs["brightness"] = int(_clamp(float(data["brightness"]), 0, 255))
    elif e.state != "on" or not e.attributes.get("brightness"):
        attrs["brightness"] = memory.get("brightness", 255)
    if "rgb_color" in data:
        attrs.update(rgb_color=list(data["rgb_color"]), color_mode="hs", color_temp_kelvin=None)
    if "color_temp_kelvin" in data:
        attrs.update(color_temp_kelvin=int(data["color_temp_kelvin"]), color_mode="color_temp", rgb_color=None)
    if attrs.get("brightness") == 0:
        return e.with_state("off", brightness=None)
    return e.with_state("on", **attrs)


def _fan(e: Entity, service: str, data: dict[str, Any], memory: dict[str, Any]) -> Entity:
    step = float(e.attributes.get("percentage_step") or 1)
    if service == "turn_off" or (service == "set_percentage" and float(data.get("percentage", 0)) <= 0):
        if e.attributes.get("percentage"):
            memory["percentage"] = e.attributes["percentage"]
        return e.with_state("off", percentage=0)
    if service == "turn_on":
        pct = data.get("percentage") or memory.get("percentage") or (round(step) if step > 1 else 100)
        return e.with_state("on", percentage=int(round(float(pct))))
    if service == "set_percentage":
        return e.with_state("on", percentage=int(round(_clamp(float(data["percentage"]), 0, 100))))
    if service in ("increase_speed", "decrease_speed"):
        now = float(e.attributes.get("percentage") or 0)
        pct = _clamp(now + (step if service == "increase_speed" else -step), 0, 100)
        return e.with_state("on" if pct else "off", percentage=int(round(pct)))
    if service == "oscillate":
        return e.with_state(None, oscillating=bool(data["oscillating"]))
    if service == "set_direction":
        return e.with_state(None, direction=str(data["direction"]))
    raise ToolError(f"{e.name} does not support {service.replace('_', ' ')}")


def _climate(e: Entity, service: str, data: dict[str, Any], memory: dict[str, Any]) -> Entity:
    if service == "set_temperature":
        return e.with_state(None, temperature=float(data["temperature"]))
    if service == "set_hvac_mode":
        mode = str(data["hvac_mode"])
        if e.state != "off":
            memory["hvac_mode"] = e.state
        return e.with_state(mode, hvac_mode=mode)
    if service == "turn_off":
        if e.state != "off":
            memory["hvac_mode"] = e.state
        return e.with_state("off", hvac_mode="off")
    if service == "turn_on":
        mode = e.state if e.state != "off" else memory.get("hvac_mode", e.attributes.get("hvac_mode") if e.attributes.get("hvac_mode") != "off" else "heat")
        return e.with_state(mode, hvac_mode=mode)
    raise ToolError(f"{e.name} does not support {service.replace('_', ' ')}")


def _media(e: Entity, service: str, data: dict[str, Any], memory: dict[str, Any]) -> Entity:
    s = e.state
    if service == "turn_on":
        return e.with_state("on" if s in ("off", "standby", "unknown") else s)
    if service == "turn_off":
        return e.with_state("off")
    if service == "media_pause":
        return e.with_state("paused")
    if service == "media_play":
        return e.with_state("playing")
    if service == "media_stop":
        return e.with_state("idle")
    if service in ("media_next_track", "media_previous_track"):
        step = 1 if service == "media_next_track" else -1
        return e.with_state("playing", media_track=int(e.attributes.get("media_track", 1)) + step)
    if service == "volume_set":
        return e.with_state(None, volume_level=round(_clamp(float(data["volume_level"]), 0, 1), 2))
    if service in ("volume_up", "volume_down"):
        level = float(e.attributes.get("volume_level") or 0) + (0.1 if service == "volume_up" else -0.1)
        return e.with_state(None, volume_level=round(_clamp(level, 0, 1), 2))
    if service == "volume_mute":
        return e.with_state(None, is_volume_muted=bool(data["is_volume_muted"]))
    if service == "select_source":
        sources = e.attributes.get("source_list") or []
        if data["source"] not in sources:
            raise ToolError(f"{e.name} has no source {data['source']}")
        return e.with_state("on" if s in ("off", "standby") else s, source=data["source"])
    raise ToolError(f"{e.name} does not support {service.replace('_', ' ')}")


def _cover(e: Entity, service: str, data: dict[str, Any]) -> Entity:
    kind = e.domain
    if service == f"open_{kind}":
        return e.with_state("open", current_position=100)
    if service == f"close_{kind}":
        return e.with_state("closed", current_position=0)
    if service == f"set_{kind}_position":
        pos = int(_clamp(float(data.get("position", 0)), 0, 100))
        return e.with_state("open" if pos > 0 else "closed", current_position=pos)
    if service == f"stop_{kind}":
        pos = int(e.attributes.get("current_position", 100 if e.state in ("open", "opening") else 0))
        return e.with_state("open" if pos > 0 else "closed", current_position=pos)
    raise ToolError(f"{e.name} does not support {service.replace('_', ' ')}")


def _todo(e: Entity, service: str, data: dict[str, Any]) -> Entity:
    items = [dict(i) for i in e.attributes.get("items") or []]
    if service == "add_item":
        items.append({"summary": str(data["item"]), "status": "needs_action"})
    elif service in ("update_item", "remove_item"):
        match = [i for i in items if i["summary"].casefold() == str(data["item"]).casefold()]
        if not match:
            raise ToolError(f"{data['item']} is not on the {e.name} list")
        if service == "remove_item":
            items.remove(match[0])
        else:
            if "status" in data:
                match[0]["status"] = data["status"]
            if "rename" in data:
                match[0]["summary"] = data["rename"]
    else:
        raise ToolError(f"{e.name} does not support {service.replace('_', ' ')}")
    open_items = sum(1 for i in items if i["status"] == "needs_action")
    return e.with_state(str(open_items), items=items)
