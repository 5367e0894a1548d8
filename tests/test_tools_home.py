"""Home control on its three real backends: the simulated home, a real Home Assistant, a real MQTT broker."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import yaml

from assistant.bus import EventBus
from assistant.config import Config
from assistant.testing.mqtt_devices import DeviceSimulator, SimDevice
from assistant.toolkit import ToolRegistry

from .servers import home_assistant, mosquitto


class Answer:
    """A confirmation hook that answers yes or no and remembers the questions."""

    def __init__(self, yes: bool) -> None:
        self.yes = yes
        self.asked: list[str] = []

    async def __call__(self, req) -> bool:
        self.asked.append(req.prompt)
        return self.yes


async def _registry(cfg: Config, confirm=None) -> ToolRegistry:
    reg = await ToolRegistry.create(cfg, EventBus(), confirm=confirm, extra_plugins=[])
    return reg


# ---------------------------------------------------------------------------- simulated home


@pytest.fixture
def sim_config(tmp_path) -> Config:
    return Config().with_overrides({"paths.data_dir": str(tmp_path / "data")})


async def test_simulated_home_commands_and_questions(sim_config):
    reg = await _registry(sim_config)
    try:
        assert (await reg.call("home_turn_on", {"name": "living room lamp"})).say == "Turned on the living room lamp."
        assert (await reg.call("home_turn_off", {"area": "Kitchen", "domain": ["light"]})).say == "Turned off the lights in the kitchen."
        out = await reg.call("home_get_state", {"area": "kitchen", "domain": ["light"], "state": "on"})
        assert out.result["answer"] is False
        out = await reg.call("home_set_light", {"name": "Desk Lamp", "brightness": 40, "color": "red"})
        assert out.ok and out.result["entities"][0]["attributes"]["brightness"] == 102
        assert out.result["entities"][0]["attributes"]["rgb_color"] == [255, 0, 0]
        out = await reg.call("home_set_position", {"name": "Living Room Blinds", "position": 30})
        assert out.ok and "30 percent" in out.say
        out = await reg.call("home_set_temperature", {"temperature": 22.5})
        assert out.say == "Set the temperature to 22.5 degrees."
        assert (await reg.call("home_get_temperature", {})).result["temperature"] == 20.5
        assert (await reg.call("home_media", {"action": "resume"})).ok
        assert (await reg.call("home_set_volume", {"volume": 55})).result["entities"][0]["volume_level"] == 0.55
        out = await reg.call("home_get_state", {"name": "Outside Temperature"})
        assert out.say == "Outside Temperature is 12.5 degrees."
        out = await reg.call("home_turn_on", {"name": "the toaster"})
        assert not out.ok and out.error == "I couldn't find the toaster."
        out = await reg.call("home_turn_on", {"area": "Attic"})
        assert not out.ok and "area called Attic" in out.error
        out = await reg.call("home_set_light", {"name": "Desk Lamp", "brightness": 140})
        assert not out.ok and "0 to 100" in out.error
    finally:
        await reg.close()


async def test_simulated_state_survives_a_restart(sim_config):
    reg = await _registry(sim_config)
    await reg.call("home_turn_on", {"name": "Bedroom Lamp"})
    await reg.call("home_set_temperature", {"temperature": 19})
    await reg.close()
    reg = await _registry(sim_config)
    try:
        home = reg.service("home")
        assert home.snapshot().entity("light.bedroom_lamp").state == "on"
        assert home.snapshot().entity("climate.thermostat").attributes["temperature"] == 19
    finally:
        await reg.close()


async def test_locks_and_garage_doors_ask_first(sim_config):
    yes, no = Answer(True), Answer(False)
    reg = await _registry(sim_config)
    try:
        out = await reg.call("home_turn_off", {"name": "Front Door"}, confirm=no)
        assert out.refused and not out.ok
        assert no.asked == ["Do you want me to unlock the Front Door?"]
        assert reg.service("home").snapshot().entity("lock.front_door").state == "locked"
        out = await reg.call("home_turn_off", {"name": "Front Door"}, confirm=yes)
        assert out.ok and out.say == "Unlocked the front door."
        out = await reg.call("home_turn_on", {"name": "Garage Door"}, confirm=yes)
        assert out.ok and yes.asked[-1] == "Do you want me to open the Garage Door?"
        # ordinary lights never ask
        before = len(yes.asked)
        assert (await reg.call("home_turn_on", {"name": "Hallway Light"}, confirm=yes)).ok
        assert len(yes.asked) == before
    finally:
        await reg.close()


async def test_confirmation_policy_can_be_relaxed_or_tightened(tmp_path):
    relaxed = Config().with_overrides({"paths.data_dir": str(tmp_path / "a"), "tools.never_confirm_tools": ["home_turn_off"]})
    reg = await _registry(relaxed)
    try:
        assert (await reg.call("home_turn_off", {"name": "Front Door"})).ok  # no hook needed
    finally:
        await reg.close()
    strict = Config().with_overrides({"paths.data_dir": str(tmp_path / "b"), "tools.confirm_risks": ["home", "security", "off_device"]})
    reg = await _registry(strict)
    try:
        assert (await reg.call("home_turn_on", {"name": "Hallway Light"})).refused
    finally:
        await reg.close()


# ---------------------------------------------------------------------------- Home Assistant


@pytest.fixture(scope="module")
def hass(tmp_path_factory):
    with home_assistant(tmp_path_factory.mktemp("hass")) as server:
        yield server


def _ha_config(tmp_path, url: str) -> Config:
    return Config().with_overrides({"paths.data_dir": str(tmp_path / "data"), "home.backend": "home_assistant", "home.home_assistant.url": url})


async def _assign_area(url: str, token: str, entity_id: str, area_id: str) -> None:
    import websockets

    async with websockets.connect(url.replace("http", "ws") + "/api/websocket") as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "auth", "access_token": token}))
        await ws.recv()
        await ws.send(json.dumps({"id": 1, "type": "config/entity_registry/update", "entity_id": entity_id, "area_id": area_id}))
        assert json.loads(await ws.recv())["success"]


def _ha_state(url: str, token: str, entity_id: str) -> dict:
    return httpx.get(f"{url}/api/states/{entity_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()


async def test_home_assistant_backend(hass, tmp_path, monkeypatch):
    url, token = hass
    monkeypatch.setenv("HASS_TOKEN", token)
    await _assign_area(url, token, "light.kitchen_lights", "kitchen")
    reg = await _registry(_ha_config(tmp_path, url), confirm=Answer(True))
    try:
        assert not reg.errors, reg.errors
        home = reg.service("home")
        snap = home.snapshot()
        assert {"Living Room", "Kitchen", "Bedroom"} <= {a.name for a in snap.areas}
        assert snap.entity("light.kitchen_lights").area_id == "kitchen"
        # a command goes through the REST API and Home Assistant's state follows
        out = await reg.call("home_turn_off", {"area": "Kitchen", "domain": ["light"]})
        assert out.ok, out.error
        assert _ha_state(url, token, "light.kitchen_lights")["state"] == "off"
        out = await reg.call("home_set_light", {"name": "Ceiling Lights", "brightness": 20})
        assert out.ok and _ha_state(url, token, "light.ceiling_lights")["attributes"]["brightness"] == 51
        # a lock is security-sensitive: confirmed, then done on the server
        out = await reg.call("home_turn_off", {"name": "Front Door"})
        assert out.ok and out.say == "Unlocked the front door."
        assert _ha_state(url, token, "lock.front_door")["state"] in ("unlocked", "unlocking")
        # a change made elsewhere reaches the snapshot over the WebSocket subscription
        await asyncio.wait_for(home.connected.wait(), 10)
        httpx.post(f"{url}/api/services/light/turn_on", json={"entity_id": "light.bed_light"}, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        for _ in range(50):
            if home.snapshot().entity("light.bed_light").state == "on":
                break
            await asyncio.sleep(0.1)
        assert home.snapshot().entity("light.bed_light").state == "on"
        out = await reg.call("home_get_state", {"name": "Bed Light", "state": "on"})
        assert out.result["answer"] is True
    finally:
        await reg.close()


async def test_home_assistant_bad_token_is_explained(hass, tmp_path, monkeypatch):
    url, _ = hass
    monkeypatch.setenv("HASS_TOKEN", "not-a-token")
    reg = await _registry(_ha_config(tmp_path, url))
    try:
        assert "home_turn_on" not in reg.tools
        assert any("rejected the token" in e for e in reg.errors), reg.errors
    finally:
        await reg.close()


async def test_home_assistant_unreachable_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("HASS_TOKEN", "x")
    reg = await _registry(_ha_config(tmp_path, "http://127.0.0.1:9"))
    try:
        assert any("cannot reach Home Assistant at http://127.0.0.1:9" in e for e in reg.errors), reg.errors
        assert "clock_time" in reg.tools  # the other tools keep working
    finally:
        await reg.close()


# ---------------------------------------------------------------------------- MQTT


@pytest.fixture
def broker(tmp_path):
    with mosquitto(tmp_path) as addr:
        yield addr


def _mqtt_config(tmp_path, host: str, port: int) -> Config:
    devices = {
        "areas": [{"id": "kitchen", "name": "Kitchen"}, {"id": "hall", "name": "Hallway"}],
        "entities": [
            {"id": "light.kitchen_bulb", "name": "Kitchen Bulb", "area": "kitchen", "protocol": "zigbee2mqtt", "topic": "kitchen_bulb"},
            {"id": "switch.heater", "name": "Heater", "area": "kitchen", "protocol": "tasmota", "topic": "heater"},
            {"id": "lock.front_door", "name": "Front Door", "area": "hall", "protocol": "zigbee2mqtt", "topic": "front_lock"},
            {"id": "light.porch", "name": "Porch Light", "area": "hall", "protocol": "zigbee2mqtt", "topic": "porch"},
        ],
    }
    path = tmp_path / "devices.yaml"
    path.write_text(yaml.safe_dump(devices))
    return Config().with_overrides({
        "paths.data_dir": str(tmp_path / "data"), "home.backend": "mqtt",
        "home.mqtt.host": host, "home.mqtt.port": port, "home.mqtt.devices": str(path), "home.mqtt.timeout_s": 2.0,
    })


async def test_mqtt_backend_with_zigbee2mqtt_and_tasmota_devices(broker, tmp_path):
    host, port = broker
    bulb = SimDevice("zigbee2mqtt", "kitchen_bulb", "light")
    heater = SimDevice("tasmota", "heater", "switch")
    lock = SimDevice("zigbee2mqtt", "front_lock", "lock")
    porch = SimDevice("zigbee2mqtt", "porch", "light", online=False)
    sim = DeviceSimulator(host, port, [bulb, heater, lock, porch])
    await sim.start()
    reg = await _registry(_mqtt_config(tmp_path, host, port), confirm=Answer(True))
    try:
        assert not reg.errors, reg.errors
        home = reg.service("home")
        for _ in range(50):  # the devices answer the initial state requests
            if home.snapshot().entity("lock.front_door").state == "locked":
                break
            await asyncio.sleep(0.05)
        assert home.snapshot().entity("lock.front_door").state == "locked"
        out = await reg.call("home_set_light", {"name": "Kitchen Bulb", "brightness": 50, "color": "blue"})
        assert out.ok, out.error
        assert bulb.commands[-1] == {"state": "ON", "brightness": 127, "color": {"r": 0, "g": 0, "b": 255}}
        assert home.snapshot().entity("light.kitchen_bulb").state == "on"
        out = await reg.call("home_turn_on", {"name": "Heater"})
        assert out.ok and heater.state["POWER"] == "ON" and home.snapshot().entity("switch.heater").state == "on"
        assert (await reg.call("home_turn_off", {"area": "Kitchen"})).ok
        assert heater.state["POWER"] == "OFF" and bulb.state["state"] == "OFF"
        out = await reg.call("home_turn_off", {"name": "Front Door"})
        assert out.ok and lock.state["lock_state"] == "unlocked"
        out = await reg.call("home_turn_on", {"name": "Porch Light"})
        assert not out.ok and "did not confirm" in out.error and "online" in out.error
    finally:
        await reg.close()
        await sim.stop()


async def test_mqtt_broker_down_is_explained(tmp_path):
    from .servers import free_port

    reg = await _registry(_mqtt_config(tmp_path, "127.0.0.1", free_port()))
    try:
        assert any("cannot connect to the MQTT broker" in e for e in reg.errors), reg.errors
    finally:
        await reg.close()
