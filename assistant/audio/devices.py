"""Microphones and speakers through PortAudio (``sounddevice``).

Nothing here opens a device at import time. Devices are chosen by index or by a
case-insensitive part of their name (``assistant devices`` lists them). A microphone that refuses
16 kHz is opened at its own default rate and resampled with soxr; a speaker is opened at its
default rate unless the config names one, and replies are resampled to it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any, AsyncIterator, Callable, TypeVar

import numpy as np
import soxr

from ..errors import AudioDeviceError, MissingDependencyError
from .io import FRAME_SAMPLES, SAMPLE_RATE, resample, to_int16

MIC_STALL_S = 3.0
"""A microphone that delivers nothing for this long is considered gone."""
MIC_QUEUE_BLOCKS = 250
"""Captured 20 ms blocks held for the assistant (5 s); when it falls further behind, the oldest are dropped."""
DEVICE_CALL_TIMEOUT_S = 2.0
"""Longest wait for PortAudio to stop a stream or re-read its devices; a wedged device can block
these calls for good, so they run on a daemon thread and are abandoned after this long."""
DRAIN_POLL_S = 0.02
"""How often :meth:`SpeakerSink.drain` looks whether the queue has played out: one callback block."""

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["DeviceInfo", "MicrophoneSource", "SpeakerSink", "device_call", "list_devices", "load_sounddevice", "refresh_devices",
           "resolve_device"]


async def device_call(what: str, fn: Callable[[], T], timeout: float = DEVICE_CALL_TIMEOUT_S,
                      abandon: Callable[[T], None] | None = None) -> T:
    """``fn()`` — a PortAudio call that may block for good on a wedged device (opening, stopping
    or closing a stream, re-reading the devices) — run on a daemon thread: never on the event loop,
    and never on a thread ``asyncio.run`` or interpreter exit would wait for. ``abandon`` is called
    (on a daemon thread) with what ``fn`` returns if it returns after the caller gave up: close it.

    Raises:
        AudioDeviceError: ``fn`` did not return within ``timeout`` seconds (the thread is left behind).
        Exception: Whatever ``fn`` raised.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()
    given_up = threading.Event()

    def late(value: Any) -> None:
        if abandon is not None:
            with contextlib.suppress(Exception):
                abandon(value)

    def settle(value: Any, exc: BaseException | None) -> None:  # on the event loop
        if given_up.is_set():
            if exc is None:
                threading.Thread(target=late, args=(value,), name=f"{what} (abandoned)", daemon=True).start()
        elif not done.done():
            done.set_exception(exc) if exc is not None else done.set_result(value)

    def run() -> None:
        try:
            value, exc = fn(), None
        except Exception as e:  # noqa: BLE001 - handed to the awaiting caller
            value, exc = None, e
        try:
            loop.call_soon_threadsafe(settle, value, exc)
        except RuntimeError:  # the event loop has closed since
            if exc is None:
                late(value)

    threading.Thread(target=run, name=what, daemon=True).start()
    try:
        return await asyncio.wait_for(asyncio.shield(done), timeout)
    except asyncio.TimeoutError:
        if done.done() and done.exception() is None:  # it returned in the same moment
            return done.result()
        given_up.set()
        log.error("%s did not return within %.0f s; the device is left behind", what, timeout)
        raise AudioDeviceError(f"{what} did not return within {timeout:.0f} s", hint="unplug the device and plug it in again, or pick another one") from None


async def _off_loop(what: str, fn: Any, timeout: float = DEVICE_CALL_TIMEOUT_S) -> bool:
    """:func:`device_call` for a call whose failure is only logged (closing): False if it raised or
    did not return in time."""
    try:
        await device_call(what, fn, timeout)
        return True
    except AudioDeviceError:
        return False
    except Exception as exc:  # noqa: BLE001 - a device error while closing is logged, not raised
        log.warning("%s failed: %s", what, exc)
        return False


