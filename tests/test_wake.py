"""Wake stage with the real openWakeWord models: detections, the VAD gate, patience, refractory, second pass."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from assistant.app import load_asr, load_wake_model, model_store
from assistant.audio import FRAME_SAMPLES, ArraySource
from assistant.bus import EventBus
from assistant.events import WakeDetected, WakeRejected
from assistant.pipeline import Pipeline
from assistant.speech.endpoint import Endpointer
from assistant.speech.listener import Listener
from assistant.speech.wake import WakeStage, WakeVerifier, phrase_from_model_name

from .conftest import recording

NEGATIVES = [
    "oww_negative_reference.wav",
    "rhino_test_within_context.wav",
    "rhino_test_out_of_context.wav",
    "jfk.flac",
    "turn_on_the_office_lights_test_clip.wav",
    "alexa.wav",
    "computer.wav",
    "ok_nabu.wav",
]


def _hits(stage: WakeStage, audio: np.ndarray):
    hits = []
    for i in range(0, audio.shape[0] - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        h = stage.process(audio[i : i + FRAME_SAMPLES])
        if h:
            hits.append(h)
    return hits


@pytest.fixture
def stage_for(config):
    store = model_store(config)

    def make(**overrides) -> WakeStage:
        cfg = config.with_overrides({f"wake.{k}": v for k, v in overrides.items()})
        return WakeStage(load_wake_model(cfg, store), cfg.wake)

    return make


def test_wake_then_command_gives_exactly_one_detection(stage_for):
    stage = stage_for()
    hits = _hits(stage, recording(0.5, "hey_jarvis.wav", 0.3, "wfw_turn_on_the_living_room_lamp.wav", 1.0))
    assert len(hits) == 1
    assert hits[0].model == "hey_jarvis_v0.1"
    assert hits[0].score > 0.9
    # the phrase is at 0.5..2.5 s of the recording; the detection comes right after it
    assert 1.0 < hits[0].audio_time_s < 2.6


@pytest.mark.parametrize("name", NEGATIVES)
def test_no_detection_without_the_wake_phrase(stage_for, name):
    assert _hits(stage_for(), recording(0.5, name, 0.5)) == []


def test_gate_keeps_the_wake_model_off_during_silence(stage_for):
    stage = stage_for()
    assert _hits(stage, recording(5.0)) == []
    assert stage.stats.chunks_scored == 0
    assert stage.stats.gate_openings == 0
    ungated = stage_for(vad_gate=False)
    _hits(ungated, recording(5.0))
    assert ungated.stats.chunks_scored == int(5.0 / 0.08)


def test_gate_runs_the_model_only_around_speech(stage_for):
    stage = stage_for()
    audio = recording(3.0, "hey_jarvis.wav", 6.0)
    assert len(_hits(stage, audio)) == 1
    scored_s = stage.stats.chunks_scored * 0.08
    assert 1.0 < scored_s < 5.0  # pre-roll + speech + hangover, not the 11 s of audio
    assert stage.stats.gate_openings >= 1


def test_several_wake_models_at_once(stage_for):
    stage = stage_for(models=["hey_jarvis", "alexa", "hey_mycroft"])
    hits = _hits(stage, recording(0.5, "alexa.wav", 1.0, "hey_mycroft.wav", 1.0, "hey_jarvis.wav", 1.0))
    assert [h.model for h in hits] == ["alexa_v0.1", "hey_mycroft_v0.1", "hey_jarvis_v0.1"]


def test_refractory_period_suppresses_a_quick_repeat(stage_for):
    audio = recording(0.5, "hey_jarvis.wav", 0.2, "hey_jarvis.wav", 0.5)
    assert len(_hits(stage_for(refractory_s=5.0), audio)) == 1
    assert len(_hits(stage_for(refractory_s=0.5), audio)) == 2


def test_patience_needs_consecutive_frames(stage_for):
    audio = recording(0.5, "hey_jarvis.wav", 0.5)
    assert len(_hits(stage_for(patience=3), audio)) == 1
    assert _hits(stage_for(patience=25), audio) == []  # 2 s above threshold never happens


def test_threshold_is_applied(stage_for):
    audio = recording(0.5, "hey_jarvis.wav", 0.5)
    assert _hits(stage_for(threshold=1.0), audio) == []


def test_phrase_from_model_name():
    assert phrase_from_model_name("hey_jarvis_v0.1") == "hey jarvis"
    assert phrase_from_model_name("/x/alexa_v0.1.onnx") == "alexa"


def test_second_pass_accepts_the_wake_phrase_and_rejects_false_alarms(config):
    cfg = config.with_overrides({"wake.verify.enabled": True})
    store = model_store(cfg)
    asr = load_asr(cfg, store)
    wake_model = load_wake_model(cfg, store)
    verifier = WakeVerifier(asr, cfg.wake.verify, wake_model.names)
    ok, heard, _ = verifier.verify(recording(0.2, "hey_jarvis.wav"))
    assert ok, heard
    ok, heard, _ = verifier.verify(recording("rhino_test_within_context.wav")[:32000])
    assert not ok, heard

    # end to end: a first stage tuned to fire on anything (threshold 0) is vetoed by the second pass
    loose = cfg.with_overrides({"wake.threshold": 0.0, "wake.refractory_s": 30.0})
    bus = EventBus()
    events = bus.record()
    listener = Listener(WakeStage(wake_model, loose.wake), Endpointer(loose.endpoint))
    pipeline = Pipeline(loose, listener, asr=None, bus=bus, verifier=WakeVerifier(asr, loose.wake.verify, wake_model.names))
    asyncio.run(pipeline.run(ArraySource(recording(0.5, "oww_negative_reference.wav", 0.5))))
    assert [e for e in events if isinstance(e, WakeRejected)], [type(e).__name__ for e in events]
    assert not [e for e in events if isinstance(e, WakeDetected)]
