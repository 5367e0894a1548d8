"""Wyoming protocol server: the assistant's wake word, ASR, TTS and brain for Home Assistant and satellites.

Home Assistant's voice pipeline (and its satellites) speak the Wyoming protocol (the ``wyoming``
package: JSON headers + PCM payloads over TCP). One server offers:

* ``describe`` → ``info``: wake (openWakeWord models), ASR (Whisper), TTS (piper) and handle
  (this assistant's router as a conversation agent);
* ``transcribe`` + audio → ``transcript`` (as wyoming-faster-whisper);
* ``synthesize`` → audio (as wyoming-piper);
* ``detect`` + streamed audio → ``detection`` / ``not-detected`` (as wyoming-openwakeword);
* ``transcript`` (text to handle) → ``handled``;
* ``run-pipeline`` (start ``wake`` or ``asr``, end ``asr``, ``handle`` or ``tts``) + streamed
  audio: the whole job for a satellite in another room, through the **same voice loop** as the
  device's own microphone (:meth:`assistant.pipeline.Pipeline.satellite`) — wake verification,
  endpointing, speculative recognition, barge-in, the router and tools, and the spoken reply
  streamed back sentence by sentence. The satellite has its own conversation and room
  (``service.satellite_areas``), and a question back ("Do you want me to unlock the front door?")
  is asked on the satellite and answered by its microphone. The run ends when its turn does
  (``restart_on_end``: when the client stops streaming).

Audio is 16 kHz mono 16-bit in, and the voice's rate out (announced in ``audio-start``).

Wyoming has **no authentication and no encryption**: anything that can open the port can use the
router and every tool (unlock the door included, after a spoken "yes" it sends itself). So the
server listens on loopback unless ``service.wyoming_host`` says otherwise, and accepts
connections only from loopback and the addresses in ``service.wyoming_allow``. Events are read
with bounds (a header line of at most 64 KiB, at most 64 KiB of data and 1 MiB of payload per
event, at most ``service.wyoming_max_audio_s`` of audio per transcription or detection, at most
10 s of a satellite's audio waiting to be heard), so a hostile client cannot make the service hold
unbounded memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from functools import partial

import numpy as np

from ..audio.io import FRAME_SAMPLES, SAMPLE_RATE, resample
from ..config import Config
from ..errors import require
from ..session import Session
from ..speech.asr import FULL_WINDOW_S
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
    listener = session.speech.listener if session.speech else None
    wake_names = list(listener.wake.model.names) if listener is not None and listener.wake is not None else []
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


class SatelliteMic:
    """A satellite's microphone: a Wyoming connection's audio as 20 ms frames (an ``AudioSource``).

    Frames wait in a bounded queue of ``max_s`` seconds; when the assistant falls behind, the oldest
    are dropped (and counted in :attr:`dropped`) so a fast client cannot make it hold unbounded
    memory. :attr:`should_end` is polled every :data:`POLL_S` seconds, so a pipeline run ends when
    its turn does even if the satellite keeps streaming.
    """

    realtime = True

    def __init__(self, max_s: float = 10.0) -> None:
        self._q: asyncio.Queue[np.ndarray | None] = asyncio.Queue(maxsize=max(1, int(max_s * SAMPLE_RATE / FRAME_SAMPLES)))
        self._pending = np.zeros(0, dtype=np.int16)
        self.dropped = 0
        """Frames dropped because the assistant fell behind."""
        self.should_end = lambda: False

    def _put(self, item: np.ndarray | None) -> None:
        while True:
            try:
                self._q.put_nowait(item)
                return
            except asyncio.QueueFull:
                self._q.get_nowait()
                self.dropped += 1

    def push(self, samples: np.ndarray) -> None:
        """Add 16 kHz mono int16 samples (any length)."""
        self._pending = np.concatenate([self._pending, samples])
        n = self._pending.shape[0] // FRAME_SAMPLES * FRAME_SAMPLES
        for i in range(0, n, FRAME_SAMPLES):
            self._put(self._pending[i : i + FRAME_SAMPLES])
        self._pending = self._pending[n:]

    def end(self) -> None:
        """The satellite stopped streaming (audio-stop)."""
        self._put(None)

    async def frames(self):
        while True:
            try:
                frame = await asyncio.wait_for(self._q.get(), POLL_S)
            except asyncio.TimeoutError:
                frame = False
            if frame is None or self.should_end():
                return
            if frame is not False:
                yield frame

    async def close(self) -> None:
        self.end()


POLL_S = 0.1
"""How often a satellite's run checks whether its turn is over, seconds."""


