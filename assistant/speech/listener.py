"""The ears' state machine: wake word → utterance capture → busy, over 20 ms frames.

Synchronous and deterministic (the pipeline calls it once per frame), so a recording always
gives the same events. Modes:

* ``WAKE``: only the VAD-gated wake stage runs (low power).
* ``CAPTURE``: after a wake word, or in a follow-up window: the endpointer collects the utterance.
* ``BUSY``: a turn is being answered; the wake stage keeps running so the wake word can barge in.

Every frame also goes into a ring buffer of recent audio, from which the wake window (for the
second pass) is cut and from which capture can be replayed (:meth:`Listener.rearm`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from ..audio.io import FRAME_SAMPLES, SAMPLE_RATE
from .endpoint import Endpointer, NoSpeechTimeout, Pause, SpeechStart, UtteranceEnd
from .vad import AudioRing
from .wake import WakeHit, WakeStage

__all__ = ["BargeIn", "Listener", "ListenerMode"]


class ListenerMode(enum.Enum):
    WAKE = "wake"
    CAPTURE = "capture"
    BUSY = "busy"


@dataclass(frozen=True)
class BargeIn:
    """The wake word was heard while a turn was being answered."""

    hit: WakeHit


@dataclass(frozen=True)
class ShortUtterance:
    """A short voiced stretch heard while a turn was being answered (maybe a spoken "stop")."""

    audio: np.ndarray
    """16 kHz mono int16."""


ListenerOutput = WakeHit | SpeechStart | Pause | UtteranceEnd | NoSpeechTimeout | BargeIn | ShortUtterance


class Listener:
    """Wake stage + endpointer + audio ring.

    Args:
        wake: The VAD-gated wake stage, or None: no wake word (its model is missing) — a turn
            starts only by push-to-talk (:meth:`capture`), and nothing barges in.
        endpointer: Utterance capture.
        ring_s: Seconds of recent audio kept (at least the wake window and a turn's ASR time).
        turn_model: Smart Turn (:class:`~.turn.SmartTurn`) when the endpointer detects turns, else None.
        text_model: The turn detector's text completeness model (:class:`~.turn.TextCompleteness`), or None.
    """

    def __init__(self, wake: WakeStage | None, endpointer: Endpointer, ring_s: float = 8.0, turn_model=None, text_model=None) -> None:
        self.wake = wake
        self.endpointer = endpointer
        self.turn_model = turn_model
        self.text_model = text_model
        """The turn detector's :class:`~.turn.TextCompleteness`, if any."""
        self.ring = AudioRing(ring_s)
        self.mode = ListenerMode.WAKE
        self.barge_in = True
        """Run the wake stage while busy (set False to ignore the wake word during replies)."""
        self.short_utterances = None
        """While busy, cut short voiced stretches out with this (``process(frame) -> audio | None``,
        ``reset()``; :class:`~assistant.engine.stopword.StopSegmenter`) and report them as
        :class:`ShortUtterance`; None: off."""

    @property
    def position(self) -> int:
        """Input samples seen."""
        return self.ring.total

    @property
    def audio_time_s(self) -> float:
        return self.ring.total / SAMPLE_RATE

    def process(self, frame: np.ndarray) -> ListenerOutput | None:
        """Feed one 20 ms frame of 16 kHz int16 audio."""
        self.ring.append(frame)
        if self.wake is None:  # push-to-talk only
            return self._capture_frame(frame) if self.mode is ListenerMode.CAPTURE else None
        if self.mode is ListenerMode.WAKE:
            hit = self.wake.process(frame)
            if hit is not None:
                self.capture()
            return hit
        if self.mode is ListenerMode.CAPTURE:
            self.wake.skip(frame)
            return self._capture_frame(frame)
        # BUSY: only a confident wake word barges in (the user talks over the assistant)
        if self.barge_in:
            self.wake.threshold_override = max(self.wake.config.threshold, self.wake.config.barge_in_threshold)
            hit = self.wake.process(frame)
            self.wake.threshold_override = None
            if hit is not None:
                return BargeIn(hit)
        else:
            self.wake.skip(frame)
        if self.short_utterances is not None:
            audio = self.short_utterances.process(frame)
            if audio is not None:
                return ShortUtterance(audio)
        return None

    def _capture_frame(self, frame: np.ndarray) -> ListenerOutput | None:
        out = self.endpointer.process(frame)
        if isinstance(out, UtteranceEnd):
            self.mode = ListenerMode.BUSY
            if self.short_utterances is not None:
                self.short_utterances.reset()
        elif isinstance(out, NoSpeechTimeout):
            self.mode = ListenerMode.WAKE
        return out

    def capture(self, timeout_s: float | None = None) -> None:
        """Start capturing an utterance now (after a wake word, a barge-in, or for a follow-up)."""
        self.mode = ListenerMode.CAPTURE
        self.endpointer.start(self.position, timeout_s)

    def rearm(self, since_position: int, timeout_s: float) -> ListenerOutput | None:
        """Capture again, replaying the audio heard since ``since_position``.

        Used when an utterance turned out to hold no words (a cough, a click): the audio that
        arrived meanwhile is fed to the endpointer again so nothing said is lost.
        """
        self.mode = ListenerMode.CAPTURE
        replay = self.ring.since(since_position)
        self.endpointer.start(self.position - replay.shape[0], timeout_s)
        last: ListenerOutput | None = None
        frame_len = FRAME_SAMPLES
        for i in range(0, replay.shape[0] - frame_len + 1, frame_len):
            out = self.endpointer.process(replay[i : i + frame_len])
            if out is not None and not isinstance(out, (SpeechStart, Pause)):
                self.mode = ListenerMode.BUSY if isinstance(out, UtteranceEnd) else ListenerMode.WAKE
                return out
            last = out or last
        return last

    def end_turn(self) -> UtteranceEnd | None:
        """The turn detector says the user has finished: the utterance so far (None if not capturing speech)."""
        if self.mode is not ListenerMode.CAPTURE:
            return None
        out = self.endpointer.end_now()
        if out is not None:
            self.mode = ListenerMode.BUSY
        return out

    def shorten_pause(self, ceiling_ms: int) -> UtteranceEnd | None:
        """The turn detector could not tell: end this pause after ``ceiling_ms`` of silence
        (:meth:`Endpointer.shorten_pause`); the utterance if that much has passed already."""
        if self.mode is not ListenerMode.CAPTURE:
            return None
        out = self.endpointer.shorten_pause(ceiling_ms)
        if out is not None:
            self.mode = ListenerMode.BUSY
        return out

    def busy(self) -> None:
        self.mode = ListenerMode.BUSY
        self.endpointer.stop()

    def idle(self) -> None:
        """Back to waiting for the wake word."""
        self.mode = ListenerMode.WAKE
        self.endpointer.stop()

    def finish(self) -> UtteranceEnd | None:
        """End of input: an utterance in progress is closed and returned."""
        if self.mode is ListenerMode.CAPTURE:
            out = self.endpointer.finish()
            if out is not None:
                self.mode = ListenerMode.BUSY
            return out
        return None
