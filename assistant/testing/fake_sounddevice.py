"""A stand-in for the ``sounddevice`` module, for machines without a sound card.

It is the only fake in the speech path: PortAudio's callbacks are driven by threads that feed a
recording as "microphone" input at real-time pace and collect what is "played". Everything above
the device boundary (resampling, framing, buffering, barge-in) runs for real.

Usage::

    sd = FakeSoundDevice(mic_audio=samples_48k, mic_rate=48000, refuse_rates={16000})
    source = MicrophoneSource(sd=sd)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

__all__ = ["FakeSoundDevice", "PortAudioError"]


class PortAudioError(Exception):
    """What sounddevice raises for device errors."""


@dataclass
class FakeSoundDevice:
    """A fake sound card with one microphone (device 0) and one speaker (device 1).

    Args:
        mic_audio: Int16 samples the microphone "hears", at ``mic_rate``.
        mic_rate: The microphone's native/default rate.
        speaker_rate: The speaker's default rate.
        refuse_rates: Rates the devices refuse (raises PortAudioError like a real device).
        speed: Playback/capture speed multiplier (1.0 = real time).
    """

    mic_audio: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    mic_rate: int = 48000
    speaker_rate: int = 48000
    refuse_rates: set[int] = field(default_factory=set)
    speed: float = 1.0
    played: list[np.ndarray] = field(default_factory=list)
    unplug_after_s: float | None = None
    """The microphone stops delivering audio after this long (unplugged)."""

    PortAudioError = PortAudioError

    def __post_init__(self) -> None:
        self.default = SimpleNamespace(device=[0, 1])

    def query_devices(self):
        return [
            {"name": "Fake USB Microphone", "hostapi": 0, "max_input_channels": 1, "max_output_channels": 0, "default_samplerate": float(self.mic_rate)},
            {"name": "Fake Speaker", "hostapi": 0, "max_input_channels": 0, "max_output_channels": 2, "default_samplerate": float(self.speaker_rate)},
        ]

    def query_hostapis(self):
        return [{"name": "ALSA"}]

    def InputStream(self, *, device, channels, samplerate, dtype, blocksize, callback):  # noqa: N802
        if samplerate in self.refuse_rates:
            raise PortAudioError(f"Error opening InputStream: Invalid sample rate [PaErrorCode -9997] ({samplerate})")
        return _FakeInput(self, samplerate, blocksize, callback)

    def OutputStream(self, *, device, channels, samplerate, dtype, blocksize, callback):  # noqa: N802
        if samplerate in self.refuse_rates:
            raise PortAudioError(f"Error opening OutputStream: Invalid sample rate [PaErrorCode -9997] ({samplerate})")
        return _FakeOutput(self, samplerate, blocksize, callback)

    @property
    def played_audio(self) -> np.ndarray:
        return np.concatenate(self.played) if self.played else np.zeros(0, dtype=np.int16)


class _FakeInput:
    def __init__(self, card: FakeSoundDevice, rate: int, blocksize: int, callback) -> None:
        from ..audio.io import resample  # noqa: PLC0415

        self.audio = resample(card.mic_audio, card.mic_rate, rate) if rate != card.mic_rate else card.mic_audio
        self.rate, self.blocksize, self.callback, self.card = rate, blocksize, callback, card
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pos, t0 = 0, time.monotonic()
        while not self._stop.is_set():
            if self.card.unplug_after_s is not None and time.monotonic() - t0 > self.card.unplug_after_s:
                return  # like PortAudio after the device is gone: callbacks just stop
            block = self.audio[pos : pos + self.blocksize]
            if block.shape[0] < self.blocksize:
                block = np.pad(block, (0, self.blocksize - block.shape[0]))
            pos += self.blocksize
            self.callback(block.reshape(-1, 1), self.blocksize, None, None)
            due = t0 + pos / self.rate / self.card.speed
            time.sleep(max(0.0, due - time.monotonic()))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()


class _FakeOutput:
    def __init__(self, card: FakeSoundDevice, rate: int, blocksize: int, callback) -> None:
        self.card, self.rate, self.blocksize, self.callback = card, rate, blocksize, callback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0, n = time.monotonic(), 0
        while not self._stop.is_set():
            out = np.zeros((self.blocksize, 1), dtype=np.int16)
            self.callback(out, self.blocksize, None, None)
            if np.any(out):
                self.card.played.append(out[:, 0].copy())
            n += self.blocksize
            due = t0 + n / self.rate / self.card.speed
            time.sleep(max(0.0, due - time.monotonic()))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
