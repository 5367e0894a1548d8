"""Wyoming protocol server: the assistant's wake word, ASR, TTS and brain for Home Assistant and satellites.

Home Assistant's voice pipeline (and its satellites) speak the Wyoming protocol (the ``wyoming``
package: JSON headers + PCM payloads over TCP). One server offers:

* ``describe`` → ``info``: wake (openWakeWord models), ASR (Whisper), TTS (piper) and handle
  (this assistant's router as a conversation agent);
* ``transcribe`` + audio → ``transcript`` (as wyoming-faster-whisper);
* ``synthesize`` → audio (as wyoming-piper);
* ``detect`` + streamed audio → ``detection`` / ``not-detected`` (as wyoming-openwakeword);
* ``transcript`` (text to handle) → ``handled``;
* ``run-pipeline`` (start ``asr`` or ``wake``, end ``handle`` or ``tts``) + streamed audio: the
  whole job for a satellite in another room — endpointing, ASR, the router and tools, and the
  spoken reply streamed back — so a second box can use this one as its brain.

Audio is 16 kHz mono 16-bit in, and the voice's rate out (announced in ``audio-start``).

Wyoming has **no authentication and no encryption**: anything that can open the port can use the
router and every tool (unlock the door included, after a spoken "yes" it sends itself). So the
server listens on loopback unless ``service.wyoming_host`` says otherwise, and accepts
connections only from loopback and the addresses in ``service.wyoming_allow``. Events are read
with bounds (a header line of at most 64 KiB, at most 64 KiB of data and 1 MiB of payload per
event, at most ``service.wyoming_max_audio_s`` of audio per request), so a hostile client cannot
make the service hold unbounded memory.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from functools import partial

import numpy as np

from ..audio.io import FRAME_SAMPLES, SAMPLE_RATE, resample
from ..config import Config
from ..errors import require
from ..session import Session
from ..speech.endpoint import Endpointer, NoSpeechTimeout, UtteranceEnd
from ..speech.wake import WakeStage, WakeWordModel, phrase_from_model_name

__all__ = ["WyomingService"]

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024
"""Longest event header line, bytes."""
MAX_DATA = 64 * 1024
"""Most event data (JSON) per event, bytes."""
MAX_PAYLOAD = 1024 * 1024
"""Most payload (audio) per event, bytes."""


async def read_event_bounded(reader: asyncio.StreamReader):
    """One Wyoming event, or None at the end of the stream or when the client breaks the bounds."""
    from wyoming.event import Event  # noqa: PLC0415

    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError:
        log.warning("wyoming client sent a header line over %d bytes; disconnecting", MAX_LINE)
        return None
    try:
        header = json.loads(line)
        data_length = int(header.get("data_length") or 0)
        payload_length = int(header.get("payload_length") or 0)
        data = header.get("data") or {}
        etype = str(header["type"])
    except (ValueError, TypeError, KeyError, AttributeError):
        log.warning("wyoming client sent a malformed event header; disconnecting")
        return None
    if not 0 <= data_length <= MAX_DATA or not 0 <= payload_length <= MAX_PAYLOAD or not isinstance(data, dict):
        log.warning("wyoming client sent an event over the size limits (data %s, payload %s bytes); disconnecting", data_length, payload_length)
        return None
    try:
        if data_length:
            extra = json.loads(await reader.readexactly(data_length))
            if not isinstance(extra, dict):
                return None
            data.update(extra)
        payload = await reader.readexactly(payload_length) if payload_length else None
    except (asyncio.IncompleteReadError, ValueError):
        return None
    return Event(type=etype, data=data, payload=payload)


class WakeModelPool:
    """openWakeWord models for Wyoming clients, loaded once and off the event loop.

    A model keeps per-stream state, so each detecting client borrows one (reset) and gives it back;
    at most ``size`` clients detect at once.
    """

    def __init__(self, load, size: int = 4) -> None:
        self._load = load
        self._free: list = []
        self._made = 0
        self._size = size
        self._cond = asyncio.Condition()

    async def acquire(self):
        async with self._cond:
            while not self._free and self._made >= self._size:
                await self._cond.wait()
            if self._free:
                model = self._free.pop()
            else:
                self._made += 1
                try:
                    model = await asyncio.to_thread(self._load)
                except BaseException:
                    self._made -= 1
                    raise
        await asyncio.to_thread(model.reset)
        return model

    async def release(self, model) -> None:
        async with self._cond:
            self._free.append(model)
            self._cond.notify()


def allowed_peer(address: str, allow: list[str]) -> bool:
    """Loopback, or an address or network in ``service.wyoming_allow``."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    for entry in allow:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _info(session: Session):
    from wyoming.info import (  # noqa: PLC0415
        AsrModel, AsrProgram, Attribution, HandleModel, HandleProgram, Info, TtsProgram, TtsVoice, WakeModel, WakeProgram,
    )

    cfg = session.config
    me = Attribution(name="Jarvis assistant", url="https://github.com/")
    version = "0.1.0"
    wake_names = [n for n in (session.speech.listener.wake.model.names if session.speech and session.speech.listener else [])]
    return Info(
        asr=[AsrProgram(name="jarvis-asr", description="faster-whisper", attribution=me, installed=True, version=version, models=[
            AsrModel(name=cfg.asr.model, description=f"Whisper {cfg.asr.model}", attribution=Attribution(name="OpenAI", url="https://github.com/openai/whisper"),
                     installed=True, languages=[cfg.asr.language], version="1")])],
        tts=[TtsProgram(name="jarvis-tts", description="piper", attribution=me, installed=True, version=version, voices=[
            TtsVoice(name=cfg.tts.voice, description=cfg.tts.voice, attribution=Attribution(name="rhasspy", url="https://github.com/rhasspy/piper"),
                     installed=True, languages=["en"], version="1")])],
        wake=[WakeProgram(name="jarvis-wake", description="openWakeWord behind a VAD gate", attribution=me, installed=True, version=version, models=[
            WakeModel(name=n, description=phrase_from_model_name(n), phrase=phrase_from_model_name(n),
                      attribution=Attribution(name="dscripka", url="https://github.com/dscripka/openWakeWord"), installed=True, languages=["en"], version="0.1")
            for n in wake_names])],
        handle=[HandleProgram(name="jarvis", description="fast path, local LLM and tools", attribution=me, installed=True, version=version, models=[
            HandleModel(name="jarvis-router", description="Jarvis router", attribution=me, installed=True, languages=["en"], version=version)])],
    )


