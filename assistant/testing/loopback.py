"""A room in software: a recording plays into the microphone, and so does the assistant's own voice.

:class:`Loopback` gives a real-time :attr:`source` (16 kHz frames: the recording plus an echo of
whatever was played) and a :attr:`sink` that "plays" at real-time speed. It is the acoustic path
between a speaker and a microphone, for testing barge-in and that the assistant does not wake
itself up, without a sound card.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import AsyncIterator

import numpy as np

from ..audio.io import FRAME_SAMPLES, SAMPLE_RATE, PacedSink, resample

__all__ = ["Loopback"]


class _Source:
    realtime = True

    def __init__(self, room: "Loopback") -> None:
        self.room = room
        self._closed = False

    async def frames(self) -> AsyncIterator[np.ndarray]:
        rec = self.room.recording
        start = time.monotonic()
        pos = 0
        while pos < rec.shape[0] + int(self.room.tail_s * SAMPLE_RATE) and not self._closed:
            frame = rec[pos : pos + FRAME_SAMPLES].astype(np.float32)
            if frame.shape[0] < FRAME_SAMPLES:
                frame = np.pad(frame, (0, FRAME_SAMPLES - frame.shape[0]))
            echo = self.room.take_echo(FRAME_SAMPLES)
            mixed = np.clip(frame + self.room.echo_gain * echo, -32768, 32767).astype(np.int16)
            pos += FRAME_SAMPLES
            delay = start + pos / SAMPLE_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            yield mixed

    async def close(self) -> None:
        self._closed = True


class _Echo:
    """What the speaker plays, as the microphone hears it (16 kHz), for :class:`PacedSink`."""

    sample_rate = None

    def __init__(self, room: "Loopback") -> None:
        self.room = room

    async def play(self, samples: np.ndarray, rate: int) -> None:
        self.room.add_echo(resample(samples, rate, SAMPLE_RATE))
        self.room.played_samples += samples.shape[0] * SAMPLE_RATE // rate

    async def drain(self) -> None:
        pass

    async def interrupt(self) -> None:
        pass

    async def close(self) -> None:
        pass


class Loopback:
    """A recording and an echo of the assistant's voice, mixed into one microphone.

    Args:
        recording: 16 kHz int16, what people in the room say.
        echo_gain: How loud the speaker is at the microphone (0 = no echo).
        tail_s: Silence after the recording before the input ends.
    """

    def __init__(self, recording: np.ndarray, echo_gain: float = 0.7, tail_s: float = 2.0) -> None:
        self.recording = recording
        self.echo_gain = echo_gain
        self.tail_s = tail_s
        self._echo: collections.deque[np.ndarray] = collections.deque()
        self.played_samples = 0
        """Samples (at 16 kHz) the speaker has played."""
        self.source = _Source(self)
        self.sink = PacedSink(_Echo(self))

    def add_echo(self, chunk: np.ndarray) -> None:
        self._echo.append(chunk.astype(np.float32))

    def take_echo(self, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.float32)
        filled = 0
        while filled < n and self._echo:
            head = self._echo[0]
            take = min(n - filled, head.shape[0])
            out[filled : filled + take] = head[:take]
            filled += take
            if take == head.shape[0]:
                self._echo.popleft()
            else:
                self._echo[0] = head[take:]
        return out
