"""Audio files, in-memory sources, WAV sinks and resampling.

Reading goes through libsndfile (``soundfile``: WAV, FLAC, OGG/Vorbis, MP3) and resampling
through libsoxr (``soxr``, "HQ" quality). Microphones and speakers live in
:mod:`assistant.audio.devices`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import AsyncIterator, Protocol, runtime_checkable

import numpy as np
import soundfile as sf
import soxr

from ..errors import AudioFileError

__all__ = [
    "ArraySource",
    "AudioSink",
    "AudioSource",
    "FRAME_MS",
    "FRAME_SAMPLES",
    "FileSource",
    "SAMPLE_RATE",
    "WavSink",
    "duration_s",
    "read_audio",
    "resample",
    "to_int16",
    "write_wav",
]

SAMPLE_RATE = 16000
"""The pipeline's sample rate, Hz (what webrtcvad, openWakeWord and Whisper all take)."""
FRAME_MS = 20
"""Frame length, ms. webrtcvad accepts 10, 20 or 30 ms; 4 frames make openWakeWord's 80 ms step."""
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
"""Samples per frame (320)."""


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] → int16, clipping; int16 passes through unchanged."""
    if audio.dtype == np.int16:
        return audio
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample mono audio with libsoxr (HQ), keeping the dtype (int16 or float32).

    Args:
        audio: 1-D samples, int16 or float.
        from_rate: Its rate, Hz.
        to_rate: The wanted rate, Hz.

    Returns:
        The resampled 1-D array (same dtype as the input; float64 input gives float32).
    """
    if from_rate == to_rate or audio.size == 0:
        return audio
    if audio.dtype == np.int16:
        return soxr.resample(audio, from_rate, to_rate, quality="HQ")
    return soxr.resample(audio.astype(np.float32), from_rate, to_rate, quality="HQ")


