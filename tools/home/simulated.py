"""The embedded simulated home: a YAML home whose states change as a real one would, kept across restarts.

The home is described in Home Assistant's fixture YAML shape (see :mod:`tools.home.model`); the
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
from .model import Entity, HomeSnapshot, load_home_yaml

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

    async def call_service(self, entity: Entity, service: str, data: dict[str, Any] | None = None) -> Entity:
        data = data or {}
        new = _apply(entity, service, data)
        self._snap.entities = [new if e.id == entity.id else e for e in self._snap.entities]
        self._save()
        self._changed(new)
        return new


def _apply(e: Entity, service: str, data: dict[str, Any]) -> Entity:
    """What a service does to an entity's state (Home Assistant's semantics, simplified)."""
    d = e.domain
    if service == "toggle":
        if d == "cover":
            service = "close_cover" if e.state == "open" else "open_cover"
        else:
            service = "turn_off" if e.state in ("on", "playing", "open") else "turn_on"
    if d in ("scene", "script") and service == "turn_on":
        return e.with_state(time.strftime("%Y-%m-%dT%H:%M:%S"))
    if service == "turn_on":
        attrs: dict[str, Any] = {}
        if d == "light":
            if "brightness_pct" in data:
                attrs["brightness"] = round(_clamp(float(data["brightness_pct"]), 0, 100) * 255 / 100)
            elif "brightness" not in e.attributes or not e.attributes.get("brightness"):
                attrs["brightness"] = 255
            if "rgb_color" in data:
                attrs["rgb_color"] = list(data["rgb_color"])
            if attrs.get("brightness") == 0:
                return e.with_state("off", **attrs)
        if d == "media_player":
            return e.with_state("on" if e.state in ("off", "unknown") else e.state, **attrs)
        if d == "climate":
            return e.with_state(e.attributes.get("hvac_mode", "heat"), **attrs)
        return e.with_state("on", **attrs)
    if service == "turn_off":
        return e.with_state("off")
    if service in ("open_cover", "open_valve"):
        return e.with_state("open", current_position=100)
    if service in ("close_cover", "close_valve"):
        return e.with_state("closed", current_position=0)
    if service in ("set_cover_position", "set_valve_position"):
        pos = int(_clamp(float(data.get("position", 0)), 0, 100))
        return e.with_state("open" if pos > 0 else "closed", current_position=pos)
    if service == "lock":
        return e.with_state("locked")
    if service == "unlock":
        return e.with_state("unlocked")
    if service == "set_temperature" and d == "climate":
        return e.with_state(None, temperature=float(data["temperature"]))
    if d == "media_player":
        if service == "media_pause":
            return e.with_state("paused")
        if service == "media_play":
            return e.with_state("playing")
        if service in ("media_next_track", "media_previous_track"):
            step = 1 if service == "media_next_track" else -1
            return e.with_state("playing", media_track=int(e.attributes.get("media_track", 1)) + step)
        if service == "volume_set":
            return e.with_state(None, volume_level=round(_clamp(float(data["volume_level"]), 0, 1), 2))
    if d == "vacuum":
        if service == "start":
            return e.with_state("cleaning")
        if service == "return_to_base":
            return e.with_state("returning")
    raise ToolError(f"{e.name} does not support {service.replace('_', ' ')}")
