"""``assistant serve``: the assistant as a long-running service.

* Logs are JSON lines on stderr (journald keeps them), one per log record, plus one per turn.
* SIGTERM/SIGINT: stop listening, finish nothing new, close the tools (timers and notes are in
  SQLite), exit 0. SIGHUP: re-read the config file; a bad file is logged and the running
  configuration kept; a good one restarts the assistant with it.
* The conversation is saved after every turn and restored at start (within
  :data:`CONVERSATION_TTL_S`), timers and notes persist on their own, so a restart loses nothing.
* A microphone that disappears is reopened with backoff; while it is gone the API and Wyoming
  servers keep serving.
* The voice loop is supervised: any other error in it is logged and the loop restarted with
  backoff; meanwhile ``/health`` says ``degraded`` and why.
* A reload whose configuration cannot start (a model missing, a device gone) is logged and the
  previous configuration started again: a SIGHUP never ends the service.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from ..audio.io import PacedSink
from ..bus import EventBus
from ..config import Config, load_config
from ..errors import AssistantError, AudioDeviceError, ModelError
from ..events import Event, FinalTranscript, Reply, RouteDecided, TurnFinished
from ..session import Session, SessionOptions
from .api import ApiServer
from .metrics import Metrics

__all__ = ["CONVERSATION_TTL_S", "JsonFormatter", "Service", "setup_json_logging"]

MIC_RETRY_MAX_S = 10.0
"""Longest wait between looks for a microphone: one plugged in is in use within this long. Each
look re-reads PortAudio's device list (only while no reply is playing)."""

log = logging.getLogger("assistant.service")

CONVERSATION_TTL_S = 15 * 60
"""A saved conversation older than this is not restored (the context has gone stale)."""

