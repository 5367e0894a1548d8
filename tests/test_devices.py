"""Microphone and speaker through a fake sound card (the only fake in the speech path)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from assistant.app import load_speech
from assistant.audio import SAMPLE_RATE, resample
from assistant.audio.devices import MicrophoneSource, SpeakerSink, list_devices, resolve_device
from assistant.bus import EventBus
from assistant.errors import AudioDeviceError
from assistant.events import FinalTranscript, WakeDetected
from assistant.pipeline import Pipeline
from assistant.speech.asr import normalize_transcript
from assistant.testing.fake_sounddevice import FakeSoundDevice

from .conftest import recording


def test_listing_and_selection_by_name_or_index():
    sd = FakeSoundDevice()
    devs = list_devices(sd)
    assert [d.name for d in devs] == ["Fake USB Microphone", "Fake Speaker"]
    assert resolve_device(None, "input", sd).index == 0
    assert resolve_device("usb", "input", sd).index == 0
    assert resolve_device("1", "output", sd).name == "Fake Speaker"
    with pytest.raises(AudioDeviceError, match="no microphone named like 'webcam'") as info:
        resolve_device("webcam", "input", sd)
    assert "0: Fake USB Microphone" in info.value.hint
    with pytest.raises(AudioDeviceError, match="device 1 does not exist or has no input"):
        resolve_device(1, "input", sd)


def test_microphone_refusing_16k_is_resampled_and_heard(config):
    """A 48 kHz-only microphone: opened at 48 kHz, resampled to 16 kHz, wake + command understood."""
    audio16 = recording(0.5, "hey_jarvis.wav", 0.3, "wfw_turn_on_the_living_room_lamp.wav", 1.5)
    sd = FakeSoundDevice(mic_audio=resample(audio16, SAMPLE_RATE, 48000), mic_rate=48000, refuse_rates={16000}, speed=4.0)
    speech = asyncio.run(load_speech(config, tts=False))
    bus = EventBus()
    events = bus.record()
    mic = MicrophoneSource(None, sd=sd)

    async def go():
        pipeline = Pipeline(config, speech.listener, asr=speech.asr, bus=bus)
        task = asyncio.create_task(pipeline.run(mic))
        for _ in range(400):
            await asyncio.sleep(0.05)
            if any(isinstance(e, FinalTranscript) for e in events):
                break
        await mic.close()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(go())
    assert mic.rate == 48000
    assert len([e for e in events if isinstance(e, WakeDetected)]) == 1
    finals = [normalize_transcript(e.text) for e in events if isinstance(e, FinalTranscript)]
    assert finals == ["turn on the living room lamp"]


def test_microphone_refusing_every_rate_is_explained():
    sd = FakeSoundDevice(mic_rate=44100, refuse_rates={16000, 44100})
    mic = MicrophoneSource("usb", sd=sd)

    async def go():
        async for _ in mic.frames():
            break

    with pytest.raises(AudioDeviceError, match="microphone 'Fake USB Microphone' .* cannot be opened") as info:
        asyncio.run(go())
    assert "16000 Hz" in str(info.value) and "44100 Hz" in str(info.value)


def test_speaker_plays_resampled_audio_and_interrupt_stops_it():
    sd = FakeSoundDevice(speaker_rate=48000, speed=1.0)

    async def go():
        sink = SpeakerSink(None, sd=sd)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(22050 * 3) / 22050) * 32767).astype(np.int16)
        await sink.play(tone, 22050)
        await asyncio.sleep(0.3)
        assert sink.busy
        await sink.interrupt()
        await asyncio.sleep(0.1)
        played_at_interrupt = sum(p.shape[0] for p in sd.played)
        await asyncio.sleep(0.3)
        after = sum(p.shape[0] for p in sd.played)
        await sink.close()
        return played_at_interrupt, after

    at_interrupt, after = asyncio.run(go())
    assert 0 < at_interrupt < 48000 * 1.5  # well short of the 3 s queued
    assert after == at_interrupt  # nothing more after the interrupt


def test_speaker_refusing_rate_is_explained():
    sd = FakeSoundDevice(refuse_rates={48000})
    with pytest.raises(AudioDeviceError, match="refuses 48000 Hz") as info:
        SpeakerSink(None, sd=sd)
    assert "output_sample_rate" in info.value.hint


def test_a_microphone_that_stops_is_reported(monkeypatch):
    import assistant.audio.devices as devices

    monkeypatch.setattr(devices, "MIC_STALL_S", 0.5)
    sd = FakeSoundDevice(mic_audio=np.zeros(48000 * 10, dtype=np.int16), mic_rate=48000, unplug_after_s=0.3)
    mic = MicrophoneSource(None, sd=sd)

    async def go() -> int:
        n = 0
        async for _ in mic.frames():
            n += 1
        return n

    with pytest.raises(AudioDeviceError, match="stopped delivering audio") as info:
        asyncio.run(go())
    assert "unplugged" in info.value.hint


def test_a_microphone_the_assistant_does_not_keep_up_with_drops_the_oldest_audio():
    """The capture queue is bounded: while nobody reads (a stalled loop), old blocks are dropped and counted."""
    from assistant.audio.devices import MIC_QUEUE_BLOCKS

    sd = FakeSoundDevice(mic_audio=np.zeros(16000 * 60, np.int16), mic_rate=SAMPLE_RATE, speed=40.0)
    mic = MicrophoneSource(None, sd=sd)

    async def go():
        frames = mic.frames()
        await frames.__anext__()  # opened
        await asyncio.sleep(0.6)  # ~24 s of audio arrives; nobody reads
        size = mic._queue.qsize()
        await frames.aclose()
        return size

    size = asyncio.run(go())
    assert size <= MIC_QUEUE_BLOCKS
    assert mic.dropped > 300


def test_a_microphone_plugged_in_after_start_is_found_once_the_device_list_is_re_read():
    """PortAudio lists the devices present when it started; a USB microphone plugged in later is
    only found after the list is re-read (python-sounddevice #125)."""
    from assistant.audio.devices import refresh_devices

    sd = FakeSoundDevice(mic_rate=SAMPLE_RATE)
    sd.unplug()
    sd._initialize()  # started without a microphone
    with pytest.raises(AudioDeviceError, match="no microphone"):
        MicrophoneSource(None, sd=sd)
    sd.plug()
    with pytest.raises(AudioDeviceError, match="no microphone"):
        MicrophoneSource(None, sd=sd)  # still the old list
    assert asyncio.run(refresh_devices(sd)) is True
    mic = MicrophoneSource(None, sd=sd)
    sd.say(np.full(SAMPLE_RATE // 10, 1000, np.int16))

    async def first_voiced() -> int:
        n = 0
        async for frame in mic.frames():
            n += 1
            if frame.any() or n > 100:
                break
        return n

    assert asyncio.run(first_voiced()) <= 100


async def _heartbeat(beats: list[float]) -> None:
    """Note the time every 20 ms: the largest gap is how long the event loop was blocked."""
    import time

    while True:
        beats.append(time.monotonic())
        await asyncio.sleep(0.02)


def test_closing_a_hung_speaker_neither_blocks_the_event_loop_nor_hangs():
    """A wedged device's stop() can block for good: closing gives up after DEVICE_CALL_TIMEOUT_S,
    and the event loop keeps running meanwhile."""
    import time

    import assistant.audio.devices as devices

    sd = FakeSoundDevice(speed=1.0)
    sink = SpeakerSink(None, sd=sd)
    sd.block_speaker()

    async def go() -> tuple[float, float]:
        beats: list[float] = []
        hb = asyncio.create_task(_heartbeat(beats))
        await sink.play(np.ones(48000, np.int16), 48000)
        t0 = time.monotonic()
        await sink.close()
        took = time.monotonic() - t0
        hb.cancel()
        return took, max(np.diff(beats))

    try:
        took, stall = asyncio.run(go())
    finally:
        sd.unblock_speaker()
    assert devices.DEVICE_CALL_TIMEOUT_S - 0.5 < took < devices.DEVICE_CALL_TIMEOUT_S + 2.0
    assert stall < 1.0


def test_audio_queued_on_a_closed_speaker_is_dropped_and_leaves_nothing_waiting():
    """A reply can reach the speaker just after it was closed (the device list is being re-read):
    nothing will play it, so draining returns at once, and no thread is left waiting on it, which
    ``asyncio.run`` would wait for at exit (a hang seen in CI's fault benchmark)."""
    import threading
    import time

    sd = FakeSoundDevice(speed=1.0)
    threads_before = threading.active_count()

    async def go() -> tuple[float, float]:
        sink = SpeakerSink(None, sd=sd)
        await sink.play(np.ones(48000, np.int16), 48000)
        t0 = time.monotonic()
        await sink.close()
        await asyncio.wait_for(sink.drain(), 2.0)  # what was queued is dropped by closing
        closed_drain = time.monotonic() - t0
        await sink.play(np.ones(48000 * 3, np.int16), 48000)  # after closing
        assert not sink.busy
        t0 = time.monotonic()
        await asyncio.wait_for(sink.drain(), 2.0)
        return closed_drain, time.monotonic() - t0

    t0 = time.monotonic()
    closed_drain, late_drain = asyncio.run(go())
    assert time.monotonic() - t0 < 5.0  # asyncio.run returned: no executor thread left waiting
    assert closed_drain < 1.0 and late_drain < 0.5
    time.sleep(0.2)
    assert threading.active_count() <= threads_before


def test_a_wedged_card_neither_blocks_the_event_loop_nor_the_exit():
    """Opening a stream on a wedged device can block for good: the microphone and the speaker
    being opened again give up after DEVICE_CALL_TIMEOUT_S with a clear error (the speaker: text
    replies), the event loop keeps running, and ``asyncio.run`` returns (no executor thread left)."""
    import time

    import assistant.audio.devices as devices
    from assistant.config import TtsConfig
    from assistant.engine.speaker import Speaker

    sd = FakeSoundDevice(speed=1.0)
    mic = MicrophoneSource(None, sd=sd)
    sd.wedge()

    async def go() -> tuple[str, object, float]:
        beats: list[float] = []
        hb = asyncio.create_task(_heartbeat(beats))
        with pytest.raises(AudioDeviceError) as err:
            async for _ in mic.frames():
                break
        async def reopen():  # as the session opens its speaker again
            try:
                return await devices.device_call("opening the speaker", lambda: SpeakerSink(None, sd=sd), abandon=SpeakerSink.close_now)
            except AudioDeviceError:
                return None

        speaker = Speaker(None, None, EventBus(), TtsConfig(), reopen=reopen)
        await speaker._replace_sink()  # what a stalled speaker does
        hb.cancel()
        return err.value.message, speaker.sink, max(np.diff(beats))

    t0 = time.monotonic()
    try:
        message, sink, stall = asyncio.run(go())
    finally:
        sd.unwedge()
    took = time.monotonic() - t0
    time.sleep(0.3)  # the opens return once unwedged, and close what they opened
    assert not [st for st in sd._streams if not st._stop.is_set()], "a stream opened late was left running"
    assert "opening the microphone did not return" in message
    assert sink is None  # replies as text until the speaker is back
    assert stall < 1.0
    assert took < 2 * devices.DEVICE_CALL_TIMEOUT_S + 3.0  # both gave up; asyncio.run waited for no thread
