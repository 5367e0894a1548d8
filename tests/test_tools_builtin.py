"""The built-in tools other than home control: timers, clock, calculator, notes and lists, search."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from assistant.bus import EventBus
from assistant.config import Config
from assistant.events import TimerFired
from assistant.toolkit import ToolRegistry


@pytest.fixture
def cfg(tmp_path) -> Config:
    return Config().with_overrides({"paths.data_dir": str(tmp_path / "data")})


async def _reg(cfg: Config, bus: EventBus | None = None, confirm=None) -> ToolRegistry:
    return await ToolRegistry.create(cfg, bus or EventBus(), confirm=confirm)


# ---------------------------------------------------------------------------- timers


async def test_timer_fires_an_event_when_due(cfg):
    bus = EventBus()
    events = bus.record()
    reg = await _reg(cfg, bus)
    try:
        out = await reg.call("timer_start", {"seconds": 1, "name": "tea"})
        assert out.say == "Timer set for 1 second for tea."
        for _ in range(40):
            if any(isinstance(e, TimerFired) for e in events):
                break
            await asyncio.sleep(0.1)
        fired = [e for e in events if isinstance(e, TimerFired)]
        assert len(fired) == 1 and fired[0].name == "the tea timer"
        assert (await reg.call("timer_status", {})).say == "There are no timers running."
    finally:
        await reg.close()


async def test_a_timer_set_from_the_tool_thread_wakes_the_scheduler_safely(cfg):
    """Tools run in a worker thread; the scheduler sleeps on the loop (an hour, with no timers).
    asyncio's debug mode raises on a loop call from another thread (the unsafe wake it once made)."""
    asyncio.get_running_loop().set_debug(True)
    bus = EventBus()
    events = bus.record()
    reg = await _reg(cfg, bus)
    try:
        await asyncio.sleep(0.1)  # the scheduler is asleep for an hour
        out = await reg.call("timer_start", {"seconds": 1, "name": "toast"})
        assert out.ok and out.say == "Timer set for 1 second for toast.", out
        for _ in range(40):
            if any(isinstance(e, TimerFired) for e in events):
                break
            await asyncio.sleep(0.1)
        assert [e.name for e in events if isinstance(e, TimerFired)] == ["the toast timer"]
    finally:
        await reg.close()


async def test_the_scheduler_survives_a_database_error(cfg):
    """A locked database (the storage boundary) once: the error is counted and the timer still fires."""
    import sqlite3

    bus = EventBus()
    events = bus.record()
    reg = await _reg(cfg, bus)
    timers = reg.service("timers")
    real = timers.store.active
    failures = []

    def flaky():
        if not failures:
            failures.append(1)
            raise sqlite3.OperationalError("database is locked")
        return real()

    try:
        await reg.call("timer_start", {"seconds": 1, "name": "eggs"})
        timers.store.active = flaky
        timers._changed()  # the scheduler looks again now, and meets the error
        for _ in range(60):
            if any(isinstance(e, TimerFired) for e in events):
                break
            await asyncio.sleep(0.1)
        assert timers.errors == 1
        assert [e.name for e in events if isinstance(e, TimerFired)] == ["the eggs timer"]
    finally:
        await reg.close()


async def test_timers_survive_a_restart_and_fire_late(cfg):
    reg = await _reg(cfg)
    await reg.call("timer_start", {"minutes": 10, "name": "pasta"})
    await reg.call("timer_start", {"seconds": 1, "name": "egg"})
    await reg.close()
    await asyncio.sleep(1.3)  # the egg timer comes due while the assistant is down
    bus = EventBus()
    events = bus.record()
    reg = await _reg(cfg, bus)
    try:
        await asyncio.sleep(0.2)
        assert [e.name for e in events if isinstance(e, TimerFired)] == ["the egg timer"]
        status = await reg.call("timer_status", {})
        assert [t["label"] for t in status.result["timers"]] == ["the pasta timer"]
        assert 590 < status.result["timers"][0]["left_s"] <= 600
    finally:
        await reg.close()