_STD = set(logging.LogRecord("x", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        for k, v in record.__dict__.items():
            if k not in _STD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def setup_json_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("faster_whisper", "aiohttp.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class TurnLogger:
    """One log line per finished turn: what was heard, the route, the reply, and the timings
    (from the session's :class:`~assistant.engine.timing.TurnTimings`)."""

    def __init__(self) -> None:
        self.turns: dict[int | None, dict[str, Any]] = {}

    def __call__(self, e: Event) -> None:
        if e.turn is None:
            return
        t = self.turns.setdefault(e.turn, {})
        if isinstance(e, FinalTranscript):
            t["heard"] = e.text
        elif isinstance(e, RouteDecided):
            t["route"], t["reason"] = e.route, e.reason
        elif isinstance(e, Reply):
            t["reply"] = e.text

    def turn_finished(self, turn: int | None, ok: bool, timings: dict[str, float]) -> None:
        info = self.turns.pop(turn, {})
        log.info("turn", extra={"turn": turn, "ok": ok, **info, "timings_ms": {k: round(v, 1) for k, v in timings.items()}})


class Service:
    """The daemon.

    Args:
        config: Initial configuration.
        config_path: The file SIGHUP re-reads (None: SIGHUP only restarts with the same config).
        options: Audio in/out (a recording as the microphone for tests and demos).
        wyoming: Serve the Wyoming protocol too.
        mcp: Serve MCP over Streamable HTTP too (``mcp.serve_port``).
    """

    def __init__(self, config: Config, config_path: Path | None, options: SessionOptions, *, wyoming: bool = False, mcp: bool = False) -> None:
        self.config = config
        self.config_path = config_path
        self.options = options
        self.wyoming = wyoming
        self.mcp = mcp
        self.mcp_server: Any | None = None
        self.stop_requested = asyncio.Event()
        self.reload_requested = asyncio.Event()
        self.started_at = time.time()
        self.voice_restarts = 0
        """Times the supervised voice loop failed and was restarted."""
        self.session: Session | None = None
        self.api: ApiServer | None = None

    def _conversation_file(self) -> Path:
        return self.config.paths.resolved_data_dir() / "conversation.json"

    def _save_conversation(self, e: Event) -> None:
        if not isinstance(e, TurnFinished) or self.session is None or self.session.controller is None:
            return
        conv = self.session.controller.router.conversation
        path = self._conversation_file()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"saved_at": time.time(), **conv.to_dict()}), encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            log.error("cannot save the conversation", extra={"path": str(path), "error": str(exc)})

    def _restore_conversation(self) -> None:
        path = self._conversation_file()
        if self.session is None or self.session.controller is None or not path.exists():
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("saved conversation unreadable; starting fresh", extra={"error": str(exc)})
            return
        if time.time() - float(data.get("saved_at", 0)) > CONVERSATION_TTL_S:
            return
        self.session.controller.router.conversation.load_dict(data)
        log.info("conversation restored", extra={"exchanges": len(self.session.controller.router.conversation.recent)})

    async def _voice_loop(self, session: Session) -> None:
        """Listen; reopen the microphone with backoff when it fails or disappears."""
        delay = 1.0
        while not self.stop_requested.is_set():
            if session.source is None:
                if not session.options.voice or session.speech is None or session.speech.listener is None:
                    return  # typed requests only (voice off, or its models did not load: /health says so)
                try:
                    await session.reopen_microphone()
                    log.info("microphone available", extra={"device": session.source.device.name})
                    session.problems.pop("voice", None)
                    session.problems.pop("microphone", None)
                except AssistantError as exc:
                    log.warning("waiting for a microphone", extra={"error": exc.message, "retry_in_s": delay})
                    session.problems["voice"] = f"no microphone: {exc.message}; retrying in {delay:.0f} s"
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MIC_RETRY_MAX_S)
                    continue
            try:
                await session.run_voice()
                if session.options.input_file is not None:
                    log.info("input recording finished; still serving the API")
                    return
                delay = 1.0
            except AudioDeviceError as exc:
                log.error("microphone problem; retrying", extra={"error": exc.message, "retry_in_s": delay})
                session.problems["voice"] = f"microphone problem: {exc.message}; retrying in {delay:.0f} s"
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                session.source = None  # reopened at the top of the loop
                session.problems.pop("voice", None)
            except Exception as exc:  # noqa: BLE001 - a bug must not leave the service deaf while /health says ok
                self.voice_restarts += 1
                log.exception("the voice loop failed; restarting it", extra={"error": repr(exc), "retry_in_s": delay, "restarts": self.voice_restarts})
                session.problems["voice"] = f"the voice loop failed ({exc!r}); restarting in {delay:.0f} s"
                if session.options.input_file is not None:
                    return  # a recording is not replayed
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
                session.source = None  # reopened at the top of the loop
                session.problems.pop("voice", None)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self.reload_requested.set)
        code = 0
        previous: Config | None = None  # the configuration to fall back to when a reload cannot start
        known_problems: dict[str, str] = {}  # what the running configuration already lacked
        while True:
            bus = EventBus()
            metrics = Metrics()
            turn_log = TurnLogger()
            bus.subscribe(metrics)
            bus.subscribe(turn_log)
            options = self.options
            session = Session(self.config, options, bus=bus)
            session.timings.on_finished(metrics.turn_finished)
            session.timings.on_finished(turn_log.turn_finished)
            self.session = session
            self.api = None
            wy = None
            try:
                await session.start()
                lost = sorted(set(session.problems) - set(known_problems) - {"microphone", "speaker", "voice"})
                if previous is not None and lost:  # it starts, but without something the running configuration had
                    raise ModelError("it cannot load " + "; ".join(f"{k}: {session.problems[k]}" for k in lost))
                if options.output_file is not None and session.sink is not None and options.realtime:
                    session.sink = PacedSink(session.sink)  # a file that plays like a speaker
                    session.pipeline.set_sink(session.sink)
                self._restore_conversation()
                bus.subscribe(self._save_conversation)
                self.api = ApiServer(session, self.config, metrics, started_at=self.started_at)
                await self.api.start()
                if self.wyoming:
                    from .wyoming_server import WyomingService  # noqa: PLC0415

                    wy = WyomingService(session, self.config)
                    await wy.start()
                if self.mcp:
                    from ..mcp.server import McpHttpService  # noqa: PLC0415

                    self.mcp_server = McpHttpService(session, self.config)
                    await self.mcp_server.start()
            except AssistantError as exc:  # close what did start, in reverse order
                if self.mcp_server is not None:
                    await self.mcp_server.close()
                    self.mcp_server = None
                if wy is not None:
                    await wy.close()
                if self.api is not None:
                    await self.api.close()
                await session.close()
                if previous is not None:
                    log.error("the reloaded configuration cannot start; starting the previous one again",
                              extra={"error": exc.message, "hint": exc.hint})
                    self.config, previous = previous, None
                    continue
                log.error("cannot start", extra={"error": exc.message, "hint": exc.hint})
                return exc.exit_code
            previous = None
            known_problems = dict(session.problems)
            log.info("ready", extra={"load_s": round(session.load_s, 2), "api": f"http://{self.api.host}:{self.api.port}",
                                     "wyoming": wy.uri if wy else None, "mcp": self.mcp_server.url if self.mcp_server else None, "input": str(options.input_file or "microphone")})
            voice = asyncio.create_task(self._voice_loop(session))
            new_config: Config | None = None
            while new_config is None and not self.stop_requested.is_set():
                stop = asyncio.create_task(self.stop_requested.wait())
                reload = asyncio.create_task(self.reload_requested.wait())
                await asyncio.wait({stop, reload}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                reload.cancel()
                if self.reload_requested.is_set() and not self.stop_requested.is_set():
                    self.reload_requested.clear()
                    new_config = self._reload()  # None: the file is bad, keep running as we are
            voice.cancel()
            await asyncio.gather(voice, return_exceptions=True)
            if wy is not None:
                await wy.close()
            if self.mcp_server is not None:
                await self.mcp_server.close()
                self.mcp_server = None
            await self.api.close()
            await session.close()
            if self.stop_requested.is_set():
                log.info("stopped")
                return code
            previous, self.config = self.config, new_config
            log.info("restarting with the reloaded configuration")

    def _request_stop(self, sig: signal.Signals) -> None:
        log.info("stopping", extra={"signal": sig.name})
        self.stop_requested.set()

    def _reload(self) -> Config | None:
        if self.config_path is None:
            log.info("SIGHUP: no config file to re-read; restarting with the same configuration")
            return self.config
        try:
            cfg = load_config(self.config_path)
        except AssistantError as exc:
            log.error("SIGHUP: the config file is invalid; keeping the running configuration", extra={"error": exc.message})
            return None
        log.info("SIGHUP: configuration reloaded", extra={"path": str(self.config_path)})
        return cfg
