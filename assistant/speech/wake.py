"""Wake word: a webrtcvad gate in front of openWakeWord, and an optional second pass.

The always-on part is only the VAD (a fraction of a millisecond per second of audio). The wake
models (openWakeWord: melspectrogram → speech embedding → a small classifier per wake word,
scoring every 80 ms) run only while the gate is open: from a voice onset, fed first with
``gate_preroll_ms`` of the audio before the onset, until ``gate_hangover_ms`` after the last voiced
frame. When the gate closes the models are reset, so stale context never leaks into the next
burst of speech.

A detection needs ``patience`` consecutive 80 ms scores at or above ``threshold``; after it fires a
model stays quiet for ``refractory_s``. Any number of wake models run on one shared front end.

The second pass (:class:`WakeVerifier`) transcribes the last ``window_s`` seconds with Whisper and
fuzzy-matches the wake phrase, the way phones confirm a tiny always-on detector with a bigger
model on the main CPU.
"""

from __future__ import annotations

import collections
import difflib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..audio.io import FRAME_SAMPLES, SAMPLE_RATE
from ..config import WakeConfig, WakeVerifyConfig
from ..errors import ModelError, require
from .asr import FULL_WINDOW_S
from .vad import AudioRing, Vad

if TYPE_CHECKING:
    from .asr import SpeechRecognizer

__all__ = ["WakeHit", "WakeStage", "WakeVerifier", "WakeWordModel", "phrase_from_model_name"]

OWW_CHUNK = 1280
"""openWakeWord scores every 1280 samples (80 ms at 16 kHz)."""
MIN_VOICED_S = 0.3
"""Voice the second pass needs in the wake window (a wake phrase is at least this long)."""


