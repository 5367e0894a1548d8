"""The turn engine with real models: one turn at a time from every source, one way to interrupt,
and the architecture document naming processors that exist."""

from __future__ import annotations

import asyncio
import importlib
import re
from pathlib import Path

import soundfile as sf

from assistant.audio import SAMPLE_RATE, write_wav
from assistant.engine.channels import TextChannel
from assistant.events import FinalTranscript, Interrupt, Reply, Speak, SpeechEnded, ToolCallFinished, TurnFinished
from assistant.session import Session, SessionOptions

from .conftest import recording
from .test_run import _speech_segments

ROOT = Path(__file__).resolve().parent.parent


async def _wait_for(bus_history: list, cond, timeout: float = 60.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = next((e for e in bus_history if cond(e)), None)
        if found is not None:
            return found
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_typed_and_a_spoken_request_at_once_are_answered_in_turn_each_on_its_own_output(config, tmp_path):
    """A request typed (TUI, text only) the moment a spoken one ends: both are answered, one
    after the other, the typed one as text and the spoken one on the speaker only."""
    rec = tmp_path / "in.wav"
    write_wav(rec, recording(0.3, "hey_jarvis.wav", 0.3, "wfw_turn_on_the_living_room_lamp.wav", 4.0), SAMPLE_RATE)
    out = tmp_path / "out.wav"
    session = Session(config.with_overrides({"llm.enabled": False, "tts.earcon": False}),
                      SessionOptions(input_file=rec, output_file=out, realtime=True))
    history = session.bus.record()
    await session.start()
    try:
        voice = asyncio.create_task(session.run_voice())
        await _wait_for(history, lambda e: isinstance(e, SpeechEnded))
        typed = TextChannel(session.pipeline.speaker, voice=False)
        typed_reply = await session.ask("what time is it", channel=typed)
        await voice
    finally:
        await session.close()
    assert typed_reply.startswith("It is")
    finals = [e for e in history if isinstance(e, FinalTranscript) and e.text]
    spoken_turn = next(e.turn for e in finals if "lamp" in e.text.lower())
    typed_turn = next(e.turn for e in finals if e.text == "what time is it")
    replies = {e.turn: e.text for e in history if isinstance(e, Reply)}
    assert replies[spoken_turn] == "Turned on the living room lamp." and replies[typed_turn] == typed_reply
    # one after the other: everything said in one turn comes before the other turn's first word
    order = [e.turn for e in history if isinstance(e, (Speak, TurnFinished)) and e.turn in (spoken_turn, typed_turn)]
    first = order[0]
    assert order == [first] * order.count(first) + [t for t in order if t != first]
    # each on its own output: the speaker said only the spoken request's reply
    segments = _speech_segments(out)
    assert len(segments) == 1
    assert any(e.ok and e.tool == "home_turn_on" for e in history if isinstance(e, ToolCallFinished) and e.turn == spoken_turn)


async def test_esc_during_a_long_typed_reply_stops_all_of_it(config, tmp_path):
    """Esc stops the whole reply — the sentence being spoken and every one after it — not just
    the current sentence; the assistant is free at once for the next request."""
    out = tmp_path / "out.wav"
    session = Session(config.with_overrides({"llm.enabled": False}), SessionOptions(voice=False, output_file=out))
    history = session.bus.record()
    await session.start()
    notes = ["the spare key is under the blue flower pot by the back door", "call the plumber about the leak under the kitchen sink",
             "the wifi password is written on the side of the fridge"]
    try:
        typed = TextChannel(session.pipeline.speaker, voice=False)
        for n in notes:
            assert await session.ask(f"take a note that {n}", channel=typed) == "Noted."
        history.clear()
        ask = asyncio.create_task(session.ask("read me my notes"))  # four sentences, spoken
        await _wait_for(history, lambda e: isinstance(e, Speak))
        await session.interrupt()  # the Esc key
        said = await asyncio.wait_for(ask, 10)
        spoken = [e.text for e in history if isinstance(e, Speak)]
        await asyncio.sleep(1.5)  # nothing more comes out after the interrupt
        assert [e.text for e in history if isinstance(e, Speak)] == spoken
        assert [e.reason for e in history if isinstance(e, Interrupt)] == ["user"]
        after = await session.ask("what time is it", channel=typed)  # and the assistant is free again
    finally:
        await session.close()
    assert len(spoken) < 4 and not any("fridge" in s for s in spoken) and "fridge" not in said
    assert after.startswith("It is")
    info = sf.info(str(out))
    assert info.frames / info.samplerate < 4.0  # at most the first sentence or two, not four


def test_every_processor_in_the_architecture_diagram_exists():
    """docs/architecture.md names each processor as `module.Class`; each must import, and each
    processor module under assistant/engine must be in the document."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    names = set(re.findall(r"`(assistant(?:\.\w+)+)\.([A-Z]\w+)`", doc))
    assert len(names) >= 10
    for module, cls in names:
        assert hasattr(importlib.import_module(module), cls), f"{module}.{cls} is in docs/architecture.md but does not exist"
    modules = {m for m, _ in names}
    for path in (ROOT / "assistant" / "engine").glob("*.py"):
        if path.stem != "__init__":
            assert f"assistant.engine.{path.stem}" in modules, f"assistant/engine/{path.name} is not in docs/architecture.md"
