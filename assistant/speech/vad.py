"""Voice activity detection with webrtcvad, and a fixed-size audio ring buffer."""

from __future__ import annotations

import numpy as np
import webrtcvad

from ..audio.io import SAMPLE_RATE

__all__ = ["AudioRing", "Vad"]


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

    def is_speech(self, frame: np.ndarray) -> bool:
        """True if the 10/20/30 ms int16 frame holds voice."""
        return self._vad.is_speech(frame.tobytes(), SAMPLE_RATE)


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
