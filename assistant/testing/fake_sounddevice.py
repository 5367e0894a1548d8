"""A stand-in for the ``sounddevice`` module, for machines without a sound card.

It is the only fake in the speech path: PortAudio's callbacks are driven by threads that feed a
recording as "microphone" input at real-time pace and collect what is "played". Everything above
the device boundary (resampling, framing, buffering, barge-in) runs for real.

It behaves like PortAudio where the assistant depends on it: the device list is read once, at
initialisation (``_initialize``), so a microphone plugged in later is only seen after
``_terminate()`` + ``_initialize()``, which also stops every open stream; an unplugged microphone's
stream just stops calling back; a hung speaker stops calling back and its ``stop()`` blocks; a
wedged card's ``InputStream``/``OutputStream`` block when opened.

Usage::

    sd = FakeSoundDevice(mic_audio=samples_48k, mic_rate=48000, refuse_rates={16000})
    source = MicrophoneSource(sd=sd)
    sd.say(command_16k)          # more "speech" into the live microphone
    sd.unplug(); sd.plug()       # the USB microphone goes and comes back
    sd.block_speaker(); sd.unblock_speaker()
    sd.wedge(); sd.unwedge()     # opening a stream blocks until unwedged
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
        self.mic_present = True
        self.speaker_blocked = threading.Event()
        self.wedged = threading.Event()
        self.initializations = 0
        self._live: list[np.ndarray] = []
        self._live_lock = threading.Lock()
        self._streams: list[_FakeInput | _FakeOutput] = []
        self._initialize()

    # PortAudio's device list is a snapshot taken at initialisation (python-sounddevice #125)
    def _initialize(self) -> None:  # noqa: D401 - sounddevice's private API, used to re-read devices
        self.initializations += 1
        devices = []
        if self.mic_present:
            devices.append({"name": "Fake USB Microphone", "hostapi": 0, "max_input_channels": 1, "max_output_channels": 0,
                            "default_samplerate": float(self.mic_rate)})
        devices.append({"name": "Fake Speaker", "hostapi": 0, "max_input_channels": 0, "max_output_channels": 2,
                        "default_samplerate": float(self.speaker_rate)})
        self._devices = devices
        self.default = SimpleNamespace(device=[0 if self.mic_present else -1, len(devices) - 1])

    def _terminate(self) -> None:
        for stream in self._streams:
            stream._stop.set()  # Pa_Terminate closes every stream
        self._streams.clear()

    def query_devices(self):
        return list(self._devices)

    def unplug(self) -> None:
        """The microphone goes away: its open stream stops calling back; the device list does not change until re-read."""
        self.mic_present = False

    def plug(self) -> None:
        """The microphone is back (seen after the device list is re-read)."""
        self.mic_present = True

    def say(self, samples: np.ndarray, rate: int = 16000) -> None:
        """Queue int16 samples (at ``rate``) for the live microphone, after ``mic_audio`` has been played."""
        with self._live_lock:
            self._live.append((np.asarray(samples, dtype=np.int16), rate))

    def _next_live(self) -> tuple[np.ndarray, int] | None:
        with self._live_lock:
            return self._live.pop(0) if self._live else None

    def block_speaker(self) -> None:
        """The speaker hangs: no more callbacks, and stopping its stream blocks (as a wedged ALSA device does)."""
        self.speaker_blocked.set()

    def unblock_speaker(self) -> None:
        self.speaker_blocked.clear()

    def wedge(self) -> None:
        """Opening a stream blocks (as on a wedged ALSA device) until :meth:`unwedge`, at most
        :attr:`OPEN_HANG_LIMIT_S` (so a test cannot hang forever)."""
        self.wedged.set()

    def unwedge(self) -> None:
        self.wedged.clear()

    OPEN_HANG_LIMIT_S = 30.0

    def _wait_if_wedged(self) -> None:
        t0 = time.monotonic()
        while self.wedged.is_set() and time.monotonic() - t0 < self.OPEN_HANG_LIMIT_S:
            time.sleep(0.01)

    def query_hostapis(self):
        return [{"name": "ALSA"}]

    def InputStream(self, *, device, channels, samplerate, dtype, blocksize, callback):  # noqa: N802
        self._wait_if_wedged()
        if samplerate in self.refuse_rates:
            raise PortAudioError(f"Error opening InputStream: Invalid sample rate [PaErrorCode -9997] ({samplerate})")
        if not self.mic_present or device >= len(self._devices) or not self._devices[device]["max_input_channels"]:
            raise PortAudioError("Error opening InputStream: Device unavailable [PaErrorCode -9985]")
        stream = _FakeInput(self, samplerate, blocksize, callback)
        self._streams.append(stream)
        return stream

    def OutputStream(self, *, device, channels, samplerate, dtype, blocksize, callback):  # noqa: N802
        self._wait_if_wedged()
        if samplerate in self.refuse_rates:
            raise PortAudioError(f"Error opening OutputStream: Invalid sample rate [PaErrorCode -9997] ({samplerate})")
        if device >= len(self._devices) or not self._devices[device]["max_output_channels"]:
            raise PortAudioError("Error opening OutputStream: Invalid device [PaErrorCode -9996]")
        stream = _FakeOutput(self, samplerate, blocksize, callback)
        self._streams.append(stream)
        return stream

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
        self._pending = np.zeros(0, dtype=np.int16)

    def _take_live(self, n: int) -> np.ndarray:
        from ..audio.io import resample  # noqa: PLC0415

        while self._pending.shape[0] < n:
            nxt = self.card._next_live()
            if nxt is None:
                break
            audio, rate = nxt
            self._pending = np.concatenate([self._pending, resample(audio, rate, self.rate) if rate != self.rate else audio])
        out, self._pending = self._pending[:n], self._pending[n:]
        return np.pad(out, (0, n - out.shape[0]))

    def _run(self) -> None:
        pos, t0 = 0, time.monotonic()
        while not self._stop.is_set():
            if not self.card.mic_present or (self.card.unplug_after_s is not None and time.monotonic() - t0 > self.card.unplug_after_s):
                return  # like PortAudio after the device is gone: callbacks just stop
            block = self.audio[pos : pos + self.blocksize]
            if block.shape[0] < self.blocksize:
                block = np.concatenate([block, self._take_live(self.blocksize - block.shape[0])])
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
    STOP_HANG_LIMIT_S = 60.0

    def __init__(self, card: FakeSoundDevice, rate: int, blocksize: int, callback) -> None:
        self.card, self.rate, self.blocksize, self.callback = card, rate, blocksize, callback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0, n = time.monotonic(), 0
        while not self._stop.is_set():
            if self.card.speaker_blocked.is_set():  # hung: no callbacks until it recovers
                time.sleep(0.02)
                t0, n = time.monotonic(), 0
                continue
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
        t0 = time.monotonic()  # a hung device's stop blocks (bounded here so a test cannot hang forever)
        while self.card.speaker_blocked.is_set() and time.monotonic() - t0 < self.STOP_HANG_LIMIT_S:
            time.sleep(0.02)
        self._stop.set()

    def close(self) -> None:
        self.stop()
