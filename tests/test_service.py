"""The headless service, started for real in a subprocess with a recording as its microphone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from assistant.audio import SAMPLE_RATE, read_audio, resample, write_wav
from assistant.config import Config, save_config
from assistant.speech.asr import normalize_transcript

from .conftest import AUDIO, recording
from .servers import free_port


class Service:
    """`assistant serve` in a subprocess."""

    def __init__(self, config: Config, tmp: Path, audio: np.ndarray | None, *, wyoming: bool = False, env: dict | None = None, name: str = "svc",
                 extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.wyoming_port = free_port()
        self.cfg_path = tmp / f"{name}.toml"
        save_config(config.with_overrides({"service.port": self.port, "service.wyoming_port": self.wyoming_port}), self.cfg_path)
        self.log = tmp / f"{name}.log"
        args = [sys.executable, "-m", "assistant", "--config", str(self.cfg_path), "serve", "--no-pull", "--output", str(tmp / f"{name}.wav")]
        if audio is not None:
            rec = tmp / f"{name}-input.wav"
            write_wav(rec, audio, SAMPLE_RATE)
            args += ["--input", str(rec)]
        if wyoming:
            args.append("--wyoming")
        args += list(extra)
        self.env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(self.log, "w"), env=self.env)
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = config.paths.resolved_data_dir()

    @property
    def headers(self) -> dict[str, str]:
        """What the assistant's own clients send: the token (from the environment or <data dir>/api-token)."""
        token = self.env.get("ASSISTANT_API_TOKEN") or (self.data_dir / "api-token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.url + path, headers=self.headers, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        if "json" not in kw:
            kw["json"] = {}
        return httpx.post(self.url + path, headers=self.headers, **kw)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("service did not become ready:\n" + self.log.read_text()[-3000:])

    def events(self, headers: dict | None = None) -> list[dict]:
        return httpx.get(self.url + "/events?last=500", headers=headers or self.headers, timeout=10).json()

    def logs(self) -> list[dict]:
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return -9
        return self.proc.returncode


def _until(cond, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def _read_until(client, *types: str) -> list:
    """Wyoming events from ``client`` up to and including the first of one of ``types``."""
    got = []
    while True:
        event = await asyncio.wait_for(client.read_event(), 60)
        got.append(event)
        if event.type in types:
            return got


def _synth(tts, text: str) -> np.ndarray:
    audio, _ = tts.synthesize_all(text)
    return resample(audio, tts.sample_rate, SAMPLE_RATE)


@pytest.fixture
def svc_config(config) -> Config:
    return config.with_overrides({"llm.enabled": False, "tts.earcon": False})


def test_a_turn_completes_and_barge_in_stops_a_long_reply(svc_config, tmp_path, tts):
    # a long shopping list makes a long spoken reply
    env = {**os.environ}
    for i in range(20):
        subprocess.run([sys.executable, "-m", "assistant", "--config", str(_cfg(svc_config, tmp_path)), "tools", "call", "list_add",
                        "--arg", f'item="item number {i}"'], check=True, capture_output=True, env=env)
    ask_list = _synth(tts, "What's on my shopping list?")
    ask_time = _synth(tts, "What time is it?")
    audio = recording(0.5, "hey_jarvis.wav", 0.3, "wfw_turn_on_the_living_room_lamp.wav", 3.0,
                      "hey_jarvis.wav", 1.0, ask_list, 4.0, "hey_jarvis.wav", 0.3, ask_time, 4.0)
    svc = Service(svc_config, tmp_path, audio)
    try:
        svc.wait_ready()
        _until(lambda: sum(e["type"] == "turn_finished" for e in svc.events()) >= 3, 120, "three turns")
        events = svc.events()
        finals = [normalize_transcript(e["text"]) for e in events if e["type"] == "final_transcript" and e["text"]]
        assert finals[0] == "turn on the living room lamp"
        replies = [e["text"] for e in events if e["type"] == "reply"]
        assert replies[0] == "Turned on the living room lamp."
        interrupts = [e for e in events if e["type"] == "interrupt"]
        assert [e["reason"] for e in interrupts] == ["barge_in"]
        assert "what time is it" in finals
        # the lamp really is on, asked through the API
        r = svc.post("/ask", json={"text": "is the living room lamp on"}, timeout=60).json()
        assert r["reply"] == "Yes, Living Room Lamp is on." and r["route"] == "fast_path"
        assert any(l.get("msg") == "turn" and l.get("route") == "fast_path" for l in svc.logs())  # JSON logs, one per turn
    finally:
        assert svc.stop() == 0


def _cfg(config: Config, tmp: Path) -> Path:
    p = tmp / "tools.toml"
    save_config(config, p)
    return p


def test_api_metrics_auth_and_bursts(svc_config, tmp_path):
    svc = Service(svc_config, tmp_path, None)
    try:
        svc.wait_ready()
        h = svc.get("/health").json()
        assert h["status"] == "degraded" and set(h["problems"]) & {"microphone", "voice"}, h  # this machine has no sound card
        st = svc.get("/status").json()
        assert st["models"]["asr"] == "whisper-tiny.en" and st["turns"] == 0
        assert st["loading"] == []  # the LLM is off: nothing loads in the background
        r = svc.post("/ask", json={"text": "set the desk lamp to 30 percent"}, timeout=60).json()
        assert r["reply"] == "Set the desk lamp to 30 percent." and r["tool_calls"][0]["tool"] == "home_set_light"
        assert svc.post("/ask", json={"nope": 1}).status_code == 400
        assert svc.post("/mute").json() == {"muted": True}
        assert svc.get("/status").json()["muted"] is True
        svc.post("/unmute")
        metrics = svc.get("/metrics").text
        assert 'jarvis_turns_total{route="fast_path"} 1.0' in metrics
        assert 'jarvis_tool_calls_total{ok="true",tool="home_set_light"} 1.0' in metrics
        assert "jarvis_stage_latency_seconds_bucket" in metrics

        # a burst: some are queued and answered, the rest refused politely; nothing breaks
        async def burst() -> list[int]:
            async with httpx.AsyncClient(timeout=120, headers=svc.headers) as c:
                rs = await asyncio.gather(*(c.post(svc.url + "/ask", json={"text": "what time is it"}) for _ in range(25)))
            return [r.status_code for r in rs]

        codes = asyncio.run(burst())
        assert set(codes) <= {200, 429} and codes.count(200) >= 1 and codes.count(429) >= 1
        assert svc.get("/health").status_code == 200

        # events as Server-Sent Events
        with httpx.stream("GET", svc.url + "/events/stream", headers=svc.headers, timeout=30) as s:
            svc.post("/ask", json={"text": "what day is it"}, timeout=60)
            seen = []
            for line in s.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:])["type"])
                if "reply" in seen:
                    break
        assert "route_decided" in seen and "reply" in seen
    finally:
        assert svc.stop() == 0