class SatelliteSpeaker:
    """A satellite's speaker: reply audio as Wyoming ``audio-start`` / ``audio-chunk`` / ``audio-stop``.

    Each reply (and each question asked back) is one audio stream: it starts with the first
    samples and stops when the :class:`~assistant.engine.speaker.Speaker` drains it. The satellite
    plays at its own pace; this sink never blocks on it.
    """

    sample_rate = None

    def __init__(self, send) -> None:
        self._send = send
        self._rate: int | None = None

    async def play(self, samples: np.ndarray, rate: int) -> None:
        from wyoming.audio import AudioChunk, AudioStart  # noqa: PLC0415

        if self._rate != rate:
            await self.drain()
            await self._send(AudioStart(rate=rate, width=2, channels=1))
            self._rate = rate
        for i in range(0, samples.shape[0], rate):  # one-second chunks at most
            await self._send(AudioChunk(rate=rate, width=2, channels=1, audio=samples[i : i + rate].tobytes()))

    async def drain(self) -> None:
        from wyoming.audio import AudioStop  # noqa: PLC0415

        if self._rate is not None:
            self._rate = None
            await self._send(AudioStop())

    async def interrupt(self) -> None:
        await self.drain()

    async def close(self) -> None:
        await self.drain()


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
        self.pending = np.zeros(0, dtype=np.int16)
        self.done = False
        self.peer = (writer.get_extra_info("peername") or ("", 0))[0]
        self.max_samples = int(service.session.config.service.wyoming_max_audio_s * SAMPLE_RATE)
        self.samples = 0
        self.wake_model = None
        self.mic: SatelliteMic | None = None
        self.run_task: asyncio.Task | None = None
        self.outbox: asyncio.Queue = asyncio.Queue()
        outer = self

        class Handler(AsyncEventHandler):
            async def handle_event(self, event) -> bool:
                return await outer.handle(event)

            async def run(self) -> None:  # the library's loop, with bounded reads and the peer check
                if not allowed_peer(outer.peer, service.allow):
                    log.warning("wyoming connection from %s refused (not loopback, not in service.wyoming_allow)", outer.peer)
                    writer.close()
                    return
                sender = asyncio.create_task(outer.send_loop())
                try:
                    while True:
                        event = await read_event_bounded(reader)
                        if event is None or not await self.handle_event(event):
                            break
                    if outer.run_task is not None and not outer.run_task.done():
                        with contextlib.suppress(Exception):
                            await outer.run_task  # the client stopped sending: finish the turn it started
                except (ConnectionError, asyncio.CancelledError):
                    pass
                finally:
                    await outer.release()
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(outer.outbox.join(), 5.0)
                    sender.cancel()
                    writer.close()

        self.handler = Handler(reader, writer)

    async def write(self, event) -> None:
        """Send ``event`` after everything sent before it (one writer per connection keeps the order)."""
        self.outbox.put_nowait(event.event() if hasattr(event, "event") else event)

    async def send_loop(self) -> None:
        while True:
            event = await self.outbox.get()
            try:
                await self.handler.write_event(event)
            except (ConnectionError, OSError):
                pass
            finally:
                self.outbox.task_done()

    async def handle(self, event) -> bool:
        from wyoming.asr import Transcribe, Transcript  # noqa: PLC0415
        from wyoming.audio import AudioChunk, AudioStart, AudioStop  # noqa: PLC0415
        from wyoming.info import Describe  # noqa: PLC0415
        from wyoming.pipeline import RunPipeline  # noqa: PLC0415
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
            return await self.run_pipeline(RunPipeline.from_event(event))
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
        await self.stop_run()
        if self.wake_model is not None:
            await self.service.wake_models.release(self.wake_model)
            self.wake_model = None

    # ------------------------------------------------------------------ a satellite's pipeline run

    @property
    def origin(self) -> str:
        """The satellite's conversation: one per address, so its follow-ups survive reconnecting."""
        return f"satellite:{self.peer}"

    async def run_pipeline(self, run) -> bool:
        """``run-pipeline``: this connection's audio through the same voice loop as the microphone's.

        The run ends when its turn is over (or, with ``restart_on_end``, when the client stops).
        """
        from wyoming.pipeline import PipelineStage  # noqa: PLC0415

        await self.stop_run()
        if run.start_stage == PipelineStage.TTS:
            if run.announce_text:
                await self.speak(run.announce_text)
            return True
        if run.start_stage not in (PipelineStage.WAKE, PipelineStage.ASR):
            from wyoming.error import Error  # noqa: PLC0415

            await self.write(Error(text=f"run-pipeline from {run.start_stage.value} needs text: send a transcript event instead",
                                   code="unsupported-start-stage"))
            return True
        from ..app import build_listener  # noqa: PLC0415

        pipeline = self.session.pipeline
        assert pipeline is not None
        end = run.end_stage
        speak = end == PipelineStage.TTS and self.session.speech is not None and self.session.speech.tts is not None
        sink = SatelliteSpeaker(self.write) if speak else None
        speech = self.session.speech
        listener = build_listener(self.session.config, await self.borrow_wake_model(), speech.turn if speech is not None else None,
                                  speech.turn_text if speech is not None else None)
        loop = pipeline.satellite(listener, sink, origin=self.origin, area=self.service.areas.get(self.peer),
                                  answer=end in (PipelineStage.INTENT, PipelineStage.HANDLE, PipelineStage.TTS), speak=speak)
        loop.verifier = loop.verifier if run.start_stage == PipelineStage.WAKE else None
        self.mic = mic = SatelliteMic()
        if not run.restart_on_end:
            mic.should_end = lambda: bool(loop.turn_ids) and loop.waiting_for_wake
        self.mode, self.samples = "pipeline", 0
        unsubscribe = self.session.bus.subscribe(partial(self._relay, loop))
        listen_now = run.start_stage == PipelineStage.ASR

        async def go() -> None:
            try:
                await loop.run(mic, listen_now=listen_now)
            finally:
                unsubscribe()
                if mic.dropped:
                    log.warning("satellite %s: %d audio frames dropped (the assistant fell behind)", self.peer, mic.dropped)
                if self.mic is mic:
                    self.mic, self.mode = None, None

        self.run_task = asyncio.create_task(go(), name=f"satellite-{self.peer}")
        return True

    def _relay(self, loop, event) -> None:
        """The satellite's own turns' events, as Wyoming events, in order with its audio."""
        from wyoming.asr import Transcript  # noqa: PLC0415
        from wyoming.handle import Handled, NotHandled  # noqa: PLC0415
        from wyoming.vad import VoiceStarted, VoiceStopped  # noqa: PLC0415
        from wyoming.wake import Detection  # noqa: PLC0415

        from ..events import FinalTranscript, Reply, SpeechEnded, SpeechStarted, TurnFinished, WakeDetected  # noqa: PLC0415

        if event.turn is None or event.turn not in loop.turn_ids:
            return
        out = None
        if isinstance(event, WakeDetected):
            out = Detection(name=event.model, timestamp=int(event.audio_time_s * 1000))
        elif isinstance(event, SpeechStarted):
            out = VoiceStarted(timestamp=int(event.audio_time_s * 1000))
        elif isinstance(event, SpeechEnded):
            out = VoiceStopped(timestamp=int(event.audio_time_s * 1000))
        elif isinstance(event, FinalTranscript):
            out = Transcript(text=event.text)
        elif isinstance(event, Reply) and loop.answers:
            out = Handled(text=event.text)
        elif isinstance(event, TurnFinished) and not event.ok and loop.answers:
            out = NotHandled(text="I didn't catch a request.")
        if out is not None:
            self.outbox.put_nowait(out.event())

    async def stop_run(self) -> None:
        task, self.run_task = self.run_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ------------------------------------------------------------------ audio in

    async def audio_in(self, samples: np.ndarray) -> bool:
        if self.mode == "pipeline" and self.mic is not None:
            self.mic.push(samples)
            return True
        self.samples += samples.shape[0]
        if self.samples > self.max_samples:
            from wyoming.error import Error  # noqa: PLC0415

            log.warning("wyoming client streamed more than %.0f s of audio for one request; disconnecting", self.max_samples / SAMPLE_RATE)
            await self.write(Error(text=f"more than {self.max_samples / SAMPLE_RATE:.0f} s of audio", code="audio-too-long"))
            return False
        if self.mode == "transcribe":
            self.audio.append(samples)
            return True
        if self.mode != "detect" or self.wake is None:
            return True
        self.pending = np.concatenate([self.pending, samples])
        while self.pending.shape[0] >= FRAME_SAMPLES and not self.done:
            frame, self.pending = self.pending[:FRAME_SAMPLES], self.pending[FRAME_SAMPLES:]
            await self.detect(frame)
        return True

    async def detect(self, frame: np.ndarray) -> None:
        from wyoming.wake import Detection  # noqa: PLC0415

        assert self.wake is not None
        hit = self.wake.process(frame)
        if hit is not None:
            await self.write(Detection(name=hit.model, timestamp=int(hit.audio_time_s * 1000)))
            self.wake = None
            self.done = True

    async def audio_end(self) -> bool:
        from wyoming.wake import NotDetected  # noqa: PLC0415

        if self.mode == "pipeline":
            if self.mic is not None:
                self.mic.end()
            return True
        if self.mode == "transcribe":
            audio = np.concatenate(self.audio) if self.audio else np.zeros(0, dtype=np.int16)
            await self.transcribe(audio)
        elif self.mode == "detect" and not self.done:
            await self.write(NotDetected())
        self.mode, self.done, self.wake = None, False, None
        self.pending = np.zeros(0, dtype=np.int16)
        return True

    # ------------------------------------------------------------------ single services

    async def transcribe(self, audio: np.ndarray) -> str:
        from wyoming.asr import Transcript  # noqa: PLC0415

        asr = self.session.speech.asr if self.session.speech else None
        if asr is None or audio.size == 0:
            text = ""
        else:
            # the full window: Home Assistant's agent understands this text, so nothing here can
            # catch a short-window slip and recognise again (assistant.speech.asr)
            result = await asyncio.to_thread(asr.transcribe, audio, window_s=FULL_WINDOW_S)
            text = result.text
        await self.write(Transcript(text=text))
        return text

    async def handle_text(self, text: str) -> str:
        """A ``transcript`` to handle (a conversation agent's request): a turn in the satellite's
        conversation. Nobody can be asked a question over this exchange, so risky tools are refused."""
        from wyoming.handle import Handled, NotHandled  # noqa: PLC0415

        from ..engine.arbiter import Busy  # noqa: PLC0415
        from ..engine.channels import TextChannel  # noqa: PLC0415

        if not text.strip():
            await self.write(NotHandled(text="I didn't hear anything."))
            return ""
        pipeline = self.session.pipeline
        assert pipeline is not None
        try:
            reply = await self.session.ask(text, origin=self.origin, channel=TextChannel(pipeline.speaker, voice=False),
                                           area=self.service.areas.get(self.peer))
        except Busy as exc:
            await self.write(NotHandled(text=exc.message))
            return ""
        await self.write(Handled(text=reply))
        return reply

    async def speak(self, text: str) -> None:
        tts = self.session.speech.tts if self.session.speech else None
        if tts is None:
            return
        sink = SatelliteSpeaker(self.write)
        played = 0
        async for c in tts.pieces(text):  # each piece sent as soon as it is made
            await sink.play(c, tts.sample_rate)
            played += 1
        if not played:  # still a (silent) stream, so the client's wait ends
            await sink.play(np.zeros(0, dtype=np.int16), tts.sample_rate)
        await sink.drain()


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
        self.areas = dict(config.service.satellite_areas)
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
