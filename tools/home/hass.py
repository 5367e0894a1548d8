"""Home Assistant backend: REST for states and service calls, WebSocket for registries and live changes.

Authenticates with a long-lived access token (Profile → Security in Home Assistant) read from the
environment variable named by ``home.home_assistant.token_env``. At start it reads the area,
floor (Home Assistant 2024.4+), device and entity registries over the WebSocket API, then
subscribes to ``state_changed`` events so the snapshot stays current; a dropped WebSocket is
reconnected with backoff while the REST API keeps serving commands.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import httpx

from assistant.config import HomeAssistantConfig
from assistant.errors import AssistantError, ToolError, require

from .backend import HomeBackend
from assistant.home.model import Area, Entity, Floor, HomeSnapshot

__all__ = ["HomeAssistantHome"]

log = logging.getLogger(__name__)

# Domains worth talking about (not updates, buttons, zones, device trackers ...)
_DOMAINS = {
    "light", "switch", "fan", "cover", "lock", "climate", "media_player", "sensor", "binary_sensor", "vacuum",
    "valve", "scene", "script", "input_boolean", "alarm_control_panel", "humidifier", "person", "weather", "siren", "todo",
}


class HomeAssistantHome(HomeBackend):
    """A Home Assistant server.

    Args:
        config: URL, token variable and timeout.
        token: The token itself (default: read from the environment variable).
    """

    name = "home_assistant"

    def __init__(self, config: HomeAssistantConfig, token: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.url = config.url.rstrip("/")
        self._token = token
        self._snap = HomeSnapshot()
        self._http: httpx.AsyncClient | None = None
        self._ws_task: asyncio.Task | None = None
        self._entity_areas: dict[str, str | None] = {}
        self._aliases: dict[str, tuple[str, ...]] = {}
        self._names: dict[str, str] = {}
        self.connected = asyncio.Event()

    # ------------------------------------------------------------------ connection

    def _token_value(self) -> str:
        token = self._token or os.environ.get(self.config.token_env, "")
        if not token:
            raise AssistantError(
                f"no Home Assistant token: ${self.config.token_env} is not set",
                hint="create a long-lived access token in Home Assistant (your profile → Security) and export it",
            )
        return token

    async def start(self) -> None:
        token = self._token_value()
        self._http = httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=self.config.timeout_s)
        try:
            r = await self._http.get("/api/")
        except httpx.TransportError as exc:
            raise AssistantError(f"cannot reach Home Assistant at {self.url}: {exc}", hint="check home.home_assistant.url and that the server is running") from None
        if r.status_code == 401:
            raise AssistantError(f"Home Assistant at {self.url} rejected the token (HTTP 401)", hint=f"create a new long-lived token and put it in ${self.config.token_env}")
        if r.status_code != 200:
            raise AssistantError(f"Home Assistant at {self.url} answered HTTP {r.status_code} on /api/", hint="is the api: integration enabled?")
        ws = await self._ws_connect(token)
        try:
            await self._load_registries(ws)
        finally:
            await ws.close()
        await self._load_states()
        self._ws_task = asyncio.create_task(self._watch(token), name="hass-state-changes")

    async def close(self) -> None:
        if self._ws_task:
            self._ws_task.cancel()
            try:
                await self._ws_task
            except (asyncio.CancelledError, Exception):
                pass
        if self._http:
            await self._http.aclose()

    async def _ws_connect(self, token: str):
        websockets = require("websockets", "homeassistant", "the Home Assistant backend")
        ws_url = self.url.replace("http://", "ws://").replace("https://", "wss://") + "/api/websocket"
        try:
            ws = await websockets.connect(ws_url, max_size=16 * 2**20, open_timeout=self.config.timeout_s)
        except (OSError, websockets.exceptions.WebSocketException) as exc:
            raise AssistantError(f"cannot open Home Assistant's WebSocket API at {ws_url}: {exc}") from None
        hello = json.loads(await ws.recv())
        if hello.get("type") != "auth_required":
            raise AssistantError(f"unexpected WebSocket greeting from Home Assistant: {hello}")
        await ws.send(json.dumps({"type": "auth", "access_token": token}))
        answer = json.loads(await ws.recv())
        if answer.get("type") != "auth_ok":
            await ws.close()
            raise AssistantError(f"Home Assistant rejected the token on the WebSocket API: {answer.get('message', answer)}")
        self._ws_id = 0
        return ws

    async def _ws_call(self, ws, msg_type: str, **payload: Any) -> Any:
        self._ws_id += 1
        await ws.send(json.dumps({"id": self._ws_id, "type": msg_type, **payload}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), self.config.timeout_s))
            if msg.get("id") == self._ws_id and msg.get("type") == "result":
                if not msg.get("success"):
                    raise ToolError(f"Home Assistant: {msg_type} failed: {msg.get('error', {}).get('message', msg)}")
                return msg.get("result")

    async def _load_registries(self, ws) -> None:
        areas_raw = await self._ws_call(ws, "config/area_registry/list")
        try:
            floors_raw = await self._ws_call(ws, "config/floor_registry/list")
        except ToolError:
            floors_raw = []  # Home Assistant before 2024.4 has no floors
        devices = await self._ws_call(ws, "config/device_registry/list")
        entities = await self._ws_call(ws, "config/entity_registry/list")
        device_area = {d["id"]: d.get("area_id") for d in devices}
        self._snap.floors = [Floor(id=f["floor_id"], name=f["name"], aliases=tuple(f.get("aliases") or ())) for f in floors_raw]
        self._snap.areas = [Area(id=a["area_id"], name=a["name"], floor_id=a.get("floor_id"), aliases=tuple(a.get("aliases") or ())) for a in areas_raw]
        for e in entities:
            if e.get("disabled_by") or e.get("hidden_by"):
                continue
            eid = e["entity_id"]
            self._entity_areas[eid] = e.get("area_id") or device_area.get(e.get("device_id"))
            self._aliases[eid] = tuple(e.get("aliases") or ())
            if e.get("name"):
                self._names[eid] = e["name"]

    def _entity(self, state: dict[str, Any]) -> Entity | None:
        eid = state["entity_id"]
        if eid.split(".", 1)[0] not in _DOMAINS:
            return None
        attrs = dict(state.get("attributes") or {})
        name = self._names.get(eid) or attrs.pop("friendly_name", None) or eid.split(".", 1)[1].replace("_", " ")
        attrs.pop("friendly_name", None)
        return Entity(id=eid, name=name, area_id=self._entity_areas.get(eid), state=str(state.get("state")), attributes=attrs, aliases=self._aliases.get(eid, ()))

    async def _load_states(self) -> None:
        assert self._http is not None
        r = await self._http.get("/api/states")
        r.raise_for_status()
        self._snap.entities = [e for s in r.json() if (e := self._entity(s)) is not None]

    async def _watch(self, token: str) -> None:
        delay = 1.0
        while True:
            try:
                ws = await self._ws_connect(token)
                try:
                    await self._ws_call(ws, "subscribe_events", event_type="state_changed")
                    self.connected.set()
                    delay = 1.0
                    async for raw in ws:
                        msg = json.loads(raw)
                        if msg.get("type") == "event":
                            self._on_state(msg["event"]["data"].get("new_state"))
                finally:
                    self.connected.clear()
                    await ws.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect whatever happened
                log.warning("Home Assistant WebSocket dropped (%s); reconnecting in %.0f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    def _on_state(self, new_state: dict[str, Any] | None) -> None:
        if not new_state:
            return
        e = self._entity(new_state)
        if e is None:
            return
        ents = [x for x in self._snap.entities if x.id != e.id]
        ents.append(e)
        self._snap.entities = ents
        self._changed(e)

    def snapshot(self) -> HomeSnapshot:
        return self._snap

    async def todo_items(self, entity: Entity) -> list[dict[str, Any]]:
        """``todo.get_items`` over the WebSocket API (it returns a service response)."""
        ws = await self._ws_connect(self._token_value())
        try:
            result = await self._ws_call(ws, "call_service", domain="todo", service="get_items", target={"entity_id": entity.id},
                                         service_data={}, return_response=True)
        finally:
            await ws.close()
        response = (result or {}).get("response") or {}
        items = (response.get(entity.id) or {}).get("items") or []
        return [{"summary": i.get("summary", ""), "status": i.get("status", "needs_action")} for i in items]

    async def call_service(self, entity: Entity, service: str, data: dict[str, Any] | None = None) -> Entity:
        assert self._http is not None
        domain = entity.domain
        if service in ("open_cover", "close_cover", "set_cover_position", "open_valve", "close_valve", "set_valve_position"):
            domain = "valve" if "valve" in service else "cover"
        try:
            r = await self._http.post(f"/api/services/{domain}/{service}", json={"entity_id": entity.id, **(data or {})})
        except httpx.TimeoutException:
            raise ToolError(f"Home Assistant did not answer in time ({self.config.timeout_s:g} s)") from None
        except httpx.TransportError as exc:
            raise ToolError(f"I can't reach Home Assistant: {exc}") from None
        if r.status_code == 400:
            raise ToolError(f"Home Assistant refused {domain}.{service} for {entity.name}: {r.text[:200]}")
        if r.status_code >= 300:
            raise ToolError(f"Home Assistant answered HTTP {r.status_code} to {domain}.{service}")
        changed = {s["entity_id"]: s for s in r.json() if isinstance(s, dict)}
        state = changed.get(entity.id)
        if state is None:
            g = await self._http.get(f"/api/states/{entity.id}")
            state = g.json() if g.status_code == 200 else None
        if state is not None:
            self._on_state(state)
        return next((e for e in self._snap.entities if e.id == entity.id), entity)