def test_the_api_needs_a_token_its_own_host_and_no_web_page(svc_config, tmp_path):
    """Loopback is not a boundary: any web page can send requests to 127.0.0.1 (and a DNS-rebinding
    page can read the answers). A token is needed everywhere, foreign Host and Origin headers are
    refused, and a POST must be JSON (so a browser cannot send one without a CORS preflight)."""
    svc = Service(svc_config, tmp_path, None, env={"ASSISTANT_API_TOKEN": ""}, name="generated")
    try:
        svc.wait_ready()
        token_file = svc.data_dir / "api-token"
        assert token_file.exists() and (token_file.stat().st_mode & 0o777) == 0o600  # readable by the user only
        url = svc.url
        assert httpx.get(url + "/status").status_code == 401
        assert httpx.get(url + "/events").status_code == 401
        assert httpx.post(url + "/unmute", json={}).status_code == 401
        assert httpx.get(url + "/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(url + "/status", headers={"Authorization": "Bearer jarvé-ünïcode".encode("utf-8")}).status_code == 401  # not a 500
        assert httpx.get(url + "/status", headers={"Authorization": b"Bearer \xff\xfe"}).status_code == 401
        assert svc.get("/status").status_code == 200
        # DNS rebinding: the page's own name in Host
        assert httpx.get(url + "/events", headers={**svc.headers, "Host": "evil.example:8765"}).status_code == 421
        # a web page's request carries its Origin
        page = {**svc.headers, "Origin": "http://evil.example"}
        assert httpx.post(url + "/ask", json={"text": "unlock the front door"}, headers=page).status_code == 403
        # a "simple" cross-site POST (text/plain or a form) is refused even with the token
        r = httpx.post(url + "/ask", content='{"text": "unlock the front door"}', headers={**svc.headers, "Content-Type": "text/plain"})
        assert r.status_code == 415
        r = httpx.post(url + "/mute", data={"x": "1"}, headers=svc.headers)
        assert r.status_code == 415
        # oversized input is refused, not read into memory
        assert svc.post("/ask", json={"text": "x" * 5000}).status_code == 413
        assert httpx.get(url + "/health").status_code == 200  # health needs no token and says nothing private
        assert set(httpx.get(url + "/health").json()) <= {"status", "state", "uptime_s", "problems"}
    finally:
        assert svc.stop() == 0
    cfg = svc_config.with_overrides({"service.host": "0.0.0.0"})
    svc = Service(cfg, tmp_path, None, env={"ASSISTANT_API_TOKEN": "s3cret-token"}, name="closed")
    try:
        svc.wait_ready()
        assert httpx.get(svc.url + "/status").status_code == 401
        assert httpx.get(svc.url + "/status", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    finally:
        assert svc.stop() == 0


def test_wyoming_clients_get_transcripts_audio_and_answers(svc_config, tmp_path):
    from wyoming.asr import Transcribe, Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.handle import Handled
    from wyoming.info import Describe, Info
    from wyoming.pipeline import PipelineStage, RunPipeline
    from wyoming.tts import Synthesize
    from wyoming.wake import Detect, Detection

    svc = Service(svc_config, tmp_path, None, wyoming=True)
    lamp = read_audio(AUDIO / "wfw_turn_on_the_living_room_lamp.wav")
    jarvis = read_audio(AUDIO / "hey_jarvis.wav")

    async def send_audio(client, audio: np.ndarray) -> None:
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for i in range(0, len(audio), 1024):
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=audio[i : i + 1024].tobytes()).event())
        await client.write_event(AudioStop().event())

    async def session() -> None:
        async with AsyncTcpClient("127.0.0.1", svc.wyoming_port) as c:
            await c.write_event(Describe().event())
            info = Info.from_event((await _read_until(c, "info"))[-1])
            assert info.asr[0].models[0].name == "whisper-tiny.en"
            assert info.wake[0].models[0].name == "hey_jarvis_v0.1" and info.tts and info.handle
        async with AsyncTcpClient("127.0.0.1", svc.wyoming_port) as c:  # ASR, as wyoming-faster-whisper
            await c.write_event(Transcribe(language="en").event())
            await send_audio(c, np.concatenate([lamp, np.zeros(8000, np.int16)]))
            t = Transcript.from_event((await _read_until(c, "transcript"))[-1])
            assert normalize_transcript(t.text) == "turn on the living room lamp"
        async with AsyncTcpClient("127.0.0.1", svc.wyoming_port) as c:  # TTS, as wyoming-piper
            await c.write_event(Synthesize(text="Hello from the kitchen. The oven is ready.").event())
            events = await _read_until(c, "audio-stop")
            start = AudioStart.from_event(next(e for e in events if e.type == "audio-start"))
            pcm = b"".join(AudioChunk.from_event(e).audio for e in events if e.type == "audio-chunk")
            seconds = len(pcm) / 2 / start.rate
            assert start.rate == 22050 and 1.5 < seconds < 6
        async with AsyncTcpClient("127.0.0.1", svc.wyoming_port) as c:  # wake word, as wyoming-openwakeword
            await c.write_event(Detect(names=["hey_jarvis_v0.1"]).event())
            await send_audio(c, np.concatenate([np.zeros(8000, np.int16), jarvis, np.zeros(8000, np.int16)]))
            d = Detection.from_event((await _read_until(c, "detection", "not-detected"))[-1])
            assert d.name == "hey_jarvis_v0.1"
        async with AsyncTcpClient("127.0.0.1", svc.wyoming_port) as c:  # a satellite using this box as its brain
            await c.write_event(RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS).event())
            await send_audio(c, np.concatenate([np.zeros(4000, np.int16), lamp, np.zeros(16000, np.int16)]))
            events = await _read_until(c, "handled")
            types = [e.type for e in events]
            # the reply streams as it is spoken: transcript, then audio, then the whole reply's text
            assert types.index("voice-started") < types.index("voice-stopped") < types.index("transcript") < types.index("audio-start")
            assert types.index("audio-start") < types.index("audio-stop") < types.index("handled")
            assert Handled.from_event(events[-1]).text == "Turned on the living room lamp."
        async with AsyncTcpClient("127.0.0.1", svc.wyoming_port) as c:  # a satellite that listens for the wake word too
            await c.write_event(RunPipeline(start_stage=PipelineStage.WAKE, end_stage=PipelineStage.ASR).event())
            await send_audio(c, np.concatenate([np.zeros(8000, np.int16), jarvis, np.zeros(6000, np.int16), lamp, np.zeros(16000, np.int16)]))
            events = await _read_until(c, "transcript")
            assert [e.type for e in events if e.type in ("detection", "transcript")] == ["detection", "transcript"]
            assert normalize_transcript(Transcript.from_event(events[-1]).text) == "turn on the living room lamp"

    try:
        svc.wait_ready()
        asyncio.run(session())
        r = svc.post("/ask", json={"text": "is the living room lamp on"}, timeout=60).json()
        assert r["reply"].startswith("Yes")
    finally:
        assert svc.stop() == 0