class WakeWordModel:
    """openWakeWord models on a shared feature front end (ONNX Runtime, one thread).

    Args:
        model_paths: ``.onnx`` wake models.
        features_dir: Folder with ``melspectrogram.onnx`` and ``embedding_model.onnx``.

    Raises:
        ModelError: A file is missing or is not a loadable ONNX model.
        MissingDependencyError: openwakeword is not installed.
    """

    def __init__(self, model_paths: Sequence[Path], features_dir: Path) -> None:
        require("openwakeword", "wake", "wake word detection")
        from openwakeword.model import Model  # noqa: PLC0415

        mel = Path(features_dir) / "melspectrogram.onnx"
        emb = Path(features_dir) / "embedding_model.onnx"
        for p in (mel, emb, *model_paths):
            if not Path(p).is_file():
                raise ModelError(f"wake model file {p} does not exist", hint="run `assistant models pull` for the wake models")
        try:
            self._model = Model(
                wakeword_models=[str(p) for p in model_paths],
                inference_framework="onnx",
                melspec_model_path=str(mel),
                embedding_model_path=str(emb),
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ModelError(
                f"cannot load wake models {[str(p) for p in model_paths]}: {exc}",
                hint="a file is corrupt; `assistant models verify` finds it, `assistant models pull NAME` fetches it again",
            ) from None
        self.names = list(self._model.models)

    def predict(self, chunk: np.ndarray) -> dict[str, float]:
        """Scores (0..1) of every wake model for one 1280-sample int16 chunk."""
        scores = self._model.predict(chunk)
        return {k: float(v) for k, v in scores.items()}

    def reset(self) -> None:
        """Forget all audio context.

        openWakeWord refills its feature buffer from ``np.random`` noise; the global generator is
        seeded for that call (and restored after), so the same audio always gives the same scores.
        """
        state = np.random.get_state()
        np.random.seed(0)
        try:
            self._model.reset()
        finally:
            np.random.set_state(state)


@dataclass(frozen=True)
class WakeHit:
    """A first-stage detection."""

    model: str
    score: float
    """Peak score over the frames that fired."""
    audio_time_s: float
    """Input position of the end of the 80 ms chunk that fired."""
    compute_ms: float
    """CPU time of the wake models for that chunk."""


@dataclass
class WakeStats:
    """What the wake stage did, for the low-power report."""

    frames: int = 0
    """20 ms frames seen."""
    chunks_scored: int = 0
    """80 ms chunks the wake models scored."""
    gate_openings: int = 0
    model_seconds: float = 0.0
    """Wall time spent in the wake models."""
    vad_seconds: float = 0.0


def phrase_from_model_name(name: str) -> str:
    """``"hey_jarvis_v0.1"`` → ``"hey jarvis"``."""
    base = re.sub(r"_v\d+(\.\d+)*$", "", Path(name).stem if name.endswith(".onnx") else name)
    return base.replace("_", " ").strip()


class WakeStage:
    """VAD-gated wake word detection over 20 ms frames.

    Args:
        model: The wake models.
        config: Thresholds, patience, refractory period and gate settings.
    """

    def __init__(self, model: WakeWordModel, config: WakeConfig) -> None:
        self.model = model
        self.config = config
        self.vad = Vad(config.gate_aggressiveness)
        self.gated = config.vad_gate
        self._open = not self.gated
        self._voiced_run = 0
        self._last_voice = 0
        self._preroll: collections.deque[np.ndarray] = collections.deque(
            maxlen=max(1, config.gate_preroll_ms // (1000 * FRAME_SAMPLES // SAMPLE_RATE))
        )
        self._pending: list[np.ndarray] = []
        self._above: dict[str, int] = {}
        self._peak: dict[str, float] = {}
        self._last_fire: dict[str, float] = {}
        self.position = 0
        """Input samples seen."""
        self.stats = WakeStats()
        self.enabled = True
        """When False, frames are only buffered (e.g. while the assistant itself speaks)."""
        self.threshold_override: float | None = None
        """A stricter threshold for a while (barge-in, while the assistant speaks), or None."""

    @property
    def gate_open(self) -> bool:
        return self._open

    def process(self, frame: np.ndarray) -> WakeHit | None:
        """Feed one 20 ms frame; returns a hit when a wake word fires."""
        self.position += frame.shape[0]
        self.stats.frames += 1
        if not self.gated:
            return self._feed(frame)
        t0 = time.perf_counter()
        voiced = self.vad.is_speech(frame)
        self.stats.vad_seconds += time.perf_counter() - t0
        if voiced:
            self._voiced_run += 1
            self._last_voice = self.position
        else:
            self._voiced_run = 0
        if not self._open:
            self._preroll.append(frame)
            if self._voiced_run >= 2:
                self._open = True
                self.stats.gate_openings += 1
                hit = None
                frames = list(self._preroll)
                self._preroll.clear()
                # replay the pre-roll (it already holds this frame), then run live
                for i, f in enumerate(frames):
                    h = self._feed(f, position=self.position - (len(frames) - 1 - i) * FRAME_SAMPLES)
                    hit = hit or h
                return hit
            return None
        hit = self._feed(frame)
        hangover = self.config.gate_hangover_ms * SAMPLE_RATE // 1000
        if self.position - self._last_voice > hangover and hit is None:
            self._close()
        return hit

    def _close(self) -> None:
        self._open = False
        self._pending.clear()
        self._above.clear()
        self._peak.clear()
        t0 = time.perf_counter()
        self.model.reset()
        self.stats.model_seconds += time.perf_counter() - t0

    def _feed(self, frame: np.ndarray, position: int | None = None) -> WakeHit | None:
        position = self.position if position is None else position
        self._pending.append(frame)
        if sum(f.shape[0] for f in self._pending) < OWW_CHUNK:
            return None
        chunk = np.concatenate(self._pending)
        self._pending = []
        t0 = time.perf_counter()
        scores = self.model.predict(chunk[:OWW_CHUNK])
        compute = time.perf_counter() - t0
        self.stats.model_seconds += compute
        self.stats.chunks_scored += 1
        if not self.enabled:
            return None
        now_s = position / SAMPLE_RATE
        hit = None
        threshold = self.threshold_override if self.threshold_override is not None else self.config.threshold
        for name, score in scores.items():
            if score >= threshold:
                self._above[name] = self._above.get(name, 0) + 1
                self._peak[name] = max(self._peak.get(name, 0.0), score)
            else:
                self._above[name] = 0
                self._peak[name] = 0.0
                continue
            if self._above[name] < self.config.patience:
                continue
            last = self._last_fire.get(name)
            if last is not None and now_s - last < self.config.refractory_s:
                continue
            self._last_fire[name] = now_s
            if hit is None or score > hit.score:
                hit = WakeHit(model=name, score=self._peak[name], audio_time_s=now_s, compute_ms=compute * 1000.0)
        return hit

    def skip(self, frame: np.ndarray) -> None:
        """Advance over a frame without scoring it (while an utterance is being captured).

        The gate closes (and the models reset) so the next wake search starts clean.
        """
        self.position += frame.shape[0]
        self.stats.frames += 1
        self._preroll.append(frame)
        self._voiced_run = 0
        if self._open and self.gated:
            self._close()
        elif not self.gated:
            self._pending.clear()


@dataclass
class WakeVerifier:
    """Second pass: transcribe the wake window and fuzzy-match the wake phrase.

    Args:
        asr: The speech recognizer (Whisper) used for the check.
        config: Phrases, minimum similarity and window length.
        model_names: Wake model names, from which phrases are derived when none are configured.
    """

    asr: "SpeechRecognizer"
    config: WakeVerifyConfig
    model_names: Sequence[str] = ()
    phrases: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.phrases = [p.lower() for p in self.config.phrases] or [phrase_from_model_name(n) for n in self.model_names]

    def similarity(self, text: str) -> float:
        """Best match (0..1) between any configured phrase and any same-length run of words in ``text``."""
        words = re.findall(r"[a-z']+", text.lower())
        best = 0.0
        for phrase in self.phrases:
            n = len(phrase.split())
            for i in range(max(1, len(words) - n + 1)):
                cand = " ".join(words[i : i + n])
                best = max(best, difflib.SequenceMatcher(None, cand, phrase).ratio())
        return best

    def verify(self, window: np.ndarray) -> tuple[bool, str, float]:
        """Check a wake window (16 kHz int16).

        The window must hold at least :data:`MIN_VOICED_S` of voice (webrtcvad), and Whisper runs
        unprompted: prompting it with the wake phrase makes it "hear" the phrase in silence.

        Returns:
            (accepted, what was heard, compute ms).
        """
        t0 = time.perf_counter()
        vad = Vad(2)
        frames = [window[i : i + FRAME_SAMPLES] for i in range(0, window.shape[0] - FRAME_SAMPLES + 1, FRAME_SAMPLES)]
        voiced_s = sum(vad.is_speech(f) for f in frames) * FRAME_SAMPLES / SAMPLE_RATE
        if voiced_s < MIN_VOICED_S:
            return False, "", (time.perf_counter() - t0) * 1000.0
        result = self.asr.transcribe(window, initial_prompt="", window_s=FULL_WINDOW_S)  # tuned on Whisper's full window
        ms = (time.perf_counter() - t0) * 1000.0
        return self.similarity(result.text) >= self.config.min_similarity, result.text, ms


def wake_window(ring: AudioRing, seconds: float) -> np.ndarray:
    """The last ``seconds`` of audio from a ring buffer."""
    return ring.last(int(seconds * SAMPLE_RATE))