async def test_timer_pause_resume_adjust_and_cancel(cfg):
    reg = await _reg(cfg)
    try:
        await reg.call("timer_start", {"minutes": 5})
        await reg.call("timer_start", {"minutes": 20, "name": "roast"})
        out = await reg.call("timer_cancel", {})
        assert not out.ok and out.error.startswith("Which one? There are 2")
        assert (await reg.call("timer_pause", {"name": "roast"})).say == "Paused the roast timer."
        status = await reg.call("timer_status", {"name": "roast"})
        assert status.result["timers"][0]["paused"] is True
        out = await reg.call("timer_add_time", {"minutes": 5, "name": "roast"})
        assert "25 minutes" in out.say
        assert (await reg.call("timer_resume", {"name": "roast"})).ok
        assert (await reg.call("timer_cancel", {"start_minutes": 5})).say == "Cancelled the 5 minutes timer."
        assert (await reg.call("timer_cancel_all", {})).say == "Cancelled 1 timer."
        out = await reg.call("timer_start", {})
        assert not out.ok and "How long" in out.error
    finally:
        await reg.close()


async def test_alarm_is_set_for_the_next_occurrence(cfg):
    reg = await _reg(cfg)
    try:
        out = await reg.call("alarm_set", {"time_of_day": "7:30 am"})
        assert out.ok and out.say.startswith("Alarm set for 07:30")
        out = await reg.call("alarm_set", {"time_of_day": "half past"})
        assert not out.ok and "07:30 or 7:30 pm" in out.error
    finally:
        await reg.close()


# ---------------------------------------------------------------------------- clock, calculator


async def test_clock(cfg):
    reg = await _reg(cfg)
    try:
        now = dt.datetime.now()
        t = await reg.call("clock_time", {})
        assert t.result["time"][:2] in (now.strftime("%H"), (now + dt.timedelta(minutes=1)).strftime("%H"))
        d = await reg.call("clock_date", {})
        assert d.result["weekday"] == now.strftime("%A") and str(now.year) in d.say
    finally:
        await reg.close()


async def test_calculator_and_units(cfg):
    reg = await _reg(cfg)
    try:
        assert (await reg.call("calculate", {"expression": "12 * (3 + 4) - 2 ** 3"})).result["value"] == 76
        out = await reg.call("calculate", {"expression": "1.5 km + 250 m"})
        assert out.result["value"] == pytest.approx(1.75) and out.result["unit"] == "kilometer"
        assert (await reg.call("convert_units", {"value": 100, "from_unit": "degC", "to_unit": "degF"})).result["value"] == pytest.approx(212)
        assert (await reg.call("arithmetic", {"a": 9, "operation": "divided by", "b": 2})).say == "9 divided by 2 is 4.5."
        for bad in ("1/0", "__import__('os').system('true')", "open('x')", ""):
            assert not (await reg.call("calculate", {"expression": bad})).ok
        out = await reg.call("convert_units", {"value": 1, "from_unit": "kg", "to_unit": "meter"})
        assert not out.ok and "can't convert" in out.error
    finally:
        await reg.close()


# ---------------------------------------------------------------------------- notes, lists, search