def test_a_satellites_risky_request_is_confirmed_on_the_satellite(svc_config, tmp_path, tts):
    """Over Wyoming, "unlock the front door" is asked back on the satellite (as audio on its
    connection), the satellite's microphone answers "no", and nothing changes; the satellite's
    room is its own ("turn on the light" there means the light in that room)."""
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.handle import Handled
    from wyoming.pipeline import PipelineStage, RunPipeline

    cfg = svc_config.with_overrides({"service.satellite_areas": {"127.0.0.1": "Kitchen"}})
    svc = Service(cfg, tmp_path, None, wyoming=True)
    request = _synth(tts, "Please unlock the front door.")
    no = _synth(tts, "No, don't.")
    light = _synth(tts, "Turn on the lights, please.")

    async def stream(client, audio: np.ndarray, *, stop: bool) -> None:
        """A satellite's microphone: audio in 20 ms chunks, at speaking pace."""
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for i in range(0, len(audio), 320):
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=audio[i : i + 320].tobytes()).event())
            if i % 3200 == 0:
                await asyncio.sleep(0.05)
        if stop:
            await client.write_event(AudioStop().event())

    async def satellite() -> None:
        async with AsyncTcpClient("127.0.0.1", svc.wyoming_port) as c:
            await c.write_event(RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS).event())
            await stream(c, np.concatenate([np.zeros(4000, np.int16), request, np.zeros(16000, np.int16)]), stop=False)
            question = await _read_until(c, "audio-stop")  # the question, spoken on the satellite
            assert "transcript" in [e.type for e in question] and "handled" not in [e.type for e in question]
            assert sum(len(AudioChunk.from_event(e).audio) for e in question if e.type == "audio-chunk") > 22050  # > 0.5 s of speech
            await stream(c, np.concatenate([np.zeros(4000, np.int16), no, np.zeros(16000, np.int16)]), stop=True)
            answer = await _read_until(c, "handled")
            assert "won't" in Handled.from_event(answer[-1]).text
        async with AsyncTcpClient("127.0.0.1", svc.wyoming_port) as c:
            await c.write_event(RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.HANDLE).event())
            await stream(c, np.concatenate([np.zeros(4000, np.int16), light, np.zeros(16000, np.int16)]), stop=True)
            handled = await _read_until(c, "handled")
            assert Handled.from_event(handled[-1]).text == "Turned on the lights in the kitchen."
            assert "audio-start" not in [e.type for e in handled]  # ends at handle: text only

    try:
        svc.wait_ready()
        asyncio.run(satellite())
        events = svc.events()
        asked = [e for e in events if e["type"] == "confirmation_requested"]
        assert [a["prompt"] for a in asked] == ["Do you want me to unlock the Front Door?"]
        assert not any(e["type"] == "tool_call_finished" and e["tool"] == "lock" and e["ok"] for e in events)
        r = svc.post("/ask", json={"text": "is the front door locked"}, timeout=60).json()
        assert r["reply"].startswith("Yes"), r
        # the device's own speaker said nothing: every word went to the satellite
        assert not (tmp_path / "svc.wav").exists() or sf_frames(tmp_path / "svc.wav") == 0
    finally:
        assert svc.stop() == 0


