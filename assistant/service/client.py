"""A running service, seen from another process: :class:`RemoteSession`, the control API as a session.

``assistant tui --connect URL`` attaches the TUI to an ``assistant serve`` (on this machine or a
speaker across the room) through this class. It has the members of
:class:`~assistant.session.Session` that live views use — an :class:`~assistant.bus.EventBus`
fed from the API's event stream (``GET /events/stream``, server-sent events), ``ask``,
``interrupt``, ``set_muted``, the home, the timers, the models and the microphone level — so the
TUI shows the same live view either way.

A question the service asks back (a confirmation) arrives as the reply of ``POST /ask`` with
``awaiting_answer``; the session's confirm hook (the TUI's dialog) answers it and the answer is
sent as the next request. The event stream reconnects by itself (with a growing pause, at most
:data:`RECONNECT_MAX_S`) when the service restarts.

The token is read from ``$ASSISTANT_API_TOKEN`` (``service.token_env``), else from the service's
token file, ``<data dir>/api-token`` — the same machine, the same user.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import httpx

from ..bus import EventBus
from ..config import Config
from ..errors import AssistantError
from ..events import ToolCallFinished, from_dict
from ..toolkit.api import Risk
from .auth import read_token, token_path

__all__ = ["RECONNECT_MAX_S", "RemoteQuestion", "RemoteSession"]

log = logging.getLogger(__name__)

RECONNECT_MAX_S = 5.0
"""Longest pause between attempts to reconnect the event stream, seconds."""
STATUS_POLL_S = 0.5
"""How often the microphone level and state are read from ``GET /status``, seconds."""


@dataclass
class RemoteQuestion:
    """A confirmation the service asks an API caller (what a confirm hook receives)."""

    prompt: str
    risk: Risk = Risk.SECURITY


class RemoteSession:
    """A running ``assistant serve``, over its control API.

    Args:
        url: The API's base URL, e.g. ``http://127.0.0.1:8765``.
        config: Where the token is found (``service.token_env``, the data dir).
        token: The token, if given explicitly (overrides the config).
        bus: The event bus the stream's events are emitted on (a new one by default).

    Raises:
        AssistantError: From :meth:`start`: no token, the service is not reachable, or the token is refused.
    """

    remote = True

    def __init__(self, url: str, config: Config, *, token: str | None = None, bus: EventBus | None = None) -> None:
        self.url = url.rstrip("/")
        self.config = config
        self.bus = bus or EventBus()
        self.token = token or read_token(config)
        self._confirm: Callable[[Any], Awaitable[bool]] | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task] = []
        self._home_callbacks: list[Callable[[], None]] = []
        self.status: dict[str, Any] = {}
        """The last ``GET /status``."""
        self.connected = asyncio.Event()
        """Set while the event stream is connected."""

    # ------------------------------------------------------------------ life

    def set_confirm(self, hook: Callable[[Any], Awaitable[bool]] | None) -> None:
        self._confirm = hook

    async def start(self) -> None:
        if not self.token:
            raise AssistantError(f"no API token for {self.url}",
                                 hint=f"set ${self.config.service.token_env}, or run this as the service's user (it reads {token_path(self.config)})")
        self._client = httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=httpx.Timeout(10.0, read=None))
        try:
            r = await self._client.get("/status")
        except httpx.HTTPError as exc:
            await self._client.aclose()
            raise AssistantError(f"cannot reach the service at {self.url}: {exc}", hint="is `assistant serve` running? check the URL and port") from None
        if r.status_code == 401:
            await self._client.aclose()
            raise AssistantError(f"the service at {self.url} refused the token", hint=f"use the token in the service's {token_path(self.config)}")
        r.raise_for_status()
        self.status = r.json()
        self._tasks = [asyncio.create_task(self._stream(), name="remote-events"), asyncio.create_task(self._poll_status(), name="remote-status")]
        try:
            await asyncio.wait_for(self.connected.wait(), 10.0)
        except asyncio.TimeoutError:
            await self.close()
            raise AssistantError(f"the service at {self.url} does not stream its events", hint="is it an `assistant serve` of this version?") from None

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._client is not None:
            await self._client.aclose()

    async def _stream(self) -> None:
        """Server-sent events → the bus, reconnecting when the service goes away."""
        assert self._client is not None
        pause = 0.2
        while True:
            try:
                async with self._client.stream("GET", "/events/stream") as r:
                    r.raise_for_status()
                    self.connected.set()
                    pause = 0.2
                    async for line in r.aiter_lines():
                        if line.startswith("data: "):
                            self._emit(line[6:])
            except (httpx.HTTPError, ValueError) as exc:
                log.info("event stream from %s lost (%s); reconnecting", self.url, exc)
            self.connected.clear()
            await asyncio.sleep(pause)
            pause = min(pause * 2, RECONNECT_MAX_S)

    def _emit(self, data: str) -> None:
        try:
            event = from_dict(json.loads(data))
        except ValueError:
            return
        if event is None:
            return
        self.bus.emit(event)
        if isinstance(event, ToolCallFinished) and event.ok:
            for cb in list(self._home_callbacks):
                cb()

    async def _poll_status(self) -> None:
        assert self._client is not None
        while True:
            await asyncio.sleep(STATUS_POLL_S)
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = await self._client.get("/status")
                if r.status_code == 200:
                    self.status = r.json()

    async def _get(self, path: str) -> Any:
        assert self._client is not None
        r = await self._client.get(path)
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()

    # ------------------------------------------------------------------ what the TUI does

    async def ask(self, text: str) -> str:
        """Send a request; a question back goes to the confirm hook and its answer is sent.

        Raises:
            AssistantError: The service refused the request (busy, too long) or cannot be reached.
        """
        assert self._client is not None
        body = await self._post_ask(text)
        while body.get("awaiting_answer"):
            ok = await self._confirm(RemoteQuestion(prompt=body.get("reply") or "")) if self._confirm is not None else False
            body = await self._post_ask("yes" if ok else "no")
        return str(body.get("reply") or "")

    async def _post_ask(self, text: str) -> dict[str, Any]:
        assert self._client is not None
        try:
            r = await self._client.post("/ask", json={"text": text}, timeout=httpx.Timeout(10.0, read=300.0))
        except httpx.HTTPError as exc:
            raise AssistantError(f"cannot reach the service at {self.url}: {exc}", hint="is `assistant serve` running?") from None
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        if r.status_code != 200:
            raise AssistantError(f"the service refused the request: {body.get('error', r.status_code)}", hint=body.get("hint", ""))
        return body

    async def interrupt(self) -> None:
        assert self._client is not None
        with contextlib.suppress(httpx.HTTPError):
            await self._client.post("/interrupt", json={})

    def set_muted(self, muted: bool) -> None:
        assert self._client is not None
        self._tasks.append(asyncio.get_running_loop().create_task(self._client.post("/mute" if muted else "/unmute", json={})))

    async def home_rows(self) -> list[dict[str, str]] | None:
        body = await self._get("/home")
        return body["entities"] if body else None

    def on_home_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every successful tool call (the home may have changed)."""
        self._home_callbacks.append(callback)

    async def tools(self) -> list[dict[str, str]]:
        body = await self._get("/tools")
        return body["tools"] if body else []

    async def timers(self) -> list[dict[str, Any]]:
        body = await self._get("/timers")
        return body["timers"] if body else []

    async def models(self) -> dict[str, str]:
        m = self.status.get("models", {})
        return {"wake": ", ".join(m.get("wake") or []), "asr": m.get("asr") or "", "llm": m.get("llm") or "off", "tts": m.get("tts") or ""}

    @property
    def level_dbfs(self) -> float:
        return float(self.status.get("level_dbfs", -100.0))

    @property
    def has_voice(self) -> bool:
        return False  # the service listens to its own microphone; this process does not

    def push_to_talk(self) -> bool:
        """Ask the service to listen now (``POST /listen``); what it hears arrives as events."""
        assert self._client is not None
        self._tasks.append(asyncio.get_running_loop().create_task(self._client.post("/listen", json={})))
        return True

    @property
    def state(self) -> str:
        return str(self.status.get("state", "starting"))