class _Handler:
    """One client connection."""

    def __init__(self, service: "WyomingService", reader, writer) -> None:
        from wyoming.server import AsyncEventHandler  # noqa: PLC0415

        self.service = service
        self.session = service.session
        self.audio: list[np.ndarray] = []
        self.rate = SAMPLE_RATE
        self.mode: str | None = None  # "transcribe", "detect", "pipeline"
        self.wake: WakeStage | None = None
        self.endpointer: Endpointer | None = None
        self.pipeline_end = "tts"
        self.pending = np.zeros(0, dtype=np.int16)
        self.done = False

        self.max_samples = int(service.session.config.service.wyoming_max_audio_s * SAMPLE_RATE)
        self.samples = 0
        self.wake_model = None
        outer = self

        class Handler(AsyncEventHandler):
            async def handle_event(self, event) -> bool:
                return await outer.handle(event)

            async def run(self) -> None:  # the library's loop, with bounded reads and the peer check
                peer = (writer.get_extra_info("peername") or ("", 0))[0]
                if not allowed_peer(peer, service.allow):
                    log.warning("wyoming connection from %s refused (not loopback, not in service.wyoming_allow)", peer)
                    writer.close()
                    return
                try:
                    while True:
                        event = await read_event_bounded(reader)
                        if event is None or not await self.handle_event(event):
                            break
                except (ConnectionError, asyncio.CancelledError):
                    pass
                finally:
                    await outer.release()
                    writer.close()

        self.handler = Handler(reader, writer)

    async def write(self, event) -> None:
        await self.handler.write_event(event.event() if hasattr(event, "event") else event)

    async def handle(self, event) -> bool:
        from wyoming.asr import Transcribe, Transcript  # noqa: PLC0415
        from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: PLC0415
        from wyoming.info import Describe  # noqa: PLC0415
        from wyoming.pipeline import PipelineStage, RunPipeline  # noqa: PLC0415
        from wyoming.tts import Synthesize  # noqa: PLC0415
        from wyoming.wake import Detect  # noqa: PLC0415

        if Describe.is_type(event.type):
            await self.write(_info(self.session))
            return True
        if Transcribe.is_type(event.type):
            self.mode, self.audio, self.samples = "transcribe", [], 0
            return True
        if Detect.is_type(event.type):
            self.mode, self.samples = "detect", 0
            self.wake = WakeStage(await self.borrow_wake_model(), self.session.config.wake)
            return True
        if RunPipeline.is_type(event.type):
            run = RunPipeline.from_event(event)
            self.mode = "pipeline"
            self.pipeline_end = run.end_stage.value
            cfg = self.session.config
            self.endpointer = Endpointer(cfg.endpoint)
            self.samples = 0
            if run.start_stage == PipelineStage.WAKE:
                self.wake = WakeStage(await self.borrow_wake_model(), cfg.wake)
            else:
                self.endpointer.start(0)
            if run.start_stage == PipelineStage.TTS and run.announce_text:
                await self.speak(run.announce_text)
                return False
            return True
        if AudioStart.is_type(event.type):
            self.rate = AudioStart.from_event(event).rate
            return True
        if AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            if chunk.width != 2:
                log.warning("wyoming client sent %d-byte samples; only 16-bit audio is supported", chunk.width)
                return False
            samples = np.frombuffer(chunk.audio, dtype=np.int16)
            if chunk.channels > 1:
                samples = samples.reshape(-1, chunk.channels).mean(axis=1).astype(np.int16)
            if chunk.rate != SAMPLE_RATE:
                samples = resample(samples, chunk.rate, SAMPLE_RATE)
            return await self.audio_in(samples)
        if AudioStop.is_type(event.type):
            return await self.audio_end()
        if Synthesize.is_type(event.type):
            await self.speak(Synthesize.from_event(event).text)
            return True
        if Transcript.is_type(event.type):
            await self.handle_text(Transcript.from_event(event).text)
            return True
        return True

    async def borrow_wake_model(self):
        if self.wake_model is None:
            self.wake_model = await self.service.wake_models.acquire()
        else:
            await asyncio.to_thread(self.wake_model.reset)
        return self.wake_model

    async def release(self) -> None:
        if self.wake_model is not None:
            await self.service.wake_models.release(self.wake_model)
            self.wake_model = None

    async def audio_in(self, samples: np.ndarray) -> bool:
        self.samples += samples.shape[0]
        if self.samples > self.max_samples:
            from wyoming.error import Error  # noqa: PLC0415

            log.warning("wyoming client streamed more than %.0f s of audio for one request; disconnecting", self.max_samples / SAMPLE_RATE)
            await self.write(Error(text=f"more than {self.max_samples / SAMPLE_RATE:.0f} s of audio", code="audio-too-long"))
            return False
        if self.mode == "transcribe":
            self.audio.append(samples)
            return True
        self.pending = np.concatenate([self.pending, samples])
        while self.pending.shape[0] >= FRAME_SAMPLES and not self.done:
            frame, self.pending = self.pending[:FRAME_SAMPLES], self.pending[FRAME_SAMPLES:]
            if not await self.frame(frame):
                return False
        return not self.done

    async def frame(self, frame: np.ndarray) -> bool:
        from wyoming.wake import Detection  # noqa: PLC0415

        if self.wake is not None:
            hit = self.wake.process(frame)
            if hit is not None:
                await self.write(Detection(name=hit.model, timestamp=int(hit.audio_time_s * 1000)))
                self.wake = None
                if self.mode == "detect":
                    self.done = True
                    return True
                assert self.endpointer is not None
                self.endpointer.start(0)
            return True
        if self.mode == "pipeline" and self.endpointer is not None:
            out = self.endpointer.process(frame)
            if isinstance(out, UtteranceEnd):
                await self.answer(out.audio)
                self.done = True
            elif isinstance(out, NoSpeechTimeout):
                self.done = True
        return True

    async def audio_end(self) -> bool:
        from wyoming.wake import NotDetected  # noqa: PLC0415

        if self.mode == "transcribe":
            audio = np.concatenate(self.audio) if self.audio else np.zeros(0, dtype=np.int16)
            await self.transcribe(audio)
            self.mode = None
            return True
        if self.mode == "detect" and not self.done:
            await self.write(NotDetected())
        if self.mode == "pipeline" and not self.done and self.endpointer is not None:
            out = self.endpointer.finish()
            if out is not None:
                await self.answer(out.audio)
        self.mode, self.done = None, False
        return True

    async def transcribe(self, audio: np.ndarray) -> str:
        from wyoming.asr import Transcript  # noqa: PLC0415

        asr = self.session.speech.asr if self.session.speech else None
        if asr is None or audio.size == 0:
            text = ""
        else:
            result = await asyncio.to_thread(asr.transcribe, audio)
            text = result.text
        await self.write(Transcript(text=text))
        return text

    async def handle_text(self, text: str) -> str:
        from wyoming.handle import Handled, NotHandled  # noqa: PLC0415

        if not text.strip():
            await self.write(NotHandled(text="I didn't hear anything."))
            return ""
        async with self.service.lock:
            reply = await self.session.pipeline.handle_text(text, speak=False)
        await self.write(Handled(text=reply))
        return reply

    async def answer(self, audio: np.ndarray) -> None:
        text = await self.transcribe(audio)
        if self.pipeline_end == "asr":
            return
        reply = await self.handle_text(text)
        if self.pipeline_end == "tts" and reply:
            await self.speak(reply)

    async def speak(self, text: str) -> None:
        from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: PLC0415

        tts = self.session.speech.tts if self.session.speech else None
        if tts is None:
            return
        rate = tts.sample_rate
        await self.write(AudioStart(rate=rate, width=2, channels=1))
        chunks = await asyncio.to_thread(lambda: list(tts.synthesize(text)))
        for c in chunks:
            for i in range(0, c.shape[0], rate):  # one-second chunks
                await self.write(AudioChunk(rate=rate, width=2, channels=1, audio=c[i : i + rate].tobytes()))
        await self.write(AudioStop())


