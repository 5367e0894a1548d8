"""MQTT backend: Zigbee2MQTT- and Tasmota-style devices on an MQTT broker.

The devices are described in a YAML file (``home.mqtt.devices``), in the same shape as the
simulated home plus a protocol and a topic per entity::

    areas: [{id: kitchen, name: Kitchen}]
    entities:
      - {id: light.kitchen_bulb, name: Kitchen Bulb, area: kitchen, protocol: zigbee2mqtt, topic: kitchen_bulb}
      - {id: switch.heater, name: Heater, area: kitchen, protocol: tasmota, topic: heater}

Zigbee2MQTT: state on ``zigbee2mqtt/<topic>`` (JSON), commands to ``zigbee2mqtt/<topic>/set``
(``{"state": "ON", "brightness": 0-254, "color": {"r","g","b"}, "color_temp": mireds, "position":
0-100}``; locks ``"LOCK"``/``"UNLOCK"``, covers ``"OPEN"``/``"CLOSE"``/``"STOP"``, water valves
``"ON"``/``"OFF"``, fans ``"fan_mode": off|low|medium|high``, thermostats ``"system_mode"`` and
``"current_heating_setpoint"``). Tasmota: ``cmnd/<topic>/POWER`` ``ON``/``OFF``/``TOGGLE``,
``cmnd/<topic>/Dimmer`` 0-100 and ``cmnd/<topic>/CT`` (mireds), state on ``stat/<topic>/POWER``,
``stat/<topic>/RESULT`` and ``tele/<topic>/STATE``. Vacuums, media players and to-do lists are not
MQTT device types here (Home Assistant's backend has them).

A command waits for the device to report its new state (up to ``home.mqtt.timeout_s``), so the
assistant only says "done" when the device confirmed it. The connection is kept up by a background
task that reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from assistant.config import MqttConfig
from assistant.errors import AssistantError, ConfigError, ToolError, require

from .backend import HomeBackend
from assistant.home.model import Entity, HomeSnapshot, load_home_yaml

__all__ = ["MqttHome"]

log = logging.getLogger(__name__)

Z2M = "zigbee2mqtt"


def _z2m_state(entity: Entity, payload: dict[str, Any]) -> Entity:
    d = entity.domain
    attrs: dict[str, Any] = {}
    state = entity.state
    if d == "lock":
        raw = str(payload.get("lock_state") or payload.get("state", "")).lower()
        state = {"locked": "locked", "lock": "locked", "unlocked": "unlocked", "unlock": "unlocked"}.get(raw, state)
    elif d == "cover":
        if "position" in payload:
            attrs["current_position"] = int(payload["position"])
            state = "open" if int(payload["position"]) > 0 else "closed"
        elif "state" in payload:
            state = {"open": "open", "close": "closed", "closed": "closed"}.get(str(payload["state"]).lower(), state)
    elif d == "valve":
        if "state" in payload:
            state = {"on": "open", "open": "open", "off": "closed", "close": "closed", "closed": "closed"}.get(str(payload["state"]).lower(), state)
    elif d == "fan":
        if "fan_mode" in payload:
            mode = str(payload["fan_mode"]).lower()
            state = "off" if mode == "off" else "on"
            attrs["percentage"] = _FAN_MODE_PCT.get(mode, 100)
        elif "state" in payload:
            state = str(payload["state"]).lower()
    elif d == "climate":
        if "current_heating_setpoint" in payload:
            attrs["temperature"] = payload["current_heating_setpoint"]
        if "local_temperature" in payload:
            attrs["current_temperature"] = payload["local_temperature"]
        state = str(payload.get("system_mode", state))
    elif d in ("sensor", "binary_sensor"):
        key = entity.attributes.get("value_key", "state")
        if key in payload:
            v = payload[key]
            state = ("on" if v else "off") if isinstance(v, bool) else str(v)
    else:
        if "state" in payload:
            state = str(payload["state"]).lower()
        if "brightness" in payload:
            attrs["brightness"] = int(payload["brightness"])
        if isinstance(payload.get("color"), dict) and {"r", "g", "b"} <= set(payload["color"]):
            attrs["rgb_color"] = [payload["color"][k] for k in ("r", "g", "b")]
        if payload.get("color_temp"):
            attrs["color_temp_kelvin"] = round(1_000_000 / float(payload["color_temp"]))
        if state == "off" and d == "light":
            attrs["brightness"] = None  # Home Assistant reports no brightness for a light that is off
    return entity.with_state(state, **attrs)


_FAN_MODE_PCT = {"low": 33, "medium": 66, "high": 100, "on": 100}


def _fan_mode(pct: float) -> str:
    if pct <= 0:
        return "off"
    return "low" if pct <= 34 else "medium" if pct <= 67 else "high"


def _z2m_command(entity: Entity, service: str, data: dict[str, Any]) -> dict[str, Any]:
    if entity.domain == "fan" and service in ("turn_on", "set_percentage") and ("percentage" in data or service == "set_percentage"):
        return {"fan_mode": _fan_mode(float(data.get("percentage", 0)))}
    if service in ("turn_on", "turn_off", "toggle") and entity.domain in ("light", "switch", "fan", "input_boolean"):
        cmd: dict[str, Any] = {"state": {"turn_on": "ON", "turn_off": "OFF", "toggle": "TOGGLE"}[service]}
        if "brightness_pct" in data:
            cmd["brightness"] = round(float(data["brightness_pct"]) * 254 / 100)
        if "rgb_color" in data:
            r, g, b = data["rgb_color"]
            cmd["color"] = {"r": r, "g": g, "b": b}
        if "color_temp_kelvin" in data:
            cmd["color_temp"] = round(1_000_000 / float(data["color_temp_kelvin"]))
        return cmd
    table = {
        "lock": {"state": "LOCK"}, "unlock": {"state": "UNLOCK"},
        "open_cover": {"state": "OPEN"}, "close_cover": {"state": "CLOSE"}, "stop_cover": {"state": "STOP"},
        "open_valve": {"state": "ON"}, "close_valve": {"state": "OFF"},
    }
    if service in table:
        return table[service]
    if service == "set_cover_position":
        return {"position": int(data["position"])}
    if service == "set_temperature":
        return {"current_heating_setpoint": data["temperature"]}
    if service == "set_hvac_mode":
        return {"system_mode": data["hvac_mode"]}
    raise ToolError(f"{entity.name} (Zigbee2MQTT) does not support {service.replace('_', ' ')}")


def _tasmota_state(entity: Entity, topic: str, payload: bytes) -> Entity | None:
    text = payload.decode(errors="replace").strip()
    if topic.endswith("/POWER"):
        return entity.with_state(text.lower())
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    attrs: dict[str, Any] = {}
    if "Dimmer" in data:
        attrs["brightness"] = round(int(data["Dimmer"]) * 255 / 100)
    if data.get("CT"):
        attrs["color_temp_kelvin"] = round(1_000_000 / float(data["CT"]))
    state = str(data["POWER"]).lower() if "POWER" in data else None
    if state is None and not attrs:
        return None
    return entity.with_state(state, **attrs)


class MqttHome(HomeBackend):
    """Devices on an MQTT broker.

    Args:
        config: Broker address, credentials, devices file and command timeout.
    """

    name = "mqtt"

    def __init__(self, config: MqttConfig) -> None:
        super().__init__()
        self.config = config
        self._snap = HomeSnapshot()
        self._meta: dict[str, tuple[str, str]] = {}  # entity id -> (protocol, topic)
        self._client: Any = None
        self._task: asyncio.Task | None = None
        self._waiters: dict[str, list[asyncio.Future]] = {}
        self.connected = asyncio.Event()
        self._error: BaseException | None = None
        self._reported: set[str] = set()

    def _load_devices(self) -> None:
        if not self.config.devices:
            raise ConfigError("the MQTT backend needs a devices file", hint="set home.mqtt.devices to a YAML file (see docs/home.md)")
        path = Path(self.config.devices).expanduser()
        self._snap = load_home_yaml(path)
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for e in raw.get("entities", []):
            protocol = e.get("protocol", Z2M)
            if protocol not in (Z2M, "tasmota"):
                raise ConfigError(f"{path}: entity {e['id']} has protocol {protocol!r}; allowed: zigbee2mqtt, tasmota")
            self._meta[e["id"]] = (protocol, e.get("topic") or e["id"].split(".", 1)[1])
        self._snap.entities = [replace(x, state="unknown") if x.state == "off" and x.id in self._meta else x for x in self._snap.entities]

    def _state_topics(self) -> list[str]:
        topics = []
        for protocol, topic in self._meta.values():
            if protocol == Z2M:
                topics.append(f"{Z2M}/{topic}")
            else:
                topics += [f"stat/{topic}/POWER", f"stat/{topic}/RESULT", f"tele/{topic}/STATE"]
        return topics

    async def start(self) -> None:
        require("aiomqtt", "mqtt", "the MQTT home backend")
        self._load_devices()
        self._task = asyncio.create_task(self._run(), name="mqtt-home")
        try:
            await asyncio.wait_for(self.connected.wait(), self.config.timeout_s)
        except asyncio.TimeoutError:
            self._task.cancel()
            raise AssistantError(
                f"cannot connect to the MQTT broker at {self.config.host}:{self.config.port}"
                + (f" ({self._error})" if self._error else ""),
                hint="check home.mqtt.host/port and that the broker (e.g. mosquitto) is running",
            ) from None
        for eid, (protocol, topic) in self._meta.items():  # ask every device for its state
            if protocol == Z2M:
                await self._client.publish(f"{Z2M}/{topic}/get", json.dumps({"state": ""}))
            else:
                await self._client.publish(f"cmnd/{topic}/POWER", b"")
        # take the answers in before any command, so a late one is never read as a command's confirmation
        deadline = asyncio.get_running_loop().time() + min(2.0, self.config.timeout_s)
        while self._reported < set(self._meta) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)

    async def _run(self) -> None:
        import aiomqtt  # noqa: PLC0415

        password = os.environ.get(self.config.password_env, "") if self.config.password_env else None
        delay = 0.5
        while True:
            try:
                async with aiomqtt.Client(
                    self.config.host, port=self.config.port, username=self.config.username or None, password=password or None,
                    identifier=f"jarvis-assistant-{os.getpid()}",
                ) as client:
                    self._client = client
                    for t in self._state_topics():
                        await client.subscribe(t)
                    self.connected.set()
                    delay = 0.5
                    async for msg in client.messages:
                        self._on_message(str(msg.topic), msg.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # aiomqtt.MqttError and socket errors: reconnect
                self._error = exc
                if self.connected.is_set():
                    log.warning("MQTT connection lost (%s); reconnecting", exc)
            finally:
                self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _entity_for(self, topic: str) -> tuple[Entity, str] | None:
        for eid, (protocol, base) in self._meta.items():
            if (protocol == Z2M and topic == f"{Z2M}/{base}") or (protocol == "tasmota" and topic.split("/")[1:2] == [base]):
                e = self._snap.entity(eid)
                if e is not None:
                    return e, protocol
        return None

    def _on_message(self, topic: str, payload: bytes) -> None:
        found = self._entity_for(topic)
        if found is None:
            return
        entity, protocol = found
        if protocol == Z2M:
            try:
                data = json.loads(payload.decode())
            except ValueError:
                return
            new = _z2m_state(entity, data) if isinstance(data, dict) else None
        else:
            new = _tasmota_state(entity, topic, payload)
        if new is None:
            return
        self._snap.entities = [new if e.id == new.id else e for e in self._snap.entities]
        self._reported.add(new.id)
        self._changed(new)
        for fut in self._waiters.pop(new.id, []):
            if not fut.done():
                fut.set_result(new)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    def snapshot(self) -> HomeSnapshot:
        return self._snap

    async def call_service(self, entity: Entity, service: str, data: dict[str, Any] | None = None) -> Entity:
        data = data or {}
        if entity.id not in self._meta:
            raise ToolError(f"{entity.name} is not an MQTT device")
        if not self.connected.is_set() or self._client is None:
            raise ToolError("I can't reach the MQTT broker right now.")
        protocol, topic = self._meta[entity.id]
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(entity.id, []).append(fut)
        if protocol == Z2M:
            await self._client.publish(f"{Z2M}/{topic}/set", json.dumps(_z2m_command(entity, service, data)))
        else:
            if service in ("turn_on", "turn_off", "toggle"):
                if "color_temp_kelvin" in data:
                    await self._client.publish(f"cmnd/{topic}/CT", str(round(1_000_000 / float(data["color_temp_kelvin"]))))
                elif "brightness_pct" in data:
                    await self._client.publish(f"cmnd/{topic}/Dimmer", str(int(data["brightness_pct"])))
                else:
                    await self._client.publish(f"cmnd/{topic}/POWER", {"turn_on": "ON", "turn_off": "OFF", "toggle": "TOGGLE"}[service])
            else:
                raise ToolError(f"{entity.name} (Tasmota) does not support {service.replace('_', ' ')}")
        try:
            return await asyncio.wait_for(fut, self.config.timeout_s)
        except asyncio.TimeoutError:
            raise ToolError(f"{entity.name} did not confirm within {self.config.timeout_s:g} seconds; is it online?") from None
