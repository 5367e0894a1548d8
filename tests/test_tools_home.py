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


async def test_mqtt_fans_valves_covers_thermostats_and_white_light(broker, tmp_path):
    """The Home Assistant domains MQTT devices have, with their own commands: fan modes, water valves,
    stopping a cover, thermostat modes, colour temperature (Zigbee2MQTT and Tasmota)."""
    host, port = broker
    devices = {
        "areas": [{"id": "garden", "name": "Garden"}, {"id": "lounge", "name": "Lounge"}],
        "entities": [
            {"id": "fan.lounge", "name": "Lounge Fan", "area": "lounge", "protocol": "zigbee2mqtt", "topic": "lounge_fan"},
            {"id": "valve.garden", "name": "Garden Valve", "area": "garden", "protocol": "zigbee2mqtt", "topic": "garden_valve"},
            {"id": "cover.lounge_blind", "name": "Lounge Blind", "area": "lounge", "protocol": "zigbee2mqtt", "topic": "lounge_blind",
             "attributes": {"device_class": "blind"}},
            {"id": "climate.lounge", "name": "Lounge Thermostat", "area": "lounge", "protocol": "zigbee2mqtt", "topic": "lounge_trv"},
            {"id": "light.lounge_lamp", "name": "Lounge Lamp", "area": "lounge", "protocol": "tasmota", "topic": "lounge_lamp"},
        ],
    }
    path = tmp_path / "devices.yaml"
    path.write_text(yaml.safe_dump(devices))
    cfg = Config().with_overrides({"paths.data_dir": str(tmp_path / "data"), "home.backend": "mqtt", "home.mqtt.host": host,
                                   "home.mqtt.port": port, "home.mqtt.devices": str(path), "home.mqtt.timeout_s": 2.0})
    fan, valve = SimDevice("zigbee2mqtt", "lounge_fan", "fan"), SimDevice("zigbee2mqtt", "garden_valve", "switch")
    blind, trv = SimDevice("zigbee2mqtt", "lounge_blind", "cover"), SimDevice("zigbee2mqtt", "lounge_trv", "climate")
    lamp = SimDevice("tasmota", "lounge_lamp", "light")
    sim = DeviceSimulator(host, port, [fan, valve, blind, trv, lamp])
    await sim.start()
    reg = await _registry(cfg, confirm=Answer(True))
    try:
        assert not reg.errors, reg.errors
        home = reg.service("home")
        out = await reg.call("home_set_fan", {"name": "Lounge Fan", "percentage": 50})
        assert out.ok, out.error
        assert fan.commands[-1] == {"fan_mode": "medium"} and home.snapshot().entity("fan.lounge").attributes["percentage"] == 66
        assert (await reg.call("home_turn_on", {"name": "Garden Valve"})).ok
        assert valve.commands[-1] == {"state": "ON"} and home.snapshot().entity("valve.garden").state == "open"
        assert (await reg.call("home_set_position", {"name": "Lounge Blind", "position": 40})).ok
        assert (await reg.call("home_stop", {"name": "Lounge Blind"})).ok
        assert blind.commands[-1] == {"state": "STOP"} and home.snapshot().entity("cover.lounge_blind").attributes["current_position"] == 40
        assert (await reg.call("home_set_hvac_mode", {"name": "Lounge Thermostat", "mode": "cool"})).ok
        assert trv.commands[-1] == {"system_mode": "cool"} and home.snapshot().entity("climate.lounge").state == "cool"
        out = await reg.call("home_set_light", {"name": "Lounge Lamp", "color": "warm white"})
        assert out.ok, out.error
        assert lamp.commands[-1] == ("CT", "370") and home.snapshot().entity("light.lounge_lamp").attributes["color_temp_kelvin"] == 2703
    finally:
        await reg.close()
        await sim.stop()