async def test_notes_lists_and_local_search(cfg, tmp_path):
    reg = await _reg(cfg)
    docs = cfg.paths.resolved_data_dir() / "documents"
    try:
        assert (await reg.call("note_add", {"text": "The spare key is under the blue flower pot"})).say == "Noted."
        assert "spare key" in (await reg.call("notes_read", {})).say
        await reg.call("list_add", {"item": "oat milk"})
        await reg.call("list_add", {"item": "take out the trash", "list_name": "Chores"})
        assert (await reg.call("list_read", {})).result["items"] == ["oat milk"]
        assert (await reg.call("list_complete", {"item": "take out the trash", "list_name": "chores"})).ok
        assert (await reg.call("list_read", {"list_name": "chores"})).say == "Your chores list is empty."
        assert not (await reg.call("list_complete", {"item": "caviar"})).ok

        out = await reg.call("search_documents", {"query": "where is the spare key"})
        assert out.result["results"][0]["file"] == "notes.md"
        (docs / "boiler.md").write_text("# Boiler\n\nThe boiler pressure should be between 1 and 1.5 bar.\n\nService every spring.\n")
        out = await reg.call("search_documents", {"query": "boiler pressure"})
        assert out.result["results"][0]["file"] == "boiler.md" and "1.5 bar" in out.result["results"][0]["text"]
        time.sleep(0.01)
        (docs / "boiler.md").write_text("# Boiler\n\nThe boiler was replaced in 2024 with a heat pump.\n")
        out = await reg.call("search_documents", {"query": "heat pump"})
        assert out.result["results"][0]["file"] == "boiler.md"
        assert not (await reg.call("search_documents", {"query": "pressure bar"})).result["results"]  # old text is gone
        (docs / "boiler.md").unlink()
        assert not (await reg.call("search_documents", {"query": "heat pump"})).result["results"]
    finally:
        await reg.close()


@pytest.fixture
def searxng():
    """A loopback server speaking SearXNG's JSON API (no SearXNG can run here)."""
    queries = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            q = parse_qs(urlparse(self.path).query)
            queries.append(q)
            if q.get("format") != ["json"]:
                self.send_response(403)
                self.end_headers()
                return
            body = json.dumps({"query": q["q"][0], "results": [
                {"title": "Mount Everest - Wikipedia", "url": "https://en.wikipedia.org/wiki/Mount_Everest", "content": "Mount Everest is 8,849 m high."},
                {"title": "Everest facts", "url": "https://example.org/everest", "content": "Facts."},
            ]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", queries
    server.shutdown()


async def test_web_search_is_off_device_and_confirmed(tmp_path, searxng):
    url, queries = searxng
    cfg = Config().with_overrides({"paths.data_dir": str(tmp_path / "d"), "search.searxng_url": url})
    asked = []

    async def yes(req):
        asked.append(req.prompt)
        return True

    reg = await _reg(cfg, confirm=yes)
    try:
        out = await reg.call("web_search", {"query": "how high is mount everest", "limit": 1})
        assert out.ok and out.say == "Mount Everest - Wikipedia: Mount Everest is 8,849 m high."
        assert len(out.result["results"]) == 1
        assert queries[0]["q"] == ["how high is mount everest"]
        assert asked == ["Search the web for how high is mount everest? The query leaves this device."]
    finally:
        await reg.close()
    reg = await _reg(Config().with_overrides({"paths.data_dir": str(tmp_path / "e")}), confirm=yes)
    try:
        out = await reg.call("web_search", {"query": "x"})
        assert not out.ok and "not set up" in out.error
    finally:
        await reg.close()
    reg = await _reg(Config().with_overrides({"paths.data_dir": str(tmp_path / "f"), "search.searxng_url": "http://127.0.0.1:9"}), confirm=yes)
    try:
        out = await reg.call("web_search", {"query": "x"})
        assert not out.ok and "can't reach" in out.error
    finally:
        await reg.close()


async def test_a_corrupt_state_file_is_kept_aside_and_the_tool_keeps_working(config):
    """A timers database that is no longer a database (an SD card's doing) does not disable the
    timers: the file is kept aside for recovery and a new one started."""
    from assistant.bus import EventBus
    from assistant.toolkit import ToolRegistry

    reg = await ToolRegistry.create(config, EventBus())
    await reg.close()
    db = next(config.paths.resolved_data_dir().rglob("timers.db"))
    db.write_bytes(b"not a database at all" * 20)
    reg = await ToolRegistry.create(config, EventBus())
    try:
        assert "timer_start" in reg.tools and not [e for e in reg.errors if "timer" in e]
        out = await reg.call("timer_start", {"minutes": 3})
        assert out.ok, out.error
        aside = list(db.parent.glob("timers.db.corrupt-*"))
        assert len(aside) == 1 and aside[0].read_bytes().startswith(b"not a database")
    finally:
        await reg.close()
