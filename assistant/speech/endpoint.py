"""Endpointing: find the start and the end of the utterance that follows the wake word.

A voice decision per 20 ms frame (webrtcvad, or Silero VAD: ``endpoint.vad``) drives a small state machine:

* **waiting** for speech: ``min_speech_ms`` of consecutive voiced frames start the utterance; it
  begins ``pre_roll_ms`` before that run, so the first syllable is never cut. Nobody speaking
  for ``no_speech_timeout_s`` ends the wait.
* **in speech**: ``trailing_silence_ms`` of consecutive unvoiced frames end the utterance (the
  trailing silence is kept, it costs Whisper nothing), as does reaching ``max_utterance_s``.

With a **turn detector** (``detect_turns=True``) a pause of ``pause_ms`` emits a :class:`Pause`
instead: the caller asks the detector (:mod:`assistant.speech.turn`) and ends the turn with
:meth:`Endpointer.end_now` when the user has finished; ``turn_ceiling_ms`` of silence ends it
whatever the detector said, ``unsure_ceiling_ms`` when the detector could not tell
(:meth:`Endpointer.shorten_pause`).
"""

from __future__ import annotations

import collections
import enum
from dataclasses import dataclass

import numpy as np

from ..audio.io import FRAME_MS, SAMPLE_RATE
from ..config import EndpointConfig
from .vad import make_vad

__all__ = ["Endpointer", "EndpointState", "NoSpeechTimeout", "Pause", "SpeechStart", "UtteranceEnd"]


class EndpointState(enum.Enum):
    IDLE = "idle"
    WAITING = "waiting"
    IN_SPEECH = "in_speech"


@dataclass(frozen=True)
class SpeechStart:
    audio_time_s: float
    """Input position where the voiced run that started the utterance began."""


@dataclass(frozen=True)
class UtteranceEnd:
    audio: np.ndarray
    """The utterance, 16 kHz mono int16, pre-roll included."""
    audio_time_s: float
    """Input position at which the end was declared."""
    reason: str
    """``"silence"`` (the fixed trailing silence, or the ceiling with a turn detector),
    ``"unsure_pause"`` (``unsure_ceiling_ms`` with a turn detector that could not tell),
    ``"end_of_turn"`` (the turn detector), ``"max_length"`` or ``"end_of_input"``."""
    trailing_silence_ms: float
    """Silence waited before declaring the end (the endpointing latency), ms of audio."""

    @property
    def duration_s(self) -> float:
        return self.audio.shape[0] / SAMPLE_RATE


@dataclass(frozen=True)
class Pause:
    """The user paused ``pause_ms`` mid-utterance: time to ask the turn detector."""

    audio_time_s: float
    """Input position of the end of the pause so far."""
    index: int
    """Which pause of the utterance (1, 2, …); a verdict about an older pause is stale."""
    samples: int
    """Samples of the utterance captured at the pause."""


@dataclass(frozen=True)
class NoSpeechTimeout:
    audio_time_s: float