async def refresh_devices(sd: ModuleType | None = None) -> bool:
    """Re-read the device list, so a microphone or speaker plugged in after start can be found.

    PortAudio enumerates devices once, when it initialises; ``query_devices()`` keeps returning that
    list (python-sounddevice issue #125, PortAudio issue #447). Restarting PortAudio
    (``_terminate()`` + ``_initialize()``, as sounddevice's maintainer advises there) re-reads it and
    **stops every open stream**: close the speaker first and open it again afterwards.

    Returns:
        False if the module cannot restart PortAudio (or it timed out); the old list stays.
    """
    sd = sd or load_sounddevice()
    terminate, initialize = getattr(sd, "_terminate", None), getattr(sd, "_initialize", None)
    if terminate is None or initialize is None:
        return False

    def restart() -> None:
        terminate()
        initialize()

    return await _off_loop("re-reading the audio devices", restart)


def load_sounddevice() -> ModuleType:
    """Import ``sounddevice``.

    Raises:
        MissingDependencyError: The package is not installed.
        AudioDeviceError: The PortAudio library is missing.
    """
    try:
        import sounddevice  # noqa: PLC0415
    except ImportError as exc:
        raise MissingDependencyError(
            f"audio devices need the 'sounddevice' package ({exc})",
            hint="install it with: pip install 'jarvis-assistant[audio]'",
        ) from None
    except OSError as exc:
        raise AudioDeviceError(
            f"the PortAudio library is not installed ({exc})",
            hint="install it (Debian/Raspberry Pi OS: sudo apt install libportaudio2), or use --input/--output files",
        ) from None
    return sounddevice


@dataclass(frozen=True)
class DeviceInfo:
    """One audio device as PortAudio reports it."""

    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float
    is_default_input: bool = False
    is_default_output: bool = False


def list_devices(sd: ModuleType | None = None) -> list[DeviceInfo]:
    """All audio devices.

    Raises:
        MissingDependencyError, AudioDeviceError: See :func:`load_sounddevice`.
    """
    sd = sd or load_sounddevice()
    try:
        raw = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_in, default_out = sd.default.device
    except Exception as exc:  # PortAudioError and friends
        raise AudioDeviceError(f"cannot list audio devices: {exc}") from None
    out = []
    for i, d in enumerate(raw):
        out.append(
            DeviceInfo(
                index=i,
                name=str(d["name"]),
                hostapi=str(hostapis[d["hostapi"]]["name"]) if hostapis else "",
                max_input_channels=int(d["max_input_channels"]),
                max_output_channels=int(d["max_output_channels"]),
                default_samplerate=float(d["default_samplerate"]),
                is_default_input=(i == default_in),
                is_default_output=(i == default_out),
            )
        )
    return out


def resolve_device(spec: str | int | None, kind: str, sd: ModuleType | None = None) -> DeviceInfo:
    """Find the device to use.

    Args:
        spec: None (the default device), an index, or part of a device name.
        kind: ``"input"`` or ``"output"``.

    Raises:
        AudioDeviceError: No such device, or the name matches several.
    """
    devices = list_devices(sd)
    channel_attr = "max_input_channels" if kind == "input" else "max_output_channels"
    usable = [d for d in devices if getattr(d, channel_attr) > 0]
    what = "microphone" if kind == "input" else "speaker"
    if not usable:
        raise AudioDeviceError(
            f"no {what} found (no audio {kind} device)",
            hint=f"connect a {what} and check `assistant devices`, or use a file "
            f"({'--input FILE' if kind == 'input' else '--output FILE'})",
        )
    if spec is None or spec == "":
        default = [d for d in usable if (d.is_default_input if kind == "input" else d.is_default_output)]
        return default[0] if default else usable[0]
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        idx = int(spec)
        for d in usable:
            if d.index == idx:
                return d
        raise AudioDeviceError(
            f"audio {kind} device {idx} does not exist or has no {kind} channels",
            hint="`assistant devices` lists the devices with their indexes",
        )
    needle = str(spec).casefold()
    matches = [d for d in usable if needle in d.name.casefold()]
    if len(matches) == 1:
        return matches[0]
    exact = [d for d in matches if d.name.casefold() == needle]
    if len(exact) == 1:
        return exact[0]
    if not matches:
        raise AudioDeviceError(
            f"no {what} named like '{spec}'",
            hint="available: " + "; ".join(f"{d.index}: {d.name}" for d in usable),
        )
    raise AudioDeviceError(
        f"'{spec}' matches several {what}s: " + "; ".join(f"{d.index}: {d.name}" for d in matches),
        hint="use the index or a longer part of the name",
    )


