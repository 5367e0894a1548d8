"""The TUI driven for real with Textual's Pilot: typed requests, confirmation dialogs, a recording,
settings, and an SVG snapshot of the main screen."""

from __future__ import annotations

import asyncio

import pytest

from assistant.audio import SAMPLE_RATE, write_wav
from assistant.config import load_config
from assistant.session import SessionOptions
from tui.app import JarvisApp
from tui.widgets import ConfirmDialog, ConversationLog, LatencyTable

from .conftest import recording


def _lines(app: JarvisApp) -> list[str]:
    return [strip.text for strip in app.query_one(ConversationLog).lines]


async def _until(pilot, cond, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the TUI")
        await pilot.pause(0.1)


@pytest.fixture
def text_app(config, tmp_path):
    cfg = config.with_overrides({"llm.enabled": False})
    return JarvisApp(cfg, SessionOptions(voice=False, speak=False), config_path=tmp_path / "config.toml")


async def test_typed_request_shows_the_tool_call_and_the_reply(text_app):
    async with text_app.run_test(size=(120, 36)) as pilot:
        await asyncio.wait_for(text_app.ready.wait(), 60)
        assert text_app.start_error is None
        await pilot.click("#request")
        await pilot.press(*"turn on the living room lamp", "enter")
        await _until(pilot, lambda: any(l.startswith("jarvis") for l in _lines(text_app)))
        lines = _lines(text_app)
        assert any(l.startswith("you") and "turn on the living room lamp" in l for l in lines)
        assert any("fast_path" in l and "HassTurnOn" in l for l in lines)
        assert any("home_turn_on(name='Living Room Lamp')" in l for l in lines)
        assert any(l.startswith("jarvis") and "Turned on the living room lamp." in l for l in lines)
        table = text_app.query_one(LatencyTable)
        assert table.row_count >= 1  # the turn's timings
        assert text_app.session.home.snapshot().entity("light.living_room_lamp").state == "on"


@pytest.mark.parametrize("press,expected", [("y", "unlocked"), ("n", "locked")])
async def test_confirmation_dialog_accepted_and_refused(text_app, press, expected):
    async with text_app.run_test(size=(120, 36)) as pilot:
        await asyncio.wait_for(text_app.ready.wait(), 60)
        await pilot.click("#request")
        await pilot.press(*"unlock the front door", "enter")
        await _until(pilot, lambda: isinstance(text_app.screen, ConfirmDialog))
        assert text_app.screen.question == "Do you want me to unlock the Front Door?"
        await pilot.press(press)
        await _until(pilot, lambda: any(l.startswith("jarvis") for l in _lines(text_app)))
        assert text_app.session.home.snapshot().entity("lock.front_door").state == expected
        reply = [l for l in _lines(text_app) if l.startswith("jarvis")][-1]
        assert ("Unlocked the front door." in reply) if press == "y" else ("won't" in reply)


async def test_recording_input_shows_wake_transcript_and_reply(config, tmp_path):
    rec = tmp_path / "in.wav"
    write_wav(rec, recording(0.3, "hey_jarvis.wav", 0.3, "wfw_turn_on_the_living_room_lamp.wav", 1.2), SAMPLE_RATE)
    cfg = config.with_overrides({"llm.enabled": False, "asr.partial_interval_ms": 500})
    app = JarvisApp(cfg, SessionOptions(input_file=rec, output_file=tmp_path / "out.wav", realtime=True), config_path=tmp_path / "c.toml")
    async with app.run_test(size=(120, 36)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 90)
        assert app.start_error is None
        await _until(pilot, lambda: any(l.startswith("jarvis") for l in _lines(app)), timeout=90)
        lines = _lines(app)
        assert any(l.startswith("— wake word hey_jarvis_v0.1") for l in lines)
        assert any(l.startswith("you") and "living room lamp" in l.lower() for l in lines)
        assert any(l.startswith("jarvis") and "Turned on the living room lamp." in l for l in lines)
    assert (tmp_path / "out.wav").stat().st_size > 10_000


async def test_panels_follow_the_home_and_the_timers(text_app):
    async with text_app.run_test(size=(120, 36)) as pilot:
        await asyncio.wait_for(text_app.ready.wait(), 60)
        home = text_app.query_one("#home")
        assert home.row_count == len(text_app.session.home.snapshot().entities)
        lamp_row = next(i for i in range(home.row_count) if home.get_row_at(i)[1] == "Living Room Lamp")
        assert home.get_row_at(lamp_row)[3] == "off"
        await pilot.click("#request")
        await pilot.press(*"turn on the living room lamp", "enter")
        await _until(pilot, lambda: home.get_row_at(next(i for i in range(home.row_count) if home.get_row_at(i)[1] == "Living Room Lamp"))[3] != "off")
        await pilot.press(*"set a timer for 5 minutes", "enter")
        timers = text_app.query_one("#timers")
        await _until(pilot, lambda: timers.row_count == 1)
        assert timers.get_row_at(0)[0] == "the 5 minutes timer"


async def test_settings_are_validated_and_saved(text_app, tmp_path):
    async with text_app.run_test(size=(120, 36)) as pilot:
        await asyncio.wait_for(text_app.ready.wait(), 60)
        text_app.query_one("#right").active = "tab-audio"
        await pilot.pause()
        threshold = text_app.query_one("#threshold")
        threshold.value = "1.7"
        await pilot.click("#save-threshold")
        await pilot.pause(0.5)
        assert not (tmp_path / "config.toml").exists()  # refused: a wake score is 0..1
        assert any("less than or equal to 1" in n.message for n in text_app._notifications)
        threshold.value = "0.65"
        await pilot.click("#save-threshold")
        await pilot.pause(0.5)
        assert load_config(tmp_path / "config.toml").wake.threshold == 0.65
        text_app.query_one("#right").active = "tab-remote"
        await pilot.pause()
        text_app.query_one("#policy").value = "ask"
        await pilot.pause()
        assert load_config(tmp_path / "config.toml").remote.policy == "ask"


def test_main_screen_snapshot(snap_compare, config, tmp_path):
    cfg = config.with_overrides({"llm.enabled": False})
    app = JarvisApp(cfg, SessionOptions(voice=False, speak=False), config_path=tmp_path / "config.toml")

    async def ready(pilot) -> None:
        await asyncio.wait_for(app.ready.wait(), 60)
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(120, 36), run_before=ready)
