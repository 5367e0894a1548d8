"""The control and observation API of the headless service (aiohttp).

=========================  ====================================================================
``GET  /health``           ``{"status": "ok" | "degraded", "state": ..., "uptime_s": ..., "problems": {part: why}}`` — never needs a token
``GET  /status``           state, mute, models, models still loading, turn count, the last turn's timings, recent errors
``GET  /events?last=N``    the most recent events (JSON list)
``GET  /events/stream``    events as they happen (Server-Sent Events)
``POST /ask``              ``{"text": "..."}`` → ``{"reply": ..., "route": ..., "tool_calls": [...]}``; when the
                           turn asks something (a confirmation), the reply is the question with
                           ``"awaiting_answer": true``, and the next ``/ask`` answers it
``POST /interrupt``        stop the reply and the turn in progress
``POST /listen``           push-to-talk: the next utterance is a request, no wake word needed (409 without a microphone)
``POST /mute``, ``/unmute``  stop or resume listening to the microphone
``GET  /home``, ``/timers``   the home's devices and states; running timers
``GET  /tools``            the loaded tools: name, source (plugin or ``mcp:<server>``), risk, MCP server state
``GET  /metrics``          Prometheus metrics
=========================  ====================================================================

Bound to loopback by default. Every request but ``/health`` needs the token (``Authorization:
Bearer <token>``), a ``Host`` header naming this machine and no foreign ``Origin``; a POST needs
``Content-Type: application/json`` (see :mod:`.auth` for why, even on loopback). A burst of
``/ask`` requests is queued (at most :data:`MAX_QUEUED`) and the rest are answered ``429 Too Many
Requests`` with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import json
import logging
import time
from typing import Any

from aiohttp import web

from ..config import Config
from ..errors import AssistantError
from .auth import AccessPolicy, ensure_token
from ..engine.arbiter import Busy, Request
from ..engine.channels import ApiChannel
from ..engine.speaker import Speaker
from ..events import Event, RouteDecided, ToolCallFinished, event_type, to_dict
from ..session import Session
from .metrics import Metrics

__all__ = ["ApiServer", "MAX_QUEUED", "is_loopback"]

log = logging.getLogger(__name__)

MAX_QUEUED = 8
"""``/ask`` requests waiting at once; more are refused with 429."""
MAX_BODY = 16 * 1024
"""Largest ``/ask`` body accepted, bytes."""
MAX_TEXT = 1000
"""Longest request text accepted, characters."""


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ApiServer:
    """The HTTP API of one session.

    Args:
        session: The running assistant.
        config: Host, port and token settings.
        metrics: Where metrics come from.

    Raises:
        ConfigError: The token file cannot be created.
    """

    def __init__(self, session: Session, config: Config, metrics: Metrics, started_at: float | None = None) -> None:
        sc = config.service
        self.session = session
        self.metrics = metrics
        self.host, self.port = sc.host, sc.port
        self.token = ensure_token(config)
        self.access = AccessPolicy(config, self.token)
        self.started_at = started_at or time.time()
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=500)
        self._seq = 0
        self._subscribers: set[asyncio.Queue] = set()
        self._channel: ApiChannel | None = None
        self._turn: asyncio.Task | None = None
        self._turn_request: Request | None = None
        self.errors: collections.deque[dict[str, Any]] = collections.deque(maxlen=20)
        self._runner: web.AppRunner | None = None
        session.bus.subscribe(self._on_event)

    # ------------------------------------------------------------------ events

    def _on_event(self, e: Event) -> None:
        if event_type(e) in ("audio_out",):
            return
        self._seq += 1
        d = {"seq": self._seq, **to_dict(e)}
        self.recent.append(d)
        for q in list(self._subscribers):
            if q.qsize() < 1000:
                q.put_nowait(d)
        if event_type(e) == "error":
            self.errors.append(d)

    # ------------------------------------------------------------------ app

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.add_routes([
            web.get("/health", self.health),
            web.get("/status", self.status),
            web.get("/events", self.events),
            web.get("/events/stream", self.stream),
            web.post("/ask", self.ask),
            web.post("/interrupt", self.interrupt),
            web.post("/listen", self.listen),
            web.post("/mute", self.mute),
            web.get("/home", self.home),
            web.get("/timers", self.timers),
            web.get("/tools", self.tools),
            web.post("/unmute", self.unmute),
            web.get("/metrics", self.metrics_handler),
        ])
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler):
        refused = self.access.check(request.method, request.path, request.headers)
        if refused is not None:
            status, why = refused
            hint = {401: "send Authorization: Bearer <token> (the token is in <data dir>/api-token)"}.get(status, "")
            return web.json_response({"error": why, "hint": hint}, status=status)
        return await handler(request)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            raise AssistantError(f"cannot listen on {self.host}:{self.port}: {exc}", hint="is another instance running? change service.port") from None
        if self.port == 0:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("control API listening", extra={"host": self.host, "port": self.port})

    async def close(self) -> None:
        for q in list(self._subscribers):
            q.put_nowait(None)
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ handlers

    async def health(self, request: web.Request) -> web.Response:
        problems = dict(getattr(self.session, "problems", {}) or {})
        body = {"status": "degraded" if problems else "ok", "state": self.session.state, "uptime_s": round(time.time() - self.started_at, 1)}
        if problems:
            body["problems"] = problems
        return web.json_response(body)

    async def status(self, request: web.Request) -> web.Response:
        cfg = self.session.config
        pipe = self.session.pipeline
        return web.json_response({
            "state": self.session.state, "muted": bool(pipe and pipe.muted), "turns": self.session.timings.turns, "last_turn": self.session.timings.last,
            "level_dbfs": round(self.session.level_dbfs, 1), "voice": self.session.has_voice,
            "models": {"wake": cfg.wake.models, "asr": cfg.asr.model, "tts": cfg.tts.voice, "llm": cfg.llm.model if cfg.llm.enabled else None},
            "input": str(self.session.options.input_file or "microphone"), "load_s": round(self.session.load_s, 2), "loading": self.session.loading,
            "errors": list(self.errors), "uptime_s": round(time.time() - self.started_at, 1),
        })

    async def events(self, request: web.Request) -> web.Response:
        try:
            last = max(1, min(500, int(request.query.get("last", "100"))))
        except ValueError:
            return web.json_response({"error": "last must be a number"}, status=400)
        return web.json_response(list(self.recent)[-last:])

    async def stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        q: asyncio.Queue = asyncio.Queue()
        self._subscribers.add(q)
        try:
            while True:
                try:
                    item = await asyncio.wait_for(q.get(), 15.0)
                except asyncio.TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    continue
                if item is None:
                    break
                await resp.write(f"event: {item['type']}\ndata: {json.dumps(item)}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._subscribers.discard(q)
        return resp

    async def ask(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.json_response({"error": f"the request body is larger than {MAX_BODY} bytes"}, status=413)
        try:
            body = json.loads(await request.content.read(MAX_BODY + 1))
            text = str(body["text"]).strip()
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return web.json_response({"error": 'send JSON like {"text": "turn on the lamp"}'}, status=400)
        if len(text) > MAX_TEXT:
            return web.json_response({"error": f"text is longer than {MAX_TEXT} characters"}, status=413)
        if not text:
            return web.json_response({"error": "text is empty"}, status=400)
        channel = self._api_channel()
        if channel.waiting_for_answer and self._turn is not None and not self._turn.done():
            channel.answer(text)  # the answer to the question the API caller's turn asked
        else:
            if self.session.pipeline is not None and self.session.pipeline.arbiter.waiting >= MAX_QUEUED:
                return web.json_response({"error": "too many requests waiting; try again shortly"}, status=429, headers={"Retry-After": "2"})
            self._turn_request = Request(text=text, channel=channel, origin="api")
            assert self.session.pipeline is not None
            self._turn = asyncio.create_task(self.session.pipeline.arbiter.submit(self._turn_request))
        turn_task, req = self._turn, self._turn_request
        asked = asyncio.create_task(channel.asked.wait())
        try:
            await asyncio.wait({turn_task, asked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            asked.cancel()
        if not turn_task.done():
            return web.json_response({"reply": channel.question, "awaiting_answer": True, "turn": req.turn if req else None})
        try:
            reply = turn_task.result()
        except Busy as exc:
            return web.json_response({"error": exc.message}, status=429, headers={"Retry-After": "2"})
        except AssistantError as exc:
            return web.json_response({"error": exc.message, "hint": exc.hint}, status=500)
        turn = req.turn if req else None
        new = [d for d in self.recent if d.get("turn") == turn] if turn is not None else []
        route = next((d["route"] for d in reversed(new) if d["type"] == event_type(RouteDecided)), None)
        calls = [{"tool": d["tool"], "ok": d["ok"], "result": d["result"], "error": d["error"]} for d in new if d["type"] == event_type(ToolCallFinished)]
        return web.json_response({"reply": reply, "route": route, "tool_calls": calls, "turn": turn})

    def _api_channel(self) -> ApiChannel:
        if self._channel is None:
            assert self.session.pipeline is not None
            self._channel = ApiChannel(Speaker(None, None, self.session.bus, self.session.config.tts))
        return self._channel

    async def listen(self, request: web.Request) -> web.Response:
        """Push-to-talk: the next utterance on the microphone is a request, without the wake word."""
        if self.session.push_to_talk():
            return web.json_response({"listening": True})
        return web.json_response({"listening": False, "error": "this service has no microphone listening right now"}, status=409)

    async def interrupt(self, request: web.Request) -> web.Response:
        stopped = await self.session.pipeline.interrupt("api") if self.session.pipeline is not None else False
        return web.json_response({"interrupted": stopped})

    async def home(self, request: web.Request) -> web.Response:
        rows = await self.session.home_rows()
        if rows is None:
            return web.json_response({"error": "no home is configured", "hint": "see docs/home.md"}, status=404)
        return web.json_response({"entities": rows})

    async def tools(self, request: web.Request) -> web.Response:
        return web.json_response({"tools": await self.session.tools()})

    async def timers(self, request: web.Request) -> web.Response:
        return web.json_response({"timers": await self.session.timers()})

    async def mute(self, request: web.Request) -> web.Response:
        self.session.set_muted(True)
        log.info("microphone muted through the API")
        return web.json_response({"muted": True})

    async def unmute(self, request: web.Request) -> web.Response:
        self.session.set_muted(False)
        log.info("microphone unmuted through the API")
        return web.json_response({"muted": False})

    async def metrics_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), content_type="text/plain", charset="utf-8")