class WyomingService:
    """The Wyoming TCP server of one session.

    Args:
        session: The running assistant (its ASR, TTS, wake models and router are served).
        config: ``service.host`` and ``service.wyoming_port``.
    """

    def __init__(self, session: Session, config: Config) -> None:
        require("wyoming", "service", "the Wyoming server")
        self.session = session
        self.uri = f"tcp://{config.service.wyoming_host}:{config.service.wyoming_port}"
        self.allow = list(config.service.wyoming_allow)
        self.lock = asyncio.Lock()
        self.server = None
        self.wake_models = WakeModelPool(self._load_wake_model)

    def _load_wake_model(self) -> WakeWordModel:
        """A wake model for the pool (openWakeWord keeps per-stream state, so a client borrows one)."""
        from ..app import load_wake_model, model_store  # noqa: PLC0415

        return load_wake_model(self.session.config, model_store(self.session.config))

    async def start(self) -> None:
        from wyoming.server import AsyncServer  # noqa: PLC0415

        self.server = AsyncServer.from_uri(self.uri)
        try:
            # start(), not run(): run() installs its own SIGTERM handler over the daemon's
            await self.server.start(partial(self._make_handler))
        except OSError as exc:
            from ..errors import AssistantError  # noqa: PLC0415

            raise AssistantError(f"cannot serve Wyoming on {self.uri}: {exc}", hint="change service.wyoming_port") from None
        log.info("wyoming server listening", extra={"uri": self.uri})

    def _make_handler(self, reader, writer):
        return _Handler(self, reader, writer).handler

    async def close(self) -> None:
        if self.server is not None:
            try:
                await self.server.stop()
            except Exception:  # noqa: BLE001
                pass