class MicrophoneSource:
    """Live 16 kHz mono int16 frames from a microphone.

    Opens the device at 16 kHz; if the device refuses that rate, opens it at its default rate and
    resamples with soxr. The PortAudio callback runs on PortAudio's thread and only copies the
    block into an asyncio queue.

    Args:
        device: Index or part of the name; None = the default microphone.
        sd: The sounddevice module (injected in tests).

    Raises:
        AudioDeviceError: No microphone, or it refuses every rate tried.
    """

    realtime = True

    def __init__(self, device: str | int | None = None, *, sd: ModuleType | None = None) -> None:
        self._sd = sd or load_sounddevice()
        self.device = resolve_device(device, "input", self._sd)
        self._queue: asyncio.Queue[np.ndarray | None] | None = None
        self._stream: Any = None
        self._abandoned = False
        """Opening took longer than :data:`DEVICE_CALL_TIMEOUT_S` and was given up on (open a new source)."""
        self._resampler: soxr.ResampleStream | None = None
        self._pending = np.zeros(0, dtype=np.int16)
        self.rate = SAMPLE_RATE
        self.overflows = 0
        self.dropped = 0
        """Blocks dropped (oldest first) because the assistant did not read them within :data:`MIC_QUEUE_BLOCKS`."""

    def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        queue = self._queue
        assert queue is not None

        def enqueue(block: np.ndarray) -> None:  # on the event loop
            if queue.full():
                queue.get_nowait()  # the assistant fell behind: the oldest audio goes, memory stays bounded
                self.dropped += 1
            queue.put_nowait(block)

        def callback(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            if status:
                self.overflows += 1
            block = indata[:, 0].copy()
            try:
                loop.call_soon_threadsafe(enqueue, block)
            except RuntimeError:  # the event loop has closed: nobody listens any more
                pass

        errors = []
        for rate in (SAMPLE_RATE, int(self.device.default_samplerate)):
            try:
                blocksize = int(rate * FRAME_SAMPLES / SAMPLE_RATE)
                stream = self._sd.InputStream(
                    device=self.device.index, channels=1, samplerate=rate, dtype="int16",
                    blocksize=blocksize, callback=callback,
                )
                stream.start()
            except Exception as exc:  # PortAudioError: invalid sample rate, device busy, ...
                errors.append(f"{rate} Hz: {exc}")
                continue
            if self._abandoned:  # opened after frames() gave up on it
                stream.stop()
                stream.close()
                return
            self._stream = stream
            self.rate = rate
            if rate != SAMPLE_RATE:
                self._resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="int16", quality="HQ")
            return
        raise AudioDeviceError(
            f"microphone '{self.device.name}' (device {self.device.index}) cannot be opened: " + "; ".join(errors),
            hint="it may be busy or refuse these rates; pick another with --input-device or audio.input_device",
        )

    async def frames(self) -> AsyncIterator[np.ndarray]:
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(MIC_QUEUE_BLOCKS)
        try:
            await device_call("opening the microphone", lambda: self._open(loop))
        except AudioDeviceError:
            self._abandoned = True  # an open that returns late closes its stream itself
            await self.close()  # or it returned just now
            raise
        try:
            while True:
                try:
                    block = await asyncio.wait_for(self._queue.get(), MIC_STALL_S)
                except asyncio.TimeoutError:
                    raise AudioDeviceError(
                        f"microphone '{self.device.name}' stopped delivering audio for {MIC_STALL_S:g} s",
                        hint="it may have been unplugged; the service reopens it when it is back",
                    ) from None
                if block is None:
                    return
                if self._resampler is not None:
                    block = self._resampler.resample_chunk(block)
                self._pending = np.concatenate([self._pending, block])
                while self._pending.shape[0] >= FRAME_SAMPLES:
                    frame, self._pending = self._pending[:FRAME_SAMPLES], self._pending[FRAME_SAMPLES:]
                    yield frame
        finally:
            await self.close()

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await _off_loop("closing the microphone", lambda: (stream.stop(), stream.close()))
        if self._queue is not None:
            if self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait(None)