class Endpointer:
    """Utterance capture after a wake word (or in a follow-up window).

    Args:
        config: Silence, length and timeout settings.
        detect_turns: Emit :class:`Pause` at ``pause_ms`` and wait up to ``turn_ceiling_ms``
            (a turn detector decides); False: end at ``trailing_silence_ms``.
    """

    def __init__(self, config: EndpointConfig, detect_turns: bool = False) -> None:
        self.config = config
        self.detect_turns = detect_turns
        self._pause = max(1, config.pause_ms // FRAME_MS)
        self._pauses = 0
        self.vad = make_vad(config.vad, config.vad_aggressiveness, config.vad_threshold)
        self.state = EndpointState.IDLE
        pre_frames = max(1, config.pre_roll_ms // FRAME_MS)
        self._min_speech = max(1, config.min_speech_ms // FRAME_MS)
        self._trailing = max(1, (config.turn_ceiling_ms if detect_turns else config.trailing_silence_ms) // FRAME_MS)
        self._ceiling = self._trailing
        """Silence frames that end the utterance in the current pause (:meth:`shorten_pause`)."""
        self._max_frames = int(config.max_utterance_s * 1000 // FRAME_MS)
        self._pre: collections.deque[np.ndarray] = collections.deque(maxlen=pre_frames + self._min_speech)
        self._frames: list[np.ndarray] = []
        self._captured = 0
        self._voiced_run = 0
        self._silence_run = 0
        self._position = 0
        self._deadline = 0
        self._timeout_frames = 0

    def start(self, position: int, timeout_s: float | None = None) -> None:
        """Begin waiting for speech at input sample ``position``.

        Args:
            position: Current input position, samples.
            timeout_s: No-speech timeout; None = the configured one.
        """
        self.state = EndpointState.WAITING
        self.vad.reset()
        self._pre.clear()
        self._frames = []
        self._voiced_run = self._silence_run = 0
        self._pauses = 0
        self._ceiling = self._trailing
        self._position = position
        timeout = self.config.no_speech_timeout_s if timeout_s is None else timeout_s
        self._deadline = position + int(timeout * SAMPLE_RATE)

    @property
    def silence_ms(self) -> int:
        """Trailing silence so far in the utterance, ms (0 while the user speaks)."""
        return self._silence_run * FRAME_MS if self.state is EndpointState.IN_SPEECH else 0

    @property
    def captured_samples(self) -> int:
        """Samples of the utterance captured so far."""
        return self._captured if self.state is EndpointState.IN_SPEECH else 0

    @property
    def pause_index(self) -> int:
        """The number of the current pause (0 before the first; a verdict for another is stale)."""
        return self._pauses

    @property
    def in_pause(self) -> bool:
        """In speech, and silent for at least ``pause_ms``."""
        return self.state is EndpointState.IN_SPEECH and self._silence_run >= self._pause

    def current_audio(self) -> np.ndarray:
        """The utterance so far (for partial transcripts)."""
        return np.concatenate(self._frames) if self._frames else np.zeros(0, dtype=np.int16)

    def stop(self) -> None:
        self.state = EndpointState.IDLE
        self._frames = []
        self._pre.clear()

    def process(self, frame: np.ndarray) -> SpeechStart | UtteranceEnd | Pause | NoSpeechTimeout | None:
        """Feed one 20 ms frame (only while waiting or in speech)."""
        if self.state is EndpointState.IDLE:
            return None
        self._position += frame.shape[0]
        voiced = self.vad.is_speech(frame)
        if self.state is EndpointState.WAITING:
            self._pre.append(frame)
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run >= self._min_speech:
                self.state = EndpointState.IN_SPEECH
                self._frames = list(self._pre)
                self._captured = sum(f.shape[0] for f in self._frames)
                self._silence_run = 0
                start = self._position - self._voiced_run * frame.shape[0]
                return SpeechStart(audio_time_s=start / SAMPLE_RATE)
            if self._position >= self._deadline:
                self.stop()
                return NoSpeechTimeout(audio_time_s=self._position / SAMPLE_RATE)
            return None
        self._frames.append(frame)
        self._captured += frame.shape[0]
        self._silence_run = 0 if voiced else self._silence_run + 1
        if voiced:
            self._ceiling = self._trailing
        if self._silence_run >= self._ceiling:
            return self._end("silence" if self._ceiling == self._trailing else "unsure_pause")
        if len(self._frames) >= self._max_frames:
            return self._end("max_length")
        if self.detect_turns and self._silence_run == self._pause:
            self._pauses += 1
            return Pause(audio_time_s=self._position / SAMPLE_RATE, index=self._pauses, samples=self._captured)
        return None

    def shorten_pause(self, ceiling_ms: int) -> UtteranceEnd | None:
        """End the current pause after ``ceiling_ms`` of silence instead of ``turn_ceiling_ms`` (the
        turn detector could not tell; ``endpoint.unsure_ceiling_ms``); speech resets it. Returns
        the utterance, ended now, when that much silence has already passed (reason ``"unsure_pause"``);
        else None. ``ceiling_ms`` ≤ 0 changes nothing."""
        if self.state is not EndpointState.IN_SPEECH or self._silence_run == 0 or ceiling_ms <= 0:
            return None
        self._ceiling = min(self._trailing, max(1, ceiling_ms // FRAME_MS))
        return self._end("unsure_pause") if self._silence_run >= self._ceiling else None

    def end_now(self, reason: str = "end_of_turn") -> UtteranceEnd | None:
        """The turn detector says the user has finished: close the utterance now (None when not in speech)."""
        if self.state is not EndpointState.IN_SPEECH:
            return None
        return self._end(reason)

    def finish(self) -> UtteranceEnd | None:
        """The input ended: close an utterance in progress (reason ``"end_of_input"``)."""
        if self.state is EndpointState.IN_SPEECH:
            return self._end("end_of_input")
        self.stop()
        return None

    def _end(self, reason: str) -> UtteranceEnd:
        audio = np.concatenate(self._frames) if self._frames else np.zeros(0, dtype=np.int16)
        waited = self._silence_run * FRAME_MS
        self.stop()
        return UtteranceEnd(audio=audio, audio_time_s=self._position / SAMPLE_RATE, reason=reason, trailing_silence_ms=float(waited))