def sf_frames(path: Path) -> int:
    import soundfile as sf

    return sf.info(str(path)).frames


async def test_the_tui_attached_to_a_running_service_shows_its_turns(svc_config, tmp_path):
    """`assistant tui --connect`: a turn someone makes through the API shows in the TUI (request,
    tool call, reply, the home panel), and a request typed in the TUI runs in the service, its
    confirmation asked in the TUI's dialog."""
    from assistant.service.client import RemoteSession
    from tui.app import JarvisApp
    from tui.widgets import ConfirmDialog, ConversationLog

    svc = Service(svc_config, tmp_path, None)

    def lines(app) -> list[str]:
        return [strip.text for strip in app.query_one(ConversationLog).lines]

    async def until(pilot, cond, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, "timed out waiting for the TUI"
            await pilot.pause(0.1)

    try:
        await asyncio.to_thread(svc.wait_ready)
        app = JarvisApp(svc_config, session=RemoteSession(svc.url, svc_config))
        async with app.run_test(size=(120, 36)) as pilot:
            await asyncio.wait_for(app.ready.wait(), 30)
            assert app.start_error is None
            home = app.query_one("#home")
            await until(pilot, lambda: home.row_count > 5)
            async with httpx.AsyncClient(headers=svc.headers, timeout=60) as c:  # someone else, through the API
                r = (await c.post(svc.url + "/ask", json={"text": "turn on the living room lamp"})).json()
            assert r["reply"] == "Turned on the living room lamp."
            await until(pilot, lambda: any(l.startswith("jarvis") and "Turned on the living room lamp." in l for l in lines(app)))
            assert any(l.startswith("you") and "turn on the living room lamp" in l for l in lines(app))
            assert any("home_turn_on(name='Living Room Lamp')" in l for l in lines(app))

            def lamp() -> str:
                return next(home.get_row_at(i)[3] for i in range(home.row_count) if home.get_row_at(i)[1] == "Living Room Lamp")

            await until(pilot, lambda: lamp() != "off")
            await pilot.click("#request")
            await pilot.press(*"unlock the front door", "enter")
            await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            assert app.screen.question == "Do you want me to unlock the Front Door?"
            await pilot.press("n")
            await until(pilot, lambda: any(l.startswith("jarvis") and "won't" in l for l in lines(app)))
        r = svc.post("/ask", json={"text": "is the front door locked"}, timeout=60).json()
        assert r["reply"].startswith("Yes"), r
    finally:
        assert svc.stop() == 0


def test_sigterm_mid_turn_and_restart_keeps_timer_and_conversation(svc_config, tmp_path):
    svc = Service(svc_config, tmp_path, None)
    svc.wait_ready()
    r = svc.post("/ask", json={"text": "set a timer for 10 minutes"}, timeout=60).json()
    assert r["reply"] == "Timer set for 10 minutes."

    async def mid_turn() -> None:
        async with httpx.AsyncClient(timeout=60, headers=svc.headers) as c:
            task = asyncio.create_task(c.post(svc.url + "/ask", json={"text": "turn on the lights in the kitchen"}))
            await asyncio.sleep(0.05)
            svc.proc.send_signal(signal.SIGTERM)
            try:
                await task
            except httpx.HTTPError:
                pass

    asyncio.run(mid_turn())
    assert svc.proc.wait(30) == 0
    assert any(l.get("msg") == "stopped" for l in svc.logs())

    again = Service(svc_config, tmp_path, None, name="again")
    try:
        again.wait_ready()
        r = again.post("/ask", json={"text": "how much time is left on my timer"}, timeout=60).json()
        assert "10 minutes" in r["reply"] or "9 minutes" in r["reply"], r
        assert any(l.get("msg") == "conversation restored" for l in again.logs())
    finally:
        assert again.stop() == 0


def test_sighup_reloads_the_config_and_survives_a_bad_one(svc_config, tmp_path):
    svc = Service(svc_config, tmp_path, None)
    try:
        svc.wait_ready()
        good = svc_config.with_overrides({"service.port": svc.port, "service.wyoming_port": svc.wyoming_port, "wake.threshold": 0.61})
        save_config(good, svc.cfg_path)
        svc.proc.send_signal(signal.SIGHUP)
        _until(lambda: sum(l.get("msg") == "ready" for l in svc.logs()) >= 2, 120, "restart after SIGHUP")
        assert any(l.get("msg") == "SIGHUP: configuration reloaded" for l in svc.logs())
        svc.cfg_path.write_text("[wake]\nthreshold = 7\n")
        svc.proc.send_signal(signal.SIGHUP)
        _until(lambda: any("invalid" in l.get("msg", "") for l in svc.logs()), 30, "bad config logged")
        svc.wait_ready(30)
        assert svc.post("/ask", json={"text": "what time is it"}, timeout=60).status_code == 200
        # a valid file naming a model that is not installed: the service goes on with the previous configuration
        save_config(good.with_overrides({"asr.model": "whisper-small.en"}), svc.cfg_path)
        svc.proc.send_signal(signal.SIGHUP)
        _until(lambda: any("cannot start; starting the previous one" in l.get("msg", "") for l in svc.logs()), 120, "failed reload logged")
        _until(lambda: sum(l.get("msg") == "ready" for l in svc.logs()) >= 3, 120, "running again")
        assert svc.proc.poll() is None
        assert svc.post("/ask", json={"text": "what time is it"}, timeout=60).status_code == 200
    finally:
        assert svc.stop() == 0


def test_systemd_unit(tmp_path):
    out = tmp_path / "jarvis.service"
    r = subprocess.run([sys.executable, "-m", "assistant", "service", "install", "--path", str(out), "--user", "jarvis",
                        "--data-dir", "/var/lib/jarvis-assistant"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    for line in ("User=jarvis", "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ReadWritePaths=/var/lib/jarvis-assistant", "SupplementaryGroups=audio", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in text
    assert " serve" in text.split("ExecStart=")[1].splitlines()[0]


class _BrokenDriverSource:
    """A microphone whose driver fails with an unexpected error after a second of audio (the I/O boundary)."""

    realtime = True

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.opened = 0
        self.device = SimpleNamespace(name="USB microphone with a broken driver")

    async def frames(self):
        self.opened += 1
        for _ in range(50):
            await asyncio.sleep(0.001)
            yield np.zeros(320, np.int16)
        raise RuntimeError("driver returned a buffer of the wrong size")

    async def close(self) -> None:
        pass


def test_a_failing_voice_loop_is_restarted_and_health_says_degraded(config, tmp_path, monkeypatch):
    import assistant.session as session_mod
    from assistant.service import daemon as daemon_mod
    from assistant.service.daemon import Service as Daemon
    from assistant.session import Session, SessionOptions

    sources = [_BrokenDriverSource(), _BrokenDriverSource()]
    monkeypatch.setattr(session_mod, "MicrophoneSource", lambda device: sources.pop(0))  # the next microphone opened
    opts = SessionOptions(speak=False, tolerate_missing_devices=True)
    svc = Daemon(config.with_overrides({"llm.enabled": False}), None, opts)

    async def go():
        session = Session(svc.config, opts)
        await session.start()
        session.source = _BrokenDriverSource()
        api = daemon_mod.ApiServer(session, svc.config, daemon_mod.Metrics(), started_at=time.time())
        task = asyncio.create_task(svc._voice_loop(session))
        try:
            for _ in range(100):
                await asyncio.sleep(0.05)
                if "voice" in session.problems:
                    break
            health = json.loads((await api.health(None)).text)
            assert health["status"] == "degraded" and "wrong size" in health["problems"]["voice"]
            assert not task.done()  # still supervised, not dead
            for _ in range(100):
                await asyncio.sleep(0.05)
                if svc.voice_restarts >= 2:
                    break
            assert svc.voice_restarts >= 2 and len(sources) <= 1  # restarted, with a freshly opened microphone
            assert (await session.ask("what time is it")).startswith("It is")  # the rest keeps working
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await session.close()

    asyncio.run(go())


def test_corrupt_models_start_a_degraded_service_that_says_what_is_missing(config, tmp_path):
    """A corrupt voice and a corrupt LLM: the service starts anyway, answers by text through the
    templates, and /health says what is missing and why."""
    bad_voice = tmp_path / "voice.onnx"
    bad_voice.write_bytes(b"not a voice")
    (tmp_path / "voice.onnx.json").write_text("{}")
    bad_llm = tmp_path / "model.gguf"
    bad_llm.write_bytes(b"GGUF but not really")
    cfg = config.with_overrides({"tts.voice": str(bad_voice), "llm.enabled": True, "llm.model": str(bad_llm)})
    svc = Service(cfg, tmp_path, None)
    try:
        svc.wait_ready()
        health = httpx.get(svc.url + "/health", timeout=5).json()
        assert health["status"] == "degraded"
        assert {"tts", "llm"} <= set(health["problems"]), health
        assert svc.get("/status").json()["loading"] == []  # a load that failed is not "still loading"
        r = svc.post("/ask", json={"text": "what time is it"}, timeout=60)
        assert r.status_code == 200 and r.json()["reply"].startswith("It is")
    finally:
        assert svc.stop() == 0


def test_without_a_wake_model_the_service_listens_by_push_to_talk(config, tmp_path):
    """A corrupt wake model: the service starts degraded, says push-to-talk only, and POST /listen
    makes the next utterance a request (no wake word in the recording)."""
    bad = tmp_path / "broken_wake.onnx"
    bad.write_bytes(b"not an onnx model")
    cfg = config.with_overrides({"wake.models": [str(bad)], "llm.enabled": False})
    svc = Service(cfg, tmp_path, recording(2.5, "wfw_turn_on_the_living_room_lamp.wav", 3.0))  # speech soon after the press
    try:
        svc.wait_ready()
        health = httpx.get(svc.url + "/health", timeout=5).json()
        assert health["status"] == "degraded" and "push-to-talk only" in health["problems"]["wake"], health
        r = svc.post("/listen", timeout=10)
        assert r.status_code == 200 and r.json() == {"listening": True}
        calls = _until(lambda: [e for e in svc.events() if e["type"] == "tool_call_finished"], 60, "the spoken request")
        assert calls[0]["tool"] == "home_turn_on" and calls[0]["ok"], calls
    finally:
        assert svc.stop() == 0
