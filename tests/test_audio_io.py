"""Audio files in and out: formats, rates, channels, resampling, bad files."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import soundfile as sf

from assistant.audio import FRAME_SAMPLES, SAMPLE_RATE, ArraySource, FileSource, WavSink, read_audio, resample
from assistant.errors import AudioFileError

from .conftest import AUDIO, need_fixtures


def _tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x.astype(np.float64)))
    return float(np.argmax(spec) * rate / x.shape[0])


@pytest.mark.parametrize("fmt,ext", [("WAV", "wav"), ("FLAC", "flac"), ("MP3", "mp3")])
def test_any_rate_and_channels_become_16k_mono(tmp_path, fmt, ext):
    tone = _tone(1000.0, 44100)
    path = tmp_path / f"tone.{ext}"
    sf.write(path, np.stack([tone, tone], axis=1), 44100, format=fmt)
    out = read_audio(path)
    assert out.dtype == np.int16 and out.ndim == 1
    assert abs(out.shape[0] / SAMPLE_RATE - 1.0) < 0.06  # MP3 adds encoder padding
    assert abs(_peak_hz(out, SAMPLE_RATE) - 1000.0) < 5.0


def test_real_44k_stereo_clip_resampled(fixtures_dir):
    out = read_audio(AUDIO / "wfw_turn_on_the_living_room_lamp.wav")
    assert abs(out.shape[0] / SAMPLE_RATE - 2.99) < 0.02
    out = read_audio(AUDIO / "jfk.flac")
    assert abs(out.shape[0] / SAMPLE_RATE - 11.0) < 0.1


def test_resample_keeps_a_tone_and_its_dtype():
    x = (_tone(440.0, 22050) * 32767).astype(np.int16)
    y = resample(x, 22050, 48000)
    assert y.dtype == np.int16
    assert abs(_peak_hz(y, 48000) - 440.0) < 2.0
    assert abs(y.shape[0] - 48000) <= 2


def test_missing_empty_corrupt_and_unsupported_files(tmp_path):
    with pytest.raises(AudioFileError, match="does not exist"):
        read_audio(tmp_path / "nope.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioFileError, match="empty"):
        read_audio(empty)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" + bytes(100))
    with pytest.raises(AudioFileError, match="cannot decode audio file .*corrupt.wav") as info:
        read_audio(corrupt)
    assert "WAV, FLAC" in info.value.hint
    text = tmp_path / "notes.txt"
    text.write_text("this is not audio")
    with pytest.raises(AudioFileError, match="notes.txt"):
        read_audio(text)
    header_only = tmp_path / "header.wav"
    sf.write(header_only, np.zeros((0,), dtype=np.int16), 16000)
    with pytest.raises(AudioFileError, match="no samples"):
        read_audio(header_only)


def test_file_source_frames_cover_the_file(tmp_path):
    need_fixtures()
    src = FileSource(AUDIO / "hey_jarvis.wav")

    async def collect():
        return [f async for f in src.frames()]

    frames = asyncio.run(collect())
    assert all(f.shape == (FRAME_SAMPLES,) and f.dtype == np.int16 for f in frames)
    assert len(frames) == int(np.ceil(2.0 * SAMPLE_RATE / FRAME_SAMPLES))
    assert not src.realtime


def test_realtime_source_is_paced():
    src = ArraySource(np.zeros(int(0.3 * SAMPLE_RATE), dtype=np.int16), realtime=True)

    async def collect():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        n = 0
        async for _ in src.frames():
            n += 1
        return n, loop.time() - t0

    n, elapsed = asyncio.run(collect())
    assert n == 15
    assert elapsed >= 0.25  # at least about real time; no upper bound (a busy machine is slower)


def test_wav_sink_resamples_and_appends(tmp_path):
    sink = WavSink(tmp_path / "out.wav", sample_rate=16000)

    async def go():
        await sink.play((_tone(300.0, 22050) * 32767).astype(np.int16), 22050)
        await sink.play(np.zeros(8000, dtype=np.int16), 16000)
        await sink.close()

    asyncio.run(go())
    data, rate = sf.read(tmp_path / "out.wav", dtype="int16")
    assert rate == 16000
    assert abs(data.shape[0] - 24000) <= 2
    assert abs(_peak_hz(data[:16000], 16000) - 300.0) < 3.0


def test_wav_sink_reports_unwritable_path(tmp_path):
    sink = WavSink(tmp_path / "no" / "such" / "dir" / "out.wav")
    with pytest.raises(AudioFileError, match="cannot create"):
        asyncio.run(sink.play(np.zeros(100, dtype=np.int16), 16000))
