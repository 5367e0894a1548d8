"""The same natural requests against a real Home Assistant: lights, covers, locks, media players,
the to-do list and state questions, through the router (templates → tolerant tier), LLM off.

Home Assistant 2024.3.3 with its ``demo`` integration and a shopping list runs on loopback (see
``tests/servers.py``); the test gives some demo entities areas, as a user would, and checks
Home Assistant's own states after each request.
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from assistant.app import build_controller
from assistant.bus import EventBus

from .servers import home_assistant

pytestmark = pytest.mark.slow

AREAS = {"light.bed_light": "bedroom", "light.kitchen_lights": "kitchen", "light.ceiling_lights": "living_room"}


@pytest.fixture(scope="module")
def hass(tmp_path_factory):
    with home_assistant(tmp_path_factory.mktemp("hass-nlu")) as (url, token):
        import websockets

        async def assign() -> None:
            async with websockets.connect(url.replace("http", "ws") + "/api/websocket") as ws:
                await ws.recv()
                await ws.send(json.dumps({"type": "auth", "access_token": token}))
                await ws.recv()
                for i, (eid, area) in enumerate(AREAS.items(), 1):
                    await ws.send(json.dumps({"id": i, "type": "config/entity_registry/update", "entity_id": eid, "area_id": area}))
                    answer = json.loads(await ws.recv())
                    assert answer["success"], (eid, answer)

        asyncio.run(assign())
        yield url, token


def _state(hass, eid: str) -> dict:
    url, token = hass
    return httpx.get(f"{url}/api/states/{eid}", headers={"Authorization": f"Bearer {token}"}, timeout=10).json()


def _wait(hass, eid: str, ok, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        s = _state(hass, eid)
        if ok(s) or time.monotonic() > deadline:
            return s
        time.sleep(0.3)


async def test_natural_requests_reach_home_assistant(hass, config, monkeypatch):
    url, token = hass
    monkeypatch.setenv("HASS_TOKEN", token)
    cfg = config.with_overrides({"home.backend": "home_assistant", "home.home_assistant.url": url, "home.area": "Living Room", "llm.enabled": False})

    async def yes(_req) -> bool:
        return True

    controller = await build_controller(cfg, EventBus(), confirm=yes, llm=False, remote=False)
    assert not controller.registry.errors, controller.registry.errors
    router = controller.router
    turn = 0

    async def say(text: str) -> str:
        nonlocal turn
        turn += 1
        return "".join([p async for p in router.respond(text, turn=turn)])

    try:
        await say("could you turn the bed light on please")
        assert _wait(hass, "light.bed_light", lambda s: s["state"] == "on")["state"] == "on"
        await say("dim the kitchen lights to 20 percent")
        s = _wait(hass, "light.kitchen_lights", lambda s: s["attributes"].get("brightness") == 51)
        assert s["attributes"]["brightness"] == 51
        await say("kill the lights in the kitchen")
        s = _wait(hass, "light.kitchen_lights", lambda s: s["state"] == "off")
        assert s["state"] == "off" and s["attributes"].get("brightness") is None  # Home Assistant's semantics
        await say("open the garage door")
        assert _wait(hass, "cover.garage_door", lambda s: s["state"] in ("open", "opening"))["state"] in ("open", "opening")
        await say("open the kitchen window")
        assert _wait(hass, "cover.kitchen_window", lambda s: s["state"] in ("open", "opening"))["state"] in ("open", "opening")
        await say("please lock the kitchen door")
        assert _wait(hass, "lock.kitchen_door", lambda s: s["state"] == "locked")["state"] == "locked"
        await say("pause the kitchen speaker")
        assert _wait(hass, "media_player.kitchen", lambda s: s["state"] == "paused")["state"] == "paused"
        await say("turn the walkman down")
        assert _wait(hass, "media_player.walkman", lambda s: s["attributes"].get("volume_level") == 0.9)["attributes"]["volume_level"] == 0.9
        await say("mute the walkman")
        assert _wait(hass, "media_player.walkman", lambda s: s["attributes"].get("is_volume_muted"))["attributes"]["is_volume_muted"] is True
        await say("add oat milk to the shopping list")
        assert _wait(hass, "todo.shopping_list", lambda s: s["state"] == "1")["state"] == "1"
        assert "oat milk" in (await say("what's on my shopping list")).lower()
        await say("I bought the oat milk, tick it off the shopping list")
        assert _wait(hass, "todo.shopping_list", lambda s: s["state"] == "0")["state"] == "0"
        assert (await say("is the front door locked")).startswith("Yes")
        reply = await say("which lights are on")
        assert "bed light" in reply.lower() and "kitchen" not in reply.lower()
        assert "15.6" in await say("what's the temperature outside")
    finally:
        await controller.close()