async def test_simulated_home_keeps_home_assistant_state_semantics(tmp_path):
    """Every domain the tools reach, with Home Assistant's state semantics, in the simulated home."""
    from benchmarks.nlu import HOMES

    cfg = Config().with_overrides({"paths.data_dir": str(tmp_path / "data"), "home.simulated_home": str(HOMES / "family_house.yaml"),
                                   "home.area": "Living Room"})
    reg = await _registry(cfg, confirm=Answer(True))
    home = reg.service("home")

    def e(eid):
        return home.snapshot().entity(eid)

    try:
        # lights: off means no brightness; on again comes back at the last brightness
        assert (await reg.call("home_set_light", {"name": "Desk Lamp", "brightness": 40})).ok
        assert (await reg.call("home_turn_off", {"name": "Desk Lamp"})).ok
        assert e("light.office_desk").state == "off" and e("light.office_desk").attributes.get("brightness") is None
        assert (await reg.call("home_turn_on", {"name": "Desk Lamp"})).ok
        assert e("light.office_desk").attributes["brightness"] == 102
        assert (await reg.call("home_set_light", {"name": "Bedside Lamp", "color": "warm white"})).ok
        assert e("light.master_bedside").attributes["color_temp_kelvin"] == 2700
        assert (await reg.call("home_set_light", {"name": "Desk Lamp", "brightness_step": -25})).ok
        assert round(e("light.office_desk").attributes["brightness"] * 100 / 255) == 15
        # fans: on reports a speed, on the fan's own steps; faster, oscillate, direction
        assert (await reg.call("home_turn_on", {"name": "Bedroom 1 Fan"})).ok
        assert e("fan.bedroom_1").attributes["percentage"] == 25
        assert (await reg.call("home_set_fan", {"name": "Ceiling Fan", "percentage": 50})).result["entities"][0]["percentage"] == 67
        assert (await reg.call("home_set_fan", {"name": "Bedroom 1 Fan", "step": 1, "oscillating": True})).ok
        assert e("fan.bedroom_1").attributes["percentage"] == 50 and e("fan.bedroom_1").attributes["oscillating"] is True
        assert (await reg.call("home_turn_off", {"name": "Bedroom 1 Fan"})).ok and e("fan.bedroom_1").attributes["percentage"] == 0
        # media: volume step, mute, source, stop
        assert (await reg.call("home_set_volume", {"name": "Kitchen Speaker", "step": -10})).ok
        assert e("media_player.kitchen_speaker").attributes["volume_level"] == 0.3
        assert (await reg.call("home_mute", {"name": "Kitchen Speaker"})).ok and e("media_player.kitchen_speaker").attributes["is_volume_muted"]
        assert (await reg.call("home_select_source", {"name": "Living Room TV", "source": "netflix"})).ok
        assert e("media_player.living_room_tv").attributes["source"] == "Netflix"
        assert not (await reg.call("home_select_source", {"name": "Living Room TV", "source": "betamax"})).ok
        # vacuums
        for action, state in (("start", "cleaning"), ("pause", "paused"), ("stop", "idle"), ("return_to_base", "returning")):
            assert (await reg.call("home_vacuum", {"action": action})).ok and e("vacuum.robot").state == state
        # climate: modes the device has, and a relative change
        assert (await reg.call("home_set_hvac_mode", {"mode": "cool"})).ok and e("climate.hallway_thermostat").state == "cool"
        assert not (await reg.call("home_set_hvac_mode", {"mode": "dry"})).ok  # this thermostat has no dry mode
        assert (await reg.call("home_set_temperature", {"change": -2})).ok and e("climate.hallway_thermostat").attributes["temperature"] == 18
        assert not (await reg.call("home_set_temperature", {"temperature": 45})).ok  # outside min_temp..max_temp
        # a device that two fit equally is asked about, not guessed; one that only one would change is not
        out = await reg.call("home_turn_on", {"name": "valve"})
        assert not out.ok and out.clarification is not None and out.error == "Which one: the irrigation valve or the drip line?"
        assert e("valve.front_yard_irrigation").state == "closed" and e("valve.back_garden").state == "closed"
        # covers and valves
        assert (await reg.call("home_set_position", {"name": "Smart Blind", "position": 30})).ok
        assert (await reg.call("home_stop", {"name": "Smart Blind"})).ok and e("cover.office_blind").attributes["current_position"] == 30
        assert (await reg.call("home_turn_on", {"name": "Irrigation Valve"})).ok and e("valve.front_yard_irrigation").state == "open"
        # scenes and scripts change their state to when they ran
        assert (await reg.call("home_turn_on", {"name": "Movie Night"})).ok and e("scene.movie_night").state != "unknown"
        # to-do lists of the home: add, check off, remove, read back
        assert (await reg.call("list_add", {"item": "clean the gutters", "list_name": "chores"})).say == "Added clean the gutters to the chores list."
        assert e("todo.chores").state == "3"
        assert (await reg.call("list_complete", {"item": "the bins", "list_name": "chores"})).say == "Checked Take out the bins off the chores list."
        assert (await reg.call("list_remove", {"item": "water plants", "list_name": "my chores"})).ok
        assert (await reg.call("list_read", {"list_name": "chores"})).result["items"] == ["clean the gutters"]
        assert (await reg.call("list_read", {})).result["items"] == ["Milk"]  # the home's shopping list (Eggs are done)
    finally:
        await reg.close()


async def test_state_questions_and_help_are_answered_the_way_they_were_asked(sim_config):
    """ "which ... are on" lists them (no "Yes"); "is anything open" does not count lights that are on;
    "what can you do" answers from the tools there are, never "Sorry"; "help me ..." is politeness."""
    from assistant.app import build_controller

    controller = await build_controller(sim_config.with_overrides({"llm.enabled": False}), EventBus(), llm=False)

    async def say(text: str) -> str:
        return "".join([p async for p in controller.router.respond(text, turn=1)])

    try:
        reg = controller.registry
        on = sorted(e.name.lower() for e in reg.service("home").snapshot().entities if e.domain == "light" and e.state == "on")
        assert len(on) >= 2
        reply = await say("which lights are on")
        assert not reply.startswith("Yes") and reply.startswith("The ") and all(n in reply.lower() for n in on)
        assert " and " in reply  # "the a, b and c are on"
        assert (await say("are any lights on")).startswith("Yes, the ")
        reply = await say("is anything open")
        assert "blinds are open" in reply and not any(n in reply.lower() for n in on)
        for q in ("what can you do", "Hey Jarvis, what can you do?", "what can I say", "help"):
            reply = await say(q)
            assert reply.startswith("I can ") and "timers" in reply and "Sorry" not in reply, q
        reg.remove_tool("timer_start")
        assert "timers" not in await say("what can you do")  # from the tools it has now
        assert (await say("help me turn off the kitchen light")) == "Turned off the kitchen light."
    finally:
        await controller.close()
