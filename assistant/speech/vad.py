"""Voice activity detection (webrtcvad, Silero VAD) and a fixed-size audio ring buffer.

Two detectors, for two jobs (measured in ``benchmarks`` section ``vad``):

* :class:`Vad` — webrtcvad, a GMM: ~0.2 ms of CPU per audio second. The always-on gate in front of
  the wake word, where cost matters more than precision.
* :class:`SileroVad` — Silero VAD v6 (MIT, the ONNX model faster-whisper ships in its package): a
  small neural network, far fewer false "voice" frames on room noise and music. It decides where
  an utterance ends (the endpointer), which runs only after a wake word.
"""

from __future__ import annotations

import functools

import numpy as np
import webrtcvad

from ..audio.io import SAMPLE_RATE

__all__ = ["AudioRing", "SileroVad", "Vad", "make_vad"]


class Vad:
    """webrtcvad (the WebRTC project's GMM voice detector) on 16 kHz int16 frames.

    Args:
        aggressiveness: 0 (most lenient, more false voice) .. 3 (strictest).

    It accepts frames of 10, 20 or 30 ms only; it costs about 0.2 ms of CPU per second of audio
    on a desktop core (measured by ``benchmarks``), which is what makes it a good always-on gate.
    """

    def __init__(self, aggressiveness: int = 2) -> None:
        if not 0 <= aggressiveness <= 3:
            raise ValueError("VAD aggressiveness must be 0..3")
        self._vad = webrtcvad.Vad(aggressiveness)
        self.aggressiveness = aggressiveness

    def reset(self) -> None:
        """webrtcvad keeps no state worth clearing between utterances."""

    def is_speech(self, frame: np.ndarray) -> bool:
        """True if the 10/20/30 ms int16 frame holds voice."""
        return self._vad.is_speech(frame.tobytes(), SAMPLE_RATE)


@functools.lru_cache(maxsize=1)
def _silero_session():
    """The Silero model's onnxruntime session, loaded once per process and shared: every
    :class:`SileroVad` (one per endpointer: the device's, each satellite's) keeps its own state."""
    import os  # noqa: PLC0415

    from faster_whisper.utils import get_assets_path  # noqa: PLC0415
    from faster_whisper.vad import SileroVADModel  # noqa: PLC0415

    return SileroVADModel(os.path.join(get_assets_path(), "silero_vad_v6.onnx")).session


class SileroVad:
    """Silero VAD v6 on a stream of 16 kHz int16 frames of any length.

    The model judges 512-sample windows (32 ms), each with the 64 samples before it as context and
    the recurrent state carried from window to window — as faster-whisper runs it over a whole file
    (``faster_whisper.vad.SileroVADModel``, whose model file this loads; the streamed
    probabilities equal its batched ones); a 20 ms frame's answer is that of the last complete window.

    Args:
        threshold: Speech probability at or above which a window is voice (Silero's default 0.5).

    Raises:
        ModelError: The model file is missing from the faster-whisper package, or cannot be loaded.
    """

    WINDOW = 512
    CONTEXT = 64

    def __init__(self, threshold: float = 0.5) -> None:
        from ..errors import ModelError  # noqa: PLC0415

        try:
            self._session = _silero_session()
        except Exception as exc:  # noqa: BLE001 - onnxruntime and the package raise their own types
            raise ModelError(f"Silero VAD cannot be loaded from faster-whisper's package: {exc}",
                             hint='reinstall faster-whisper, or set endpoint.vad = "webrtc"') from None
        self.threshold = threshold
        self._buf = np.zeros(0, dtype=np.float32)
        self._context = np.zeros(self.CONTEXT, dtype=np.float32)
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self.probability = 0.0
        """The last window's speech probability."""

    def reset(self) -> None:
        self._buf = np.zeros(0, dtype=np.float32)
        self._context = np.zeros(self.CONTEXT, dtype=np.float32)
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self.probability = 0.0

    def is_speech(self, frame: np.ndarray) -> bool:
        """True if the latest complete 32 ms window holds voice."""
        self._buf = np.concatenate([self._buf, frame.astype(np.float32) / 32768.0])
        while self._buf.shape[0] >= self.WINDOW:
            window, self._buf = self._buf[: self.WINDOW], self._buf[self.WINDOW :]
            x = np.concatenate([self._context, window])[None, :]
            out, self._h, self._c = self._session.run(None, {"input": x, "h": self._h, "c": self._c})
            self.probability = float(np.asarray(out).ravel()[-1])
            self._context = window[-self.CONTEXT :]
        return self.probability >= self.threshold


def make_vad(kind: str, aggressiveness: int = 2, threshold: float = 0.5) -> "Vad | SileroVad":
    """``"webrtc"`` → :class:`Vad`; ``"silero"`` → :class:`SileroVad` (webrtcvad, with a warning, if it cannot load)."""
    if kind == "silero":
        from ..errors import ModelError  # noqa: PLC0415

        try:
            return SileroVad(threshold)
        except ModelError as exc:
            import logging  # noqa: PLC0415

            logging.getLogger(__name__).warning("%s; using webrtcvad", exc.message)
    return Vad(aggressiveness)


class AudioRing:
    """The last ``seconds`` of 16 kHz int16 audio, with the input position of its end.

    Args:
        seconds: Capacity.
    """

    def __init__(self, seconds: float) -> None:
        self.capacity = max(1, int(seconds * SAMPLE_RATE))
        self._buf = np.zeros(self.capacity, dtype=np.int16)
        self._write = 0
        self.total = 0
        """Samples ever written (its end's input position)."""

    def append(self, frame: np.ndarray) -> None:
        n = frame.shape[0]
        if n >= self.capacity:
            self._buf[:] = frame[-self.capacity :]
            self._write = 0
        else:
            end = self._write + n
            if end <= self.capacity:
                self._buf[self._write : end] = frame
            else:
                first = self.capacity - self._write
                self._buf[self._write :] = frame[:first]
                self._buf[: n - first] = frame[first:]
            self._write = end % self.capacity
        self.total += n

    def last(self, samples: int) -> np.ndarray:
        """The most recent ``samples`` (fewer if less audio was written), oldest first."""
        samples = min(samples, self.capacity, self.total)
        if samples <= 0:
            return np.zeros(0, dtype=np.int16)
        start = (self._write - samples) % self.capacity
        if start < self._write:
            return self._buf[start : self._write].copy()
        return np.concatenate([self._buf[start:], self._buf[: self._write]])

    def since(self, position: int) -> np.ndarray:
        """Audio from input sample ``position`` to now (clipped to what the ring holds)."""
        return self.last(self.total - position)
