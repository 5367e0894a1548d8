"""Simulated Zigbee2MQTT and Tasmota devices on a real MQTT broker.

The devices answer commands the way the real firmware does (Zigbee2MQTT publishes the new JSON
state on ``zigbee2mqtt/<name>``; Tasmota answers ``stat/<topic>/POWER`` and ``stat/<topic>/RESULT``),
so the MQTT home backend can be tested end to end against a broker such as mosquitto.

Usage::

    sim = DeviceSimulator("127.0.0.1", 1883, [SimDevice("zigbee2mqtt", "kitchen_bulb", "light"),
                                              SimDevice("tasmota", "heater", "switch")])
    await sim.start(); ...; await sim.stop()
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DeviceSimulator", "SimDevice"]


@dataclass
class SimDevice:
    protocol: str
    """``"zigbee2mqtt"`` or ``"tasmota"``."""
    topic: str
    kind: str = "light"
    """``light``, ``switch``, ``lock``, ``cover``, ``valve``, ``fan``, ``climate``."""
    state: dict[str, Any] = field(default_factory=dict)
    online: bool = True
    """An offline device ignores commands (to test timeouts)."""
    commands: list[Any] = field(default_factory=list)


class DeviceSimulator:
    """Runs simulated devices against an MQTT broker."""

    def __init__(self, host: str, port: int, devices: list[SimDevice]) -> None:
        self.host, self.port = host, port
        self.devices = {d.topic: d for d in devices}
        self._task: asyncio.Task | None = None
        self._ready = asyncio.Event()
        for d in devices:
            if not d.state:
                d.state = {
                    "lock": {"state": "LOCK", "lock_state": "locked"}, "cover": {"state": "CLOSE", "position": 0}, "fan": {"fan_mode": "off"},
                    "climate": {"system_mode": "heat", "current_heating_setpoint": 20, "local_temperature": 19.5},
                }.get(d.kind, {"state": "OFF"} if d.protocol == "zigbee2mqtt" else {"POWER": "OFF"})

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def _run(self) -> None:
        import aiomqtt

        async with aiomqtt.Client(self.host, port=self.port, identifier="jarvis-device-simulator") as client:
            for d in self.devices.values():
                if d.protocol == "zigbee2mqtt":
                    await client.subscribe(f"zigbee2mqtt/{d.topic}/set")
                    await client.subscribe(f"zigbee2mqtt/{d.topic}/get")
                else:
                    await client.subscribe(f"cmnd/{d.topic}/#")
            self._ready.set()
            async for msg in client.messages:
                await self._handle(client, str(msg.topic), msg.payload)

    async def _handle(self, client, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if parts[0] == "zigbee2mqtt":
            d = self.devices.get(parts[1])
            if d is None or not d.online:
                return
            if parts[2] == "set":
                cmd = json.loads(payload.decode() or "{}")
                d.commands.append(cmd)
                state = cmd.get("state")
                if d.kind == "lock" and state in ("LOCK", "UNLOCK"):
                    d.state.update(state=state, lock_state="locked" if state == "LOCK" else "unlocked")
                elif d.kind == "cover":
                    if "position" in cmd:
                        d.state.update(position=int(cmd["position"]), state="OPEN" if int(cmd["position"]) else "CLOSE")
                    elif state in ("OPEN", "CLOSE"):
                        d.state.update(state=state, position=100 if state == "OPEN" else 0)
                    elif state == "STOP":
                        d.state["position"] = d.state.get("position", 0)  # stays where it is
                elif d.kind == "fan":
                    if "fan_mode" in cmd:
                        d.state["fan_mode"] = cmd["fan_mode"]
                    elif state in ("ON", "OFF"):
                        d.state["fan_mode"] = "medium" if state == "ON" else "off"
                elif d.kind == "climate":
                    for k in ("system_mode", "current_heating_setpoint"):
                        if k in cmd:
                            d.state[k] = cmd[k]
                else:
                    if state == "TOGGLE":
                        state = "OFF" if d.state.get("state") == "ON" else "ON"
                    if state:
                        d.state["state"] = state
                    for k in ("brightness", "color", "color_temp"):
                        if k in cmd:
                            d.state[k] = cmd[k]
            await client.publish(f"zigbee2mqtt/{d.topic}", json.dumps(d.state))
        elif parts[0] == "cmnd":
            d = self.devices.get(parts[1])
            if d is None or not d.online:
                return
            command, value = parts[2].upper(), payload.decode().strip().upper()
            d.commands.append((command, value))
            if command == "POWER":
                if value in ("ON", "OFF"):
                    d.state["POWER"] = value
                elif value == "TOGGLE":
                    d.state["POWER"] = "OFF" if d.state.get("POWER") == "ON" else "ON"
                await client.publish(f"stat/{d.topic}/POWER", d.state["POWER"])
            elif command == "DIMMER" and value:
                d.state.update(Dimmer=int(value), POWER="ON")
                await client.publish(f"stat/{d.topic}/RESULT", json.dumps({"POWER": "ON", "Dimmer": int(value)}))
            elif command == "CT" and value:
                d.state.update(CT=int(value), POWER="ON")
                await client.publish(f"stat/{d.topic}/RESULT", json.dumps({"POWER": "ON", "CT": int(value)}))
