"""The speaker: reply text → sentences → piper → the sink, as its own cancellable task.

:meth:`Speaker.speak` takes the reply as it is generated, cuts it into sentences
(:class:`~assistant.speech.tts.SentenceSplitter`) and synthesises and plays each as soon as it is
complete, so the first sentence plays while the rest is still being written. It runs in a task of
its own: :meth:`Speaker.interrupt` (barge-in, the Esc key, "stop", an API cancel) stops playback
and cancels that task — and with it the generation feeding it — at once, not at the end of the
sentence.

A sink that stops playing (a lost Bluetooth speaker) never hangs a turn: waiting for playback to
finish is bounded by the audio queued plus :data:`DRAIN_MARGIN_S`; after that the sink is dropped
and, if a ``reopen`` callback was given, opened again (the way the microphone is).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import AsyncIterator, Callable

import numpy as np

from ..audio.io import AudioSink
from ..bus import EventBus
from ..config import TtsConfig
from ..errors import AssistantError
from ..events import AssistantState, AudioOut, ErrorEvent, Reply, Speak, StageTiming
from ..speech.tts import SentenceSplitter, SpeechSynthesizer, earcon
from .stopword import reply_words

__all__ = ["DRAIN_MARGIN_S", "Speaker"]

log = logging.getLogger(__name__)

DRAIN_MARGIN_S = 3.0
"""Seconds past the end of the queued audio after which a sink that has not finished is given up on."""

SORRY = "Sorry, something went wrong while answering."


class Speaker:
    """One audio output (the device's speaker, or a Wyoming satellite).

    Args:
        tts: The voice, or None for text-only replies.
        sink: Where audio goes, or None for text-only replies.
        bus: Where Speak / AudioOut / Reply / StageTiming events go.
        config: Sentence pause.
        wake_phrases: Wake phrases; a reply that says one is remembered (own-voice protection).
        set_state: Called with the new state and turn when speaking starts.
        reopen: Awaited when the sink stops playing; returns a fresh sink (or None: text only from then on).
    """

    def __init__(self, tts: SpeechSynthesizer | None, sink: AudioSink | None, bus: EventBus, config: TtsConfig,
                 wake_phrases: list[str] | None = None, set_state: Callable[[AssistantState, int | None], None] | None = None,
                 reopen: Callable[[], AudioSink | None] | None = None) -> None:
        self.tts = tts
        self.sink = sink
        self.bus = bus
        self.config = config
        self.wake_phrases = wake_phrases or []
        self.set_state = set_state or (lambda state, turn: None)
        """Called with the new state and turn when speaking starts (the voice loop's state)."""
        self.reopen = reopen
        self._task: asyncio.Task | None = None
        self._queued_s = 0.0
        self.chunks_played = 0
        """Audio chunks handed to the sink so far (the earcon checks whether a reply has started)."""
        self.mentions_wake = False
        """The reply being spoken (or just spoken) says a wake phrase."""
        self.reply_words: set[str] = set()
        """Words of the reply being spoken (or just spoken): what its echo can contain."""
        self.ended_at = 0.0
        """``time.monotonic()`` when the last reply finished playing."""
        self.stalls = 0
        """Times the sink stopped playing and was given up on."""

    @property
    def can_speak(self) -> bool:
        return self.tts is not None and self.sink is not None

    @property
    def speaking(self) -> bool:
        return self._task is not None and not self._task.done()

    # ------------------------------------------------------------------ speaking a reply

    async def speak(self, pieces: AsyncIterator[str], *, turn: int, t_ref: float, voice: bool = True) -> str:
        """Speak a reply as it is generated; returns its whole text (what was said before an interrupt).

        Args:
            pieces: Reply text as generated.
            turn: Turn id for events.
            t_ref: ``time.perf_counter()`` the ``first_audio`` timing is measured from.
            voice: Synthesise and play (False: text only).

        Raises:
            asyncio.CancelledError: Interrupted; the text said so far is lost to the caller, but
                the Reply event still reports it.
        """
        said: list[str] = []
        self.mentions_wake = False
        self.reply_words = set()
        self._task = asyncio.current_task()
        try:
            await self._speak(pieces, turn, t_ref, voice and self.can_speak, said)
        finally:
            self._task = None
            self.ended_at = time.monotonic()
            self.bus.emit(Reply(text=" ".join(said), turn=turn))
        return " ".join(said)

    async def _speak(self, pieces: AsyncIterator[str], turn: int, t_ref: float, voice: bool, said: list[str]) -> None:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        splitter = SentenceSplitter(self.config.first_clause_words)
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
                if voice:
                    await self._sentence(sentence, turn, t_ref, first)

        try:
            await asyncio.gather(produce(), consume())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the turn ends with an apology, never a dead speaker
            message = exc.message if isinstance(exc, AssistantError) else f"{type(exc).__name__}: {exc}"
            self.bus.emit(ErrorEvent(stage="reply", message=message, turn=turn))
            log.warning("reply failed: %s", message)
            if not said:
                said.append(SORRY)
                self.bus.emit(Speak(text=SORRY, turn=turn))
                if voice:
                    await self._sentence(SORRY, turn, t_ref, first)
        if voice:
            await self.drain(turn)

    async def say(self, text: str, *, turn: int | None) -> None:
        """Say one sentence now (a question) and wait until it has been played."""
        self.bus.emit(Speak(text=text, turn=turn))
        if self.can_speak:
            await self._sentence(text, turn, time.perf_counter(), {"done": True})
            await self.drain(turn)

    async def _sentence(self, sentence: str, turn: int | None, t_ref: float, first: dict) -> None:
        assert self.tts is not None
        if self.sink is None:
            return
        self.set_state(AssistantState.SPEAKING, turn)
        words = set(re.findall(r"[a-z]+", sentence.lower()))
        if any(set(p.split()) & words - {"hey", "ok", "okay", "hi"} for p in self.wake_phrases):
            self.mentions_wake = True
        self.reply_words |= reply_words(sentence)
        t0 = time.perf_counter()
        rate = self.tts.sample_rate
        samples = 0
        async for chunk in self.tts.pieces(sentence):
            samples += chunk.shape[0]
            if not first["done"]:
                first["done"] = True
                self.bus.emit(StageTiming(stage="tts_first_audio", ms=round((time.perf_counter() - t0) * 1000.0, 2), turn=turn))
                self.bus.emit(StageTiming(stage="first_audio", ms=round((time.perf_counter() - t_ref) * 1000.0, 2), turn=turn,
                                          detail="end of utterance → first reply audio"))
            self.bus.emit(AudioOut(samples=chunk, sample_rate=rate, turn=turn))
            await self._play(chunk, rate)
        synth_ms = (time.perf_counter() - t0) * 1000.0
        audio_s = samples / rate
        self.bus.emit(StageTiming(stage="tts", ms=round(synth_ms, 2), turn=turn,
                                  detail=f"{audio_s:.2f} s audio, rtf {synth_ms / 1000 / audio_s if audio_s else 0:.3f} (synthesis and queueing)"))
        pause = int(rate * self.config.sentence_pause_ms / 1000)
        if pause:
            await self._play(np.zeros(pause, dtype=np.int16), rate)

    async def earcon(self, after_s: float = 0.0) -> None:
        """Play the earcon (the "I heard you" tone), after ``after_s`` seconds only if no reply
        audio has started meanwhile."""
        if not self.can_speak:
            return
        played = self.chunks_played
        if after_s > 0:
            await asyncio.sleep(after_s)
            if self.chunks_played != played:
                return
        assert self.tts is not None and self.sink is not None
        await self.sink.play(earcon(self.tts.sample_rate), self.tts.sample_rate)

    async def _play(self, samples: np.ndarray, rate: int) -> None:
        if self.sink is None:
            return
        self.chunks_played += 1
        self._queued_s += samples.shape[0] / rate
        await self.sink.play(samples, rate)

    async def drain(self, turn: int | None = None) -> None:
        """Wait until what was queued has been played — at most that long plus :data:`DRAIN_MARGIN_S`."""
        sink = self.sink
        if sink is None:
            return
        limit = self._queued_s + DRAIN_MARGIN_S
        self._queued_s = 0.0
        try:
            await asyncio.wait_for(sink.drain(), limit)
        except asyncio.TimeoutError:
            if sink is not self.sink:  # swapped for another while it played (the devices were re-read)
                return
            self.stalls += 1
            self.bus.emit(ErrorEvent(stage="speaker", message=f"the speaker stopped playing (nothing for {limit:.0f} s)",
                                     hint="check the speaker; it is being opened again", turn=turn))
            log.error("the speaker stopped playing; reopening it")
            await self._replace_sink()

    async def _replace_sink(self) -> None:
        old, self.sink = self.sink, None
        if old is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.interrupt(), 2.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.close(), 2.0)
        if self.reopen is not None:
            try:
                self.sink = await self.reopen()
            except Exception as exc:  # noqa: BLE001
                log.error("cannot reopen the speaker: %s", exc)
                self.sink = None

    # ------------------------------------------------------------------ stopping

    async def interrupt(self) -> None:
        """Stop at once: drop queued audio and cancel the reply being spoken (and its generation)."""
        task = self._task
        if self.sink is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.sink.interrupt(), 2.0)
        self._queued_s = 0.0
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
