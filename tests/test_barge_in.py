"""Barge-in and self-wake prevention, with the acoustic path simulated (speaker → microphone echo)."""

from __future__ import annotations

import asyncio

import pytest

from assistant.app import load_speech
from assistant.audio import SAMPLE_RATE, resample
from assistant.bus import EventBus
from assistant.events import FinalTranscript, Interrupt, Reply
from assistant.pipeline import Pipeline
from assistant.speech.asr import normalize_transcript
from assistant.testing.loopback import Loopback

from .conftest import recording

LONG = " ".join(f"This is sentence number {i} of a long story about the sea." for i in range(1, 13))


class ScriptedResponder:
    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.heard: list[str] = []

    async def respond(self, text: str, *, turn: int):
        self.heard.append(text)
        yield self.replies.pop(0) if self.replies else "OK."


def _synth(tts, text: str):
    audio, _ = tts.synthesize_all(text)
    return resample(audio, tts.sample_rate, SAMPLE_RATE)


@pytest.fixture(scope="module")
def speech(session_config):
    return asyncio.run(load_speech(session_config))


async def _run(config, speech, room: Loopback, responder) -> tuple[list, Pipeline]:
    bus = EventBus()
    events = bus.record()
    speech.listener.wake.model.reset()
    speech.tts.clear_cache()  # every reply synthesised as it was before the reply cache (its timing: the one CI failure seen with it, unexplained)
    from assistant.app import build_listener

    listener = build_listener(config, speech.listener.wake.model)
    pipe = Pipeline(config.with_overrides({"tts.earcon": False}), listener, asr=speech.asr, tts=speech.tts, responder=responder,
                    sink=room.sink, bus=bus)
    await pipe.run(room.source)
    return events, pipe


async def test_wake_word_during_a_long_reply_stops_it(session_config, speech):
    tts = speech.tts
    request = _synth(tts, "Tell me a long story.")
    question = _synth(tts, "What time is it?")
    # the story starts ~1 s after the request; "hey jarvis" comes 4 s into it
    room = Loopback(recording(0.5, "hey_jarvis.wav", 1.0, request, 5.5, "hey_jarvis.wav", 0.3, question, 1.0), echo_gain=0.0, tail_s=3.0)
    responder = ScriptedResponder(LONG, "It is noon.")
    events, pipe = await _run(session_config, speech, room, responder)
    interrupts = [e for e in events if isinstance(e, Interrupt)]
    assert [e.reason for e in interrupts] == ["barge_in"]
    full_s = sum(c.shape[0] for c in tts.synthesize(LONG)) / tts.sample_rate
    assert room.played_samples / SAMPLE_RATE < full_s * 0.7  # cut off, not played out
    finals = [normalize_transcript(e.text) for e in events if isinstance(e, FinalTranscript)]
    assert finals[-1] == "what time is it"
    assert responder.heard[-1].lower().startswith("what time is it")
    assert [e.text for e in events if isinstance(e, Reply)][-1] == "It is noon."


async def test_the_assistant_does_not_wake_itself(session_config, speech):
    """A reply that says "hey Jarvis", heard back through the microphone, does not interrupt it."""
    tts = speech.tts
    request = _synth(tts, "What is your name?")
    reply = "My name is Jarvis. Say hey Jarvis, and I listen. Hey Jarvis is my wake word."
    room = Loopback(recording(0.5, "hey_jarvis.wav", 1.0, request, 1.0), echo_gain=0.9, tail_s=9.0)
    events, pipe = await _run(session_config, speech, room, ScriptedResponder(reply))
    assert not [e for e in events if isinstance(e, Interrupt)]
    assert pipe.ignored_barge_ins >= 1  # the echo did fire the wake model; it was recognised as our own voice
    full_s = sum(c.shape[0] for c in tts.synthesize(reply)) / tts.sample_rate
    assert room.played_samples / SAMPLE_RATE >= full_s * 0.95


async def test_a_spoken_stop_during_a_long_reply_stops_it(session_config, speech):
    """"Stop talking" without the wake word, 4 s into a story: the story stops and nothing new is asked.
    (Two words: Piper's sampling makes a lone "Stop." come out as "dot." for Whisper tiny about one
    time in fifteen; on "Stop talking." it was right 10 of 10.)"""
    tts = speech.tts
    request = _synth(tts, "Tell me a long story.")
    room = Loopback(recording(0.5, "hey_jarvis.wav", 1.0, request, 5.5, _synth(tts, "Stop talking."), 4.0), echo_gain=0.0, tail_s=3.0)
    responder = ScriptedResponder(LONG)
    events, pipe = await _run(session_config, speech, room, responder)
    assert [e.reason for e in events if isinstance(e, Interrupt)] == ["stop"]
    full_s = sum(c.shape[0] for c in tts.synthesize(LONG)) / tts.sample_rate
    assert room.played_samples / SAMPLE_RATE < full_s * 0.7
    assert len(responder.heard) == 1  # "stop" was not taken as a new request


async def test_a_reply_that_says_stop_does_not_stop_itself(session_config, speech):
    """The reply's own "Stop." heard back through the microphone is its echo, not the user. (Sentence
    pauses of 600 ms make the echoed "Stop." a short utterance of its own, so it is transcribed.)"""
    tts = speech.tts
    request = _synth(tts, "How do I play statues?")
    reply = "Music plays and everyone dances. Then I say. Stop! Everyone freezes. Never mind who moves. Stop. That is the game."
    room = Loopback(recording(0.5, "hey_jarvis.wav", 1.0, request, 1.0), echo_gain=0.9, tail_s=14.0)
    config = session_config.with_overrides({"tts.sentence_pause_ms": 600})
    events, pipe = await _run(config, speech, room, ScriptedResponder(reply))
    assert not [e for e in events if isinstance(e, Interrupt)]
    full_s = sum(c.shape[0] for c in tts.synthesize(reply)) / tts.sample_rate
    assert room.played_samples / SAMPLE_RATE >= full_s * 0.95
    assert pipe.voice.stop_echoes >= 1  # a short "Stop." was heard back, transcribed, and recognised as the reply's own


def test_stop_phrases_both_ways():
    from assistant.engine.stopword import is_echo, is_stop_phrase, reply_words

    names = ["hey jarvis"]
    for text in ("Stop.", "Stop it, please.", "Please stop.", "Jarvis, stop.", "Hey Jarvis, stop!", "Cancel.", "Never mind.",
                 "Be quiet.", "Shut up.", "That's enough.", "Cancelled.", "Canceled.", "Okay, that's enough.", "Stop talking.", "Stop, stop.", "Shh."):
        assert is_stop_phrase(text, names), text
    for text in ("Stop the music.", "Don't stop.", "Bus stop.", "I can't stop laughing.", "Cancel my timer.", "Never mind the lights",
                 "What time is it?", "", "Hey Jarvis", "stopwatch", "quietly"):
        assert not is_stop_phrase(text, names), text
    assert is_echo("Stop!", reply_words("Then I say stop, and everyone freezes."))
    assert not is_echo("Stop!", reply_words("It is sunny today."))
