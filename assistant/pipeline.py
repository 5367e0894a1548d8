"""The voice pipeline: frames → wake word → utterance → ASR → controller → TTS → sink.

One asyncio task reads frames from the source and runs the synchronous :class:`Listener`
(VAD gate, wake word, endpointing). When an utterance ends, a turn is answered: Whisper
transcribes it, the controller streams reply text, a sentence splitter hands each finished
sentence to piper, and the audio goes to the sink while later sentences are still being
generated. Engines are synchronous and run in worker threads (``asyncio.to_thread``).

With a **real-time** source (a microphone, or a file paced at speech speed) frames keep flowing
while a turn is answered, so the wake word can barge in and stop the reply. With a file read as
fast as possible, each turn is answered before more audio is read, as if answering took no time.

Every step emits events on the :class:`~assistant.bus.EventBus`, including a
:class:`~assistant.events.StageTiming` per stage per turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Protocol, Sequence

import numpy as np

from .audio.io import SAMPLE_RATE, AudioSink, AudioSource
from .bus import EventBus
from .config import Config
from .errors import AssistantError
from .events import (
    AssistantState,
    AudioOut,
    ErrorEvent,
    FinalTranscript,
    Interrupt,
    NoSpeech,
    PartialTranscript,
    Reply,
    Speak,
    SpeechEnded,
    SpeechStarted,
    StageTiming,
    StateChanged,
    TurnFinished,
    TurnStarted,
    WakeDetected,
    WakeRejected,
)
from .controller.yesno import Answer, parse_yes_no
from .speech.asr import SpeechRecognizer, strip_wake_phrase
from .speech.endpoint import NoSpeechTimeout, SpeechStart, UtteranceEnd
from .speech.listener import BargeIn, Listener, ListenerMode
from .speech.tts import SentenceSplitter, SpeechSynthesizer, earcon
from .speech.wake import WakeHit, WakeVerifier, phrase_from_model_name, wake_window

__all__ = ["Pipeline", "Responder", "is_yes"]



def _dbfs(frame: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(frame.astype(np.float32) ** 2))) if frame.size else 0.0
    return 20.0 * np.log10(max(rms, 1.0) / 32768.0)


def is_yes(text: str) -> bool:
    """The whole answer is a yes ("yes please", "go ahead"; not "absolutely not", "are you sure?")."""
    return parse_yes_no(text) is Answer.YES

log = logging.getLogger(__name__)


class Rescorer(Protocol):
    """Decides whether a transcript is understood and which names a second pass should favour."""

    def names_for(self, text: str) -> Sequence[str]: ...

    def choose(self, first: str, second: str) -> str: ...


class Responder(Protocol):
    """What answers a request: the router/controller. Yields reply text as it is generated."""

    def respond(self, text: str, *, turn: int) -> AsyncIterator[str]: ...


@dataclass
class _Turn:
    id: int
    wake_hit: WakeHit | None = None
    verify: asyncio.Task | None = None
    started_position: int = 0
    follow_up: bool = False


@dataclass
class Pipeline:
    """The assistant's voice loop.

    Args:
        config: The configuration (endpoint, TTS and wake settings are read from it).
        listener: Wake word + endpointing state machine.
        asr: Speech recognizer, or None to stop at wake detections.
        tts: Speech synthesizer, or None for text-only replies.
        responder: Answers transcripts (router/controller), or None to only transcribe.
        sink: Where reply audio goes, or None.
        bus: Event bus (a new one by default).
        verifier: Second-pass wake verification, or None.
        rescorer: Decides whether a transcript is understood and, when not, which few names a
            second recognition pass is biased with (:class:`~assistant.controller.rescore.TranscriptRescorer`).
    """

    config: Config
    listener: Listener | None
    asr: SpeechRecognizer | None = None
    tts: SpeechSynthesizer | None = None
    responder: Responder | None = None
    sink: AudioSink | None = None
    bus: EventBus = field(default_factory=EventBus)
    verifier: WakeVerifier | None = None
    rescorer: "Rescorer | None" = None

    def __post_init__(self) -> None:
        self._turn_no = 0
        self._turn: _Turn | None = None
        self._turn_task: asyncio.Task | None = None
        self._speaking_task: asyncio.Task | None = None
        self.realtime = False
        self.state = AssistantState.IDLE
        self.muted = False
        self.wake_phrases = [phrase_from_model_name(n) for n in self.config.wake.models]
        self._frames: AsyncIterator[np.ndarray] | None = None
        self._reply_waiter: asyncio.Future | None = None
        self._announcements: asyncio.Queue[str] = asyncio.Queue()
        self._announcer: asyncio.Task | None = None
        self._partial_task: asyncio.Task | None = None
        self._partial_at = 0
        self._spec: tuple[int, asyncio.Task] | None = None
        self._spec_busy: asyncio.Task | None = None
        self._answering: _Turn | None = None
        self._reply_mentions_wake = False
        self._speech_ended_at = 0.0
        self.ignored_barge_ins = 0
        """Wake detections during a reply that were taken for the assistant's own voice."""
        self.level_dbfs = -100.0
        """Level of the last input frame, dBFS (for level meters)."""

    # ------------------------------------------------------------------ helpers

    def _set_state(self, state: AssistantState, turn: int | None = None) -> None:
        if state is not self.state:
            self.state = state
            self.bus.emit(StateChanged(state=state, turn=turn))

    def _timing(self, stage: str, ms: float, turn: int | None, detail: str = "") -> None:
        self.bus.emit(StageTiming(stage=stage, ms=round(ms, 2), turn=turn, detail=detail))

    def _new_turn(self, **kw) -> _Turn:
        self._turn_no += 1
        self._turn = _Turn(id=self._turn_no, **kw)
        return self._turn

    # ------------------------------------------------------------------ the frame loop

    async def run(self, source: AudioSource) -> None:
        """Listen to ``source`` until it ends (a file) or the task is cancelled (a microphone)."""
        if self.listener is None:
            raise AssistantError("this pipeline has no listener (wake word and endpointing)")
        self.realtime = bool(getattr(source, "realtime", False))
        self._set_state(AssistantState.IDLE)
        self._frames = source.frames()
        try:
            async for frame in self._frames:
                if self.muted:
                    continue
                self.level_dbfs = _dbfs(frame)
                out = self.listener.process(frame)
                if out is not None:
                    await self._on_listener(out)
                self._speculate()
                self._maybe_partial()
            out = self.listener.finish()
            if out is not None:
                await self._on_listener(out)
            if self._turn_task is not None:
                await self._turn_task
        finally:
            if self._turn_task is not None and not self._turn_task.done():
                self._turn_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._turn_task
            if self.sink is not None:
                await self.sink.drain()

    async def _on_listener(self, out) -> None:
        assert self.listener is not None
        waiter = self._reply_waiter
        if waiter is not None and not waiter.done() and isinstance(out, (UtteranceEnd, NoSpeechTimeout)):
            waiter.set_result(out)  # the answer to a question the assistant asked (realtime mode)
            return
        if isinstance(out, WakeHit):
            await self._on_wake(out)
        elif isinstance(out, BargeIn):
            if not self._barge_in_allowed(out.hit):
                return
            await self.interrupt("barge_in")
            self.listener.capture()
            await self._on_wake(out.hit)
        elif isinstance(out, SpeechStart):
            turn = self._turn or self._new_turn(follow_up=True, started_position=self.listener.position)
            self.bus.emit(SpeechStarted(audio_time_s=round(out.audio_time_s, 3), turn=turn.id))
        elif isinstance(out, UtteranceEnd):
            turn = self._turn or self._new_turn()
            self.bus.emit(
                SpeechEnded(audio_time_s=round(out.audio_time_s, 3), duration_s=round(out.duration_s, 3), reason=out.reason, turn=turn.id)
            )
            self._timing("endpoint", out.trailing_silence_ms, turn.id, detail="trailing silence, ms of audio")
            if self.realtime:
                self._turn_task = asyncio.create_task(self._answer(turn, out, time.perf_counter()))
            else:
                await self._answer(turn, out, time.perf_counter())
        elif isinstance(out, NoSpeechTimeout):
            turn = self._turn
            self.bus.emit(NoSpeech(audio_time_s=round(out.audio_time_s, 3), turn=turn.id if turn else None))
            if turn is not None and not turn.follow_up:
                self.bus.emit(TurnFinished(ok=False, turn=turn.id))
            self._turn = None
            self._set_state(AssistantState.IDLE)

    def _barge_in_allowed(self, hit: WakeHit) -> bool:
        """A wake word heard while a turn is being answered: a real barge-in, or our own voice?

        The assistant's own reply can contain the wake phrase ("My name is Jarvis"), and the
        microphone hears the speaker. While a reply that mentions a wake word is playing (and for
        a second after), detections are ignored; otherwise a detection needs the (higher)
        barge-in threshold, since the user is talking over the assistant.
        """
        log.info("wake word while answering (score %.2f, state %s)", hit.score, self.state.value)
        if not self.config.wake.barge_in:
            return False
        if hit.score < self.config.wake.barge_in_threshold:
            return False
        if self._reply_mentions_wake and (self.state is AssistantState.SPEAKING or time.monotonic() - self._speech_ended_at < 1.0):
            log.info("ignoring a wake word while the reply mentions it (own voice)")
            self.ignored_barge_ins += 1
            return False
        return True

    async def _on_wake(self, hit: WakeHit) -> None:
        assert self.listener is not None
        turn = self._new_turn(wake_hit=hit, started_position=self.listener.position)
        self.bus.emit(TurnStarted(source="voice", turn=turn.id))
        self._timing("wake", hit.compute_ms, turn.id, detail=hit.model)
        if self.verifier is None:
            self.bus.emit(WakeDetected(model=hit.model, score=round(hit.score, 4), audio_time_s=round(hit.audio_time_s, 3), turn=turn.id))
            self._set_state(AssistantState.LISTENING, turn.id)
            return
        window = wake_window(self.listener.ring, self.verifier.config.window_s)
        turn.verify = asyncio.create_task(self._verify(turn, hit, window))
        if not self.realtime:
            await turn.verify

    async def _verify(self, turn: _Turn, hit: WakeHit, window: np.ndarray) -> bool:
        assert self.verifier is not None and self.listener is not None
        ok, heard, ms = await asyncio.to_thread(self.verifier.verify, window)
        self._timing("verify", ms, turn.id, detail=heard)
        if ok:
            self.bus.emit(
                WakeDetected(model=hit.model, score=round(hit.score, 4), audio_time_s=round(hit.audio_time_s, 3), verified=True, verify_text=heard, turn=turn.id)
            )
            self._set_state(AssistantState.LISTENING, turn.id)
            return True
        self.bus.emit(WakeRejected(model=hit.model, score=round(hit.score, 4), audio_time_s=round(hit.audio_time_s, 3), verify_text=heard, turn=turn.id))
        if self._turn is turn:
            self._turn = None
            if self.listener.mode is ListenerMode.CAPTURE:
                self.listener.idle()
        self._set_state(AssistantState.IDLE)
        return False

    def _speculate(self) -> None:
        """At the first pause of ``asr.speculative_after_ms``, start transcribing what was said.

        Endpointing still waits for the full trailing silence; if the user goes on talking the
        speculation is dropped, otherwise its transcript is used and the ASR time is (partly)
        hidden inside the trailing silence.
        """
        after = self.config.asr.speculative_after_ms
        if not after or not self.realtime or self.asr is None or self.listener is None or self.listener.mode is not ListenerMode.CAPTURE:
            return  # (a file read as fast as possible has no pause to hide recognition in)
        ep = self.listener.endpointer
        n = ep.captured_samples
        if n == 0:
            self._spec = None
            return
        silence = ep.silence_ms
        if silence == 0:
            self._spec = None  # speech goes on: a speculation made before is stale
            return
        if silence < after or self._spec is not None:
            return
        if self._spec_busy is not None and not self._spec_busy.done():
            return  # a stale speculation still holds the CPU; the end of the utterance will transcribe
        audio = ep.current_audio()
        task = asyncio.create_task(asyncio.to_thread(self.asr.transcribe, audio))
        self._spec = (n, task)
        self._spec_busy = task

    def _maybe_partial(self) -> None:
        """Every ``asr.partial_interval_ms`` of speech, transcribe the utterance so far (in a thread)."""
        interval = self.config.asr.partial_interval_ms
        if not interval or self.asr is None or self.listener is None or self.listener.mode is not ListenerMode.CAPTURE:
            return
        ep = self.listener.endpointer
        n = ep.captured_samples
        if n == 0:
            self._partial_at = 0
            return
        if n - self._partial_at < interval * SAMPLE_RATE // 1000 or (self._partial_task is not None and not self._partial_task.done()):
            return
        if self._spec is not None or ep.silence_ms > 0:
            return  # in a pause: the speculative recognition has the CPU
        self._partial_at = n
        audio = ep.current_audio()
        turn = self._turn.id if self._turn else None
        asr = self.asr

        async def transcribe() -> None:
            result = await asyncio.to_thread(asr.transcribe, audio)
            text = strip_wake_phrase(result.text, self.wake_phrases)
            if text and self.listener is not None and self.listener.mode is ListenerMode.CAPTURE:
                self.bus.emit(PartialTranscript(text=text, turn=turn))

        self._partial_task = asyncio.create_task(transcribe())

    # ------------------------------------------------------------------ answering a turn

    async def _answer(self, turn: _Turn, utt: UtteranceEnd, t_end: float) -> None:
        assert self.listener is not None
        self._answering = turn
        if turn.verify is not None and not await turn.verify:
            return
        if self.sink is not None and self.tts is not None and self.config.tts.earcon and self.responder is not None:
            await self.sink.play(earcon(self.tts.sample_rate), self.tts.sample_rate)
        self._set_state(AssistantState.TRANSCRIBING, turn.id)
        if self.asr is None:
            self._finish_turn(turn, ok=True)
            return
        spec, self._spec = self._spec, None
        t_asr = time.perf_counter()
        try:
            if spec is not None and spec[0] <= utt.audio.shape[0]:
                result = await spec[1]  # recognition started at the pause: often done already
            else:
                result = await asyncio.to_thread(self.asr.transcribe, utt.audio)
        except Exception as exc:  # noqa: BLE001 - reported, and the pipeline goes on
            self.bus.emit(ErrorEvent(stage="asr", message=str(exc), turn=turn.id))
            self._finish_turn(turn, ok=False)
            return
        waited_ms = (time.perf_counter() - t_asr) * 1000.0
        self._timing("asr", waited_ms, turn.id, detail=(
            f"{'speculative, ' if spec is not None else ''}compute {result.compute_ms:.0f} ms, rtf {result.real_time_factor:.3f}, {result.audio_s:.2f} s audio"))
        text = strip_wake_phrase(result.text, self.wake_phrases)
        text = await self._second_pass(text, utt.audio, turn.id)
        self.bus.emit(FinalTranscript(text=text, turn=turn.id))
        if not text:
            # a cough, a click, or just the wake phrase: keep listening for the request if time is left
            if result.text.strip():
                turn.started_position = int(utt.audio_time_s * SAMPLE_RATE)  # "hey jarvis" alone: a fresh wait
            elapsed = (self.listener.position - turn.started_position) / SAMPLE_RATE
            left = self.config.endpoint.no_speech_timeout_s - elapsed
            if left > 0.3:
                self._set_state(AssistantState.LISTENING, turn.id)
                out = self.listener.rearm(int(utt.audio_time_s * SAMPLE_RATE), left)
                if out is not None and not isinstance(out, SpeechStart):
                    await self._on_listener(out)
                return
            self._finish_turn(turn, ok=False)
            return
        if self.responder is None:
            self._finish_turn(turn, ok=True)
            return
        await self.speak_reply(self.responder.respond(text, turn=turn.id), turn=turn.id, t_ref=t_end)
        end_reply = getattr(self.sink, "end_reply", None)
        if end_reply is not None:
            await end_reply()
        self._finish_turn(turn, ok=True, follow_up=True)

    async def _second_pass(self, text: str, audio: np.ndarray, turn: int | None) -> str:
        """Nobody understood the transcript: recognise again, biased with the few names it may have
        meant, and keep the new one if it is understood (see :mod:`assistant.controller.rescore`)."""
        if self.rescorer is None or self.asr is None or not self.config.asr.bias_to_tools or not text:
            return text
        names = await asyncio.to_thread(self.rescorer.names_for, text)
        if not names:
            return text
        t0 = time.perf_counter()
        result = await asyncio.to_thread(self.asr.transcribe, audio, hotwords=names)
        second = strip_wake_phrase(result.text, self.wake_phrases)
        chosen = await asyncio.to_thread(self.rescorer.choose, text, second)
        self._timing("asr_second_pass", (time.perf_counter() - t0) * 1000.0, turn, detail=f"{'kept' if chosen == second else 'dropped'}: {second!r} (biased with {len(names)} names)")
        return chosen

    def _finish_turn(self, turn: _Turn, *, ok: bool, follow_up: bool = False) -> None:
        assert self.listener is not None
        if self._answering is turn:
            self._answering = None
        self.bus.emit(TurnFinished(ok=ok, turn=turn.id))
        if self._turn is turn:
            self._turn = None
        if follow_up and self.config.endpoint.follow_up_s > 0:
            self.listener.capture(self.config.endpoint.follow_up_s)
            self._set_state(AssistantState.LISTENING, None)
        else:
            self.listener.idle()
            self._set_state(AssistantState.IDLE)

    async def handle_text(self, text: str, *, speak: bool = True) -> str:
        """Answer a typed request through the same responder (and TTS, if ``speak``).

        Returns:
            The whole reply text.
        """
        if self.responder is None:
            raise AssistantError("this pipeline has no responder to answer requests")
        turn = self._new_turn()
        self.bus.emit(TurnStarted(source="text", turn=turn.id))
        self.bus.emit(FinalTranscript(text=text, source="text", turn=turn.id))
        reply = await self.speak_reply(self.responder.respond(text, turn=turn.id), turn=turn.id, t_ref=time.perf_counter(), speak=speak)
        self.bus.emit(TurnFinished(ok=True, turn=turn.id))
        if self._turn is turn:
            self._turn = None
        self._set_state(AssistantState.IDLE)
        return reply

    async def say(self, text: str) -> None:
        """Speak ``text`` (no controller involved)."""
        async def once() -> AsyncIterator[str]:
            yield text

        turn = self._new_turn()
        await self.speak_reply(once(), turn=turn.id, t_ref=time.perf_counter())
        self._turn = None
        self._set_state(AssistantState.IDLE)

    async def speak_reply(self, pieces: AsyncIterator[str], *, turn: int, t_ref: float, speak: bool = True) -> str:
        """Stream reply text into sentences and speak each as soon as it is complete.

        Args:
            pieces: Reply text as generated.
            turn: Turn id for events.
            t_ref: ``time.perf_counter()`` at the end of the utterance; the ``first_audio`` timing
                is measured from it.
            speak: Synthesise and play (False = text only).

        Returns:
            The whole reply text.
        """
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        splitter = SentenceSplitter()
        said: list[str] = []
        first = {"done": False}

        async def produce() -> None:
            try:
                async for piece in pieces:
                    for s in splitter.feed(piece):
                        await queue.put(s)
                for s in splitter.flush():
                    await queue.put(s)
            finally:
                await queue.put(None)

        async def consume() -> None:
            while (sentence := await queue.get()) is not None:
                said.append(sentence)
                self.bus.emit(Speak(text=sentence, turn=turn))
                if speak and self.tts is not None and self.sink is not None:
                    await self._speak_sentence(sentence, turn, t_ref, first)

        self._speaking_task = asyncio.current_task()
        self._reply_mentions_wake = False
        try:
            await asyncio.gather(produce(), consume())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            message = exc.message if isinstance(exc, AssistantError) else f"{type(exc).__name__}: {exc}"
            self.bus.emit(ErrorEvent(stage="reply", message=message, turn=turn))
            if not said:
                sorry = "Sorry, something went wrong while answering."
                said.append(sorry)
                self.bus.emit(Speak(text=sorry, turn=turn))
                if speak and self.tts is not None and self.sink is not None:
                    await self._speak_sentence(sorry, turn, t_ref, first)
        finally:
            self._speaking_task = None
        if speak and self.sink is not None:
            await self.sink.drain()
        self._speech_ended_at = time.monotonic()
        text = " ".join(said)
        self.bus.emit(Reply(text=text, turn=turn))
        return text

    async def _speak_sentence(self, sentence: str, turn: int, t_ref: float, first: dict) -> None:
        assert self.tts is not None and self.sink is not None
        self._set_state(AssistantState.SPEAKING, turn)
        words = set(re.findall(r"[a-z]+", sentence.lower()))
        if any(set(p.split()) & words - {"hey", "ok", "okay", "hi"} for p in self.wake_phrases):
            self._reply_mentions_wake = True
        t0 = time.perf_counter()
        chunks = await asyncio.to_thread(lambda: list(self.tts.synthesize(sentence)))
        synth_ms = (time.perf_counter() - t0) * 1000.0
        audio_s = sum(c.shape[0] for c in chunks) / self.tts.sample_rate
        self._timing("tts", synth_ms, turn, detail=f"{audio_s:.2f} s audio, rtf {synth_ms / 1000 / audio_s if audio_s else 0:.3f}")
        for chunk in chunks:
            if not first["done"]:
                first["done"] = True
                self._timing("tts_first_audio", synth_ms, turn)
                self._timing("first_audio", (time.perf_counter() - t_ref) * 1000.0, turn, detail="end of utterance → first reply audio")
            self.bus.emit(AudioOut(samples=chunk, sample_rate=self.tts.sample_rate, turn=turn))
            await self.sink.play(chunk, self.tts.sample_rate)
        pause = int(self.tts.sample_rate * self.config.tts.sentence_pause_ms / 1000)
        if pause:
            await self.sink.play(np.zeros(pause, dtype=np.int16), self.tts.sample_rate)

    # ------------------------------------------------------------------ asking and announcing

    async def listen_for_reply(self, timeout_s: float = 5.0) -> str:
        """Capture the user's next utterance (after a question) and return its transcript ("" if none).

        With a real-time source the frame loop keeps running and hands the utterance over; with a
        file read as fast as possible, the following audio is read here, in order.
        """
        if self.listener is None or self.asr is None or self._frames is None:
            return ""
        self.listener.capture(timeout_s)
        self._set_state(AssistantState.LISTENING)
        out = None
        if self.realtime:
            self._reply_waiter = asyncio.get_running_loop().create_future()
            try:
                out = await asyncio.wait_for(self._reply_waiter, timeout_s + self.config.endpoint.max_utterance_s)
            except asyncio.TimeoutError:
                out = None
            finally:
                self._reply_waiter = None
        else:
            async for frame in self._frames:
                res = self.listener.process(frame)
                if isinstance(res, (UtteranceEnd, NoSpeechTimeout)):
                    out = res
                    break
            else:
                out = self.listener.finish()
        self.listener.busy()
        if not isinstance(out, UtteranceEnd):
            return ""
        result = await asyncio.to_thread(self.asr.transcribe, out.audio)
        text = strip_wake_phrase(result.text, self.wake_phrases)
        self.bus.emit(FinalTranscript(text=text, turn=self._turn.id if self._turn else None))
        return text

    async def ask_yes_no(self, question: str, *, turn: int | None = None, timeout_s: float = 5.0) -> bool:
        """Say ``question`` and listen for yes or no. An unclear answer ("I'm not sure", "are you
        sure?") is asked about once more; no answer, or unclear twice, is no."""
        t = turn if turn is not None else (self._turn.id if self._turn else 0)
        for attempt in range(2):
            asked = question if attempt == 0 else f"Sorry, was that a yes or a no? {question}"
            if self.tts is not None and self.sink is not None:
                self.bus.emit(Speak(text=asked, turn=t))
                await self._speak_sentence(asked, t, time.perf_counter(), {"done": True})
                await self.sink.drain()
            answer = await self.listen_for_reply(timeout_s)
            parsed = parse_yes_no(answer)
            if parsed is not Answer.UNCLEAR or not answer.strip():
                return parsed is Answer.YES
        return False

    def announce(self, text: str) -> None:
        """Speak ``text`` when the assistant is next free (a timer going off)."""
        self._announcements.put_nowait(text)
        if self._announcer is None or self._announcer.done():
            self._announcer = asyncio.get_running_loop().create_task(self._announce_loop())

    async def _announce_loop(self) -> None:
        while not self._announcements.empty():
            text = await self._announcements.get()
            while self._turn is not None or self.state in (AssistantState.SPEAKING, AssistantState.THINKING, AssistantState.TRANSCRIBING):
                await asyncio.sleep(0.05)
            await self.say(text)

    async def interrupt(self, reason: str = "user") -> None:
        """Stop speaking at once and drop the reply in progress (barge-in, stop key)."""
        task = self._turn_task
        self.bus.emit(Interrupt(reason=reason, turn=self._turn.id if self._turn else None))
        if self.sink is not None:
            await self.sink.interrupt()
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._turn_task = None
        answering, self._answering = self._answering, None
        if answering is not None and task is not None:
            self.bus.emit(TurnFinished(ok=False, turn=answering.id))  # the interrupted turn ends here
        self._set_state(AssistantState.IDLE)