def duration_s(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Length of ``samples`` in seconds at ``rate``."""
    return float(samples.shape[0]) / float(rate)


def read_audio(path: str | Path, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as mono int16 at ``rate``.

    Any channel count is mixed down (mean of channels); any sample rate is resampled with soxr.

    Args:
        path: A WAV, FLAC, OGG or MP3 file.
        rate: Output sample rate, Hz (default 16 kHz).

    Returns:
        1-D int16 array.

    Raises:
        AudioFileError: The file is missing, empty, corrupt or in a format libsndfile cannot
            decode. The message names the file.
    """
    p = Path(path)
    if not p.exists():
        raise AudioFileError(f"audio file {p} does not exist", hint="check the path")
    if p.is_dir():
        raise AudioFileError(f"{p} is a directory, not an audio file", hint="give a WAV, FLAC or MP3 file")
    if p.stat().st_size == 0:
        raise AudioFileError(f"audio file {p} is empty (0 bytes)", hint="record or copy it again")
    try:
        data, file_rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioFileError(
            f"cannot decode audio file {p}: {exc}",
            hint="the file is corrupt or not in a supported format; use WAV, FLAC, OGG or MP3 "
            "(e.g. convert with: sox IN.ext -r 16000 -c 1 OUT.wav)",
        ) from None
    if data.shape[0] == 0:
        raise AudioFileError(f"audio file {p} holds no samples", hint="record or copy it again")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    mono = resample(mono, int(file_rate), rate)
    return to_int16(mono)


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> Path:
    """Write mono int16 (or float) samples to a 16-bit PCM WAV.

    Raises:
        AudioFileError: The file cannot be written (missing folder, no permission, disk full).
    """
    p = Path(path)
    try:
        sf.write(str(p), to_int16(samples), rate, subtype="PCM_16")
    except (sf.LibsndfileError, OSError, RuntimeError) as exc:
        raise AudioFileError(f"cannot write {p}: {exc}", hint="check the folder exists, is writable and has free space") from None
    return p


@runtime_checkable
class AudioSource(Protocol):
    """Where input audio comes from: 16 kHz mono int16 frames of :data:`FRAME_SAMPLES`."""

    realtime: bool
    """True when frames arrive at the pace of speech (a microphone, or a paced file): the
    pipeline then keeps listening while it answers (barge-in, follow-ups). False for a file
    read as fast as possible: each turn is answered before more audio is read."""

    def frames(self) -> AsyncIterator[np.ndarray]:
        """Yield frames until the input ends or the source is closed."""
        ...

    async def close(self) -> None: ...


class ArraySource:
    """Frames from an in-memory 16 kHz mono int16 array.

    Args:
        samples: 1-D int16 samples at 16 kHz.
        realtime: Pace frames at wall-clock speed (as a microphone would deliver them).
        name: For messages.
    """

    def __init__(self, samples: np.ndarray, *, realtime: bool = False, name: str = "<array>") -> None:
        if samples.ndim != 1:
            raise ValueError("ArraySource takes 1-D mono samples")
        self.samples = to_int16(samples)
        self.realtime = realtime
        self.name = name
        self._closed = False

    @property
    def duration_s(self) -> float:
        return duration_s(self.samples)

    async def frames(self) -> AsyncIterator[np.ndarray]:
        n = self.samples.shape[0]
        start = time.monotonic()
        pos = 0
        while pos < n and not self._closed:
            frame = self.samples[pos : pos + FRAME_SAMPLES]
            if frame.shape[0] < FRAME_SAMPLES:
                frame = np.pad(frame, (0, FRAME_SAMPLES - frame.shape[0]))
            pos += FRAME_SAMPLES
            if self.realtime:
                due = start + pos / SAMPLE_RATE
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                # let other tasks run now and then without slowing file processing down
                if (pos // FRAME_SAMPLES) % 50 == 0:
                    await asyncio.sleep(0)
            yield frame

    async def close(self) -> None:
        self._closed = True


class FileSource(ArraySource):
    """Frames from an audio file (any rate and channel count, see :func:`read_audio`).

    Raises:
        AudioFileError: See :func:`read_audio`.
    """

    def __init__(self, path: str | Path, *, realtime: bool = False) -> None:
        super().__init__(read_audio(path), realtime=realtime, name=str(path))
        self.path = Path(path)


@runtime_checkable
class AudioSink(Protocol):
    """Where reply audio goes."""

    sample_rate: int | None
    """The rate the sink wants, Hz; None = whatever the first chunk has."""

    async def play(self, samples: np.ndarray, rate: int) -> None:
        """Queue mono int16 samples at ``rate`` (resampled to the sink's rate if needed)."""
        ...

    async def drain(self) -> None:
        """Return when everything queued has been played (or written)."""
        ...

    async def interrupt(self) -> None:
        """Drop whatever is queued but not yet played (barge-in)."""
        ...

    async def close(self) -> None: ...

    # Sinks may also have ``async def end_reply()`` (called after each spoken reply).


class WavSink:
    """Writes reply audio to a 16-bit mono WAV file, as it arrives.

    Args:
        path: Output file; created or truncated.
        sample_rate: File rate, Hz; None = the rate of the first chunk (the voice's rate).

    Raises:
        AudioFileError: The file cannot be created or written (e.g. disk full).
    """

    def __init__(self, path: str | Path, sample_rate: int | None = None, reply_gap_s: float = 1.0) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.reply_gap_s = reply_gap_s
        self._file: sf.SoundFile | None = None
        self.samples_written = 0

    def _open(self, rate: int) -> sf.SoundFile:
        if self._file is None:
            if self.sample_rate is None:
                self.sample_rate = rate
            try:
                self._file = sf.SoundFile(
                    str(self.path), mode="w", samplerate=self.sample_rate, channels=1, subtype="PCM_16", format="WAV"
                )
            except (sf.LibsndfileError, OSError, RuntimeError) as exc:
                raise AudioFileError(f"cannot create {self.path}: {exc}", hint="check the folder exists and is writable") from None
        return self._file

    async def play(self, samples: np.ndarray, rate: int) -> None:
        f = self._open(rate)
        assert self.sample_rate is not None
        out = to_int16(resample(samples, rate, self.sample_rate))
        try:
            f.write(out)
            f.flush()
        except (sf.LibsndfileError, OSError, RuntimeError) as exc:
            raise AudioFileError(f"cannot write {self.path}: {exc}", hint="free some disk space") from None
        self.samples_written += out.shape[0]

    async def drain(self) -> None:
        return None

    async def interrupt(self) -> None:
        return None

    async def end_reply(self) -> None:
        """Write ``reply_gap_s`` of silence after a reply, so the replies of a run stand apart."""
        if self._file is not None and self.sample_rate and self.reply_gap_s > 0:
            await self.play(np.zeros(int(self.sample_rate * self.reply_gap_s), dtype=np.int16), self.sample_rate)

    async def close(self) -> None:
        if self._file is None:
            # an empty but valid WAV, so a run with no replies still leaves a readable file
            self._open(self.sample_rate or 22050)
        assert self._file is not None
        self._file.close()


class PacedSink:
    """Plays into another sink at real-time speed, like a speaker does.

    Writing a reply to a file normally takes no time; a paced sink lets a headless run behave like
    one with a speaker: audio "plays" for as long as it lasts, :meth:`drain` waits for the end,
    and :meth:`interrupt` cuts it off (barge-in), so what reached the file is what a listener
    would have heard.

    Args:
        inner: Where the audio goes (e.g. a :class:`WavSink`).
        chunk_ms: Granularity of playback, ms.
    """

    def __init__(self, inner: "AudioSink", chunk_ms: int = 20) -> None:
        import collections  # noqa: PLC0415

        self.inner = inner
        self.chunk_ms = chunk_ms
        self._queue: collections.deque[tuple[np.ndarray, int]] = collections.deque()
        self._task: asyncio.Task | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def sample_rate(self) -> int | None:
        return self.inner.sample_rate

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    async def play(self, samples: np.ndarray, rate: int) -> None:
        step = max(1, rate * self.chunk_ms // 1000)
        for i in range(0, samples.shape[0], step):
            self._queue.append((samples[i : i + step], rate))
        self._idle.clear()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        start = time.monotonic()
        played = 0.0
        while self._queue:
            chunk, rate = self._queue.popleft()
            await self.inner.play(chunk, rate)
            played += chunk.shape[0] / rate
            delay = start + played - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        self._idle.set()

    async def drain(self) -> None:
        await self._idle.wait()

    async def interrupt(self) -> None:
        self._queue.clear()
        self._idle.set()

    async def end_reply(self) -> None:
        end = getattr(self.inner, "end_reply", None)
        if end is not None:
            await self.drain()
            await end()

    async def close(self) -> None:
        await self.drain()
        if self._task is not None:
            self._task.cancel()
        await self.inner.close()