class SpeakerSink:
    """Plays reply audio on a speaker; :meth:`interrupt` silences it at once.

    Audio is queued in a buffer that the PortAudio callback drains; interrupting empties the
    buffer, so playback stops within one callback block (~20 ms).

    Args:
        device: Index or part of the name; None = the default speaker.
        sample_rate: Rate to open the device at, Hz; None = the device's default rate.
        sd: The sounddevice module (injected in tests).

    Raises:
        AudioDeviceError: No speaker, or it refuses the rate.
    """

    def __init__(self, device: str | int | None = None, sample_rate: int | None = None, *, sd: ModuleType | None = None) -> None:
        self._sd = sd or load_sounddevice()
        self.device = resolve_device(device, "output", self._sd)
        self.sample_rate = int(sample_rate or self.device.default_samplerate)
        self._buffer: collections.deque[np.ndarray] = collections.deque()
        self._offset = 0
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self.played_samples = 0
        try:
            self._stream = self._sd.OutputStream(
                device=self.device.index, channels=1, samplerate=self.sample_rate, dtype="int16",
                blocksize=int(self.sample_rate * 0.02), callback=self._callback,
            )
            self._stream.start()
        except Exception as exc:
            raise AudioDeviceError(
                f"speaker '{self.device.name}' (device {self.device.index}) refuses {self.sample_rate} Hz or is busy: {exc}",
                hint="set audio.output_sample_rate to a rate it supports (often 44100 or 48000), or pick another device",
            ) from None

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        out = outdata[:, 0]
        filled = 0
        with self._lock:
            while filled < frames and self._buffer:
                head = self._buffer[0]
                take = min(frames - filled, head.shape[0] - self._offset)
                out[filled : filled + take] = head[self._offset : self._offset + take]
                filled += take
                self._offset += take
                if self._offset >= head.shape[0]:
                    self._buffer.popleft()
                    self._offset = 0
            if not self._buffer:
                self._idle.set()
        out[filled:] = 0
        self.played_samples += filled

    async def play(self, samples: np.ndarray, rate: int) -> None:
        """Queue ``samples`` (mono, any dtype :func:`to_int16` takes) at ``rate`` Hz; returns at once.
        On a closed sink the audio is dropped with a warning: nothing would ever play it."""
        chunk = to_int16(resample(samples, rate, self.sample_rate))
        with self._lock:
            if self._stream is None:
                log.warning("the speaker was closed; %.1f s of reply audio not played", chunk.shape[0] / self.sample_rate)
                return
            self._buffer.append(chunk)
            self._idle.clear()

    async def drain(self) -> None:
        """Return when everything queued has been played (or dropped by :meth:`interrupt` or
        :meth:`close`). Polls every callback block (20 ms) instead of waiting on a thread: a
        stalled device must not leave a thread blocked for good, which ``asyncio.run`` would then
        wait for at exit. Callers bound the wait (:meth:`~assistant.engine.speaker.Speaker.drain`)."""
        while not self._idle.is_set():
            await asyncio.sleep(DRAIN_POLL_S)

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    async def interrupt(self) -> None:
        with self._lock:
            self._buffer.clear()
            self._offset = 0
            self._idle.set()

    def close_now(self) -> None:
        """Blocking: stop and close the stream (for a sink opened after its caller gave up on it)."""
        with self._lock:
            stream, self._stream = self._stream, None
            self._buffer.clear()
            self._idle.set()
        if stream is not None:
            stream.stop()
            stream.close()

    async def close(self) -> None:
        """Stop the stream; a speaker that hangs in PortAudio is abandoned after :data:`DEVICE_CALL_TIMEOUT_S`."""
        with self._lock:
            stream, self._stream = self._stream, None
        await self.interrupt()
        if stream is not None:
            await _off_loop("closing the speaker", lambda: (stream.stop(), stream.close()))
