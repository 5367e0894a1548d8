"""Timers and alarms tool plugin, persisted in SQLite so a restart loses none.

A timer counts down a duration; an alarm is due at a clock time. Both live in ``timers.db`` in
the plugin's data folder. A scheduler task sleeps until the next one is due and emits a
:class:`~assistant.events.TimerFired` event (the pipeline then speaks it). A timer that came due
while the assistant was not running fires as soon as it starts again.

Timers are found the way Home Assistant's timer intents find them: by name, by area, or by the
duration they were started with ("cancel the 5 minute timer").
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.bus import EventBus
from assistant.errors import ToolError
from assistant.events import TimerFired
from assistant.toolkit import PluginContext, Risk, Toolbox, hookimpl, tool
from assistant.toolkit.storage import open_sqlite

log = logging.getLogger(__name__)

__all__ = ["TimerStore", "Timers", "register_tools", "say_duration"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS timers (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,               -- 'timer' or 'alarm'
    name TEXT,
    area TEXT,
    start_hours INTEGER, start_minutes INTEGER, start_seconds INTEGER,
    duration_s REAL NOT NULL,
    due_at REAL,                      -- epoch seconds while running
    remaining_s REAL,                 -- while paused
    fired INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
)
"""


def say_duration(seconds: float) -> str:
    """``330`` → ``"5 minutes and 30 seconds"``."""
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    parts = [f"{v} {unit}{'s' if v != 1 else ''}" for v, unit in ((h, "hour"), (m, "minute"), (sec, "second")) if v]
    if not parts:
        return "0 seconds"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


@dataclass
class TimerRow:
    id: str
    kind: str
    name: str | None
    area: str | None
    start_hours: int | None
    start_minutes: int | None
    start_seconds: int | None
    duration_s: float
    due_at: float | None
    remaining_s: float | None
    fired: int
    created_at: float

    @property
    def paused(self) -> bool:
        return self.due_at is None and not self.fired

    def left(self, now: float) -> float:
        if self.paused:
            return float(self.remaining_s or 0)
        return max(0.0, (self.due_at or now) - now)

    def label(self) -> str:
        if self.kind == "alarm":
            when = dt.datetime.fromtimestamp(self.due_at or 0).strftime("%H:%M")
            return f"the {self.name + ' ' if self.name else ''}alarm for {when}"
        if self.name:
            return f"the {self.name} timer"
        return f"the {say_duration(self.duration_s)} timer"


class TimerStore:
    """SQLite persistence of timers (one connection, used from the event loop thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.db = open_sqlite(path, _SCHEMA, wal=True)  # a corrupt file is kept aside and started afresh
        except sqlite3.Error as exc:
            raise ToolError(f"cannot open the timer database {path}: {exc}", hint="check the disk and permissions") from None

    def _exec(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, args)
        except sqlite3.OperationalError as exc:
            raise ToolError(f"the timer database failed: {exc}", hint="the disk may be full or read-only") from None

    def add(self, row: TimerRow) -> None:
        self._exec("INSERT INTO timers VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", tuple(row.__dict__.values()))

    def active(self) -> list[TimerRow]:
        cur = self._exec("SELECT * FROM timers WHERE fired = 0 ORDER BY created_at")
        return [TimerRow(*r) for r in cur.fetchall()]

    def update(self, row: TimerRow) -> None:
        self._exec(
            "UPDATE timers SET due_at=?, remaining_s=?, fired=?, duration_s=? WHERE id=?",
            (row.due_at, row.remaining_s, row.fired, row.duration_s, row.id),
        )

    def delete(self, ids: list[str]) -> None:
        for i in ids:
            self._exec("DELETE FROM timers WHERE id=?", (i,))

    def close(self) -> None:
        self.db.close()


class Timers(Toolbox):
    """Timer and alarm tools with a scheduler.

    Args:
        db_path: The SQLite file.
        bus: Where :class:`TimerFired` events go.
        default_area: The assistant's area, recorded on new timers.
    """

    name = "timers"

    def __init__(self, db_path: Path, bus: EventBus, default_area: str = "") -> None:
        self.store = TimerStore(db_path)
        self.bus = bus
        self.default_area = default_area
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._closing = False
        self.clock = time.time

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.errors = 0
        """Scheduler errors survived."""
        self._closing = False
        self._task = asyncio.create_task(self._scheduler(), name="timer-scheduler")

    async def close(self) -> None:
        # the flag as well as the cancel: before Python 3.12, asyncio.wait_for swallows a
        # cancellation that lands just as the wake event is set (CPython gh-86296)
        self._closing = True
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.store.close()

    async def _scheduler(self) -> None:
        """Fire what is due, sleep until the next; an error (a locked database, a failing
        observer) is logged and retried a second later: the scheduler stops only on close()."""
        while not self._closing:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("timer scheduler: an error; retrying in 1 s")
                self.errors += 1
                await asyncio.sleep(1.0)

    async def _tick(self) -> None:
        """Fire the timers that are due, then sleep until the next one (or a change)."""
        now = self.clock()
        due = [t for t in self.store.active() if not t.paused and (t.due_at or 0) <= now]
        for t in due:
            t.fired = 1
            self.store.update(t)
            self.bus.emit(TimerFired(timer_id=t.id, name=t.label()))
        upcoming = [t.due_at for t in self.store.active() if not t.paused and t.due_at]
        delay = min(upcoming) - self.clock() if upcoming else 3600.0
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, min(delay, 3600.0)))
        except asyncio.TimeoutError:
            pass

    def _changed(self) -> None:
        """Wake the scheduler. Tools run in a worker thread, and an asyncio.Event may only be set
        on its loop's thread: from elsewhere the set is handed to the loop."""
        loop = self._loop
        if loop is None:  # not started: nothing sleeps on the event yet
            self._wake.set()
            return
        if loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    def snapshot(self) -> list[dict[str, Any]]:
        """Running and paused timers and alarms: label, seconds left, paused (for live views)."""
        now = self.clock()
        return [{"id": t.id, "label": t.label(), "left_s": round(t.left(now)), "paused": t.paused} for t in self.store.active()]

    def _find(self, name: str | None, area: str | None, start_hours: int | None, start_minutes: int | None, start_seconds: int | None, kind: str | None = None) -> list[TimerRow]:
        timers = self.store.active()
        if kind:
            timers = [t for t in timers if t.kind == kind]
        if any(v is not None for v in (start_hours, start_minutes, start_seconds)):
            timers = [t for t in timers if (t.start_hours or 0, t.start_minutes or 0, t.start_seconds or 0) == (start_hours or 0, start_minutes or 0, start_seconds or 0)]
        if name:
            timers = [t for t in timers if (t.name or "").casefold() == name.strip().casefold()]
        if area:
            timers = [t for t in timers if (t.area or "").casefold() == area.strip().casefold()]
        return timers

    def _one(self, **kw: Any) -> TimerRow:
        found = self._find(**kw)
        if not found:
            raise ToolError("There is no such timer." if any(kw.values()) else "There are no timers running.")
        if len(found) > 1:
            names = ", ".join(t.label() for t in found[:4])
            raise ToolError(f"Which one? There are {len(found)}: {names}.")
        return found[0]

    @tool(risk=Risk.HOME)
    def timer_start(self, hours: int = 0, minutes: int = 0, seconds: int = 0, name: str | None = None, area: str | None = None) -> dict:
        """Start a countdown timer.

        Args:
            hours: Hours.
            minutes: Minutes.
            seconds: Seconds.
            name: Optional name, e.g. "pasta".
            area: Optional area it belongs to.
        """
        total = hours * 3600 + minutes * 60 + seconds
        if total <= 0:
            raise ToolError("How long should the timer run?")
        if total > 24 * 3600:
            raise ToolError("Timers can run for at most 24 hours; set an alarm instead.")
        now = self.clock()
        row = TimerRow(uuid.uuid4().hex[:10], "timer", name or None, area or self.default_area or None, hours or None, minutes or None,
                       seconds or None, float(total), now + total, None, 0, now)
        self.store.add(row)
        self._changed()
        return {"say": f"Timer set for {say_duration(total)}" + (f" for {name}." if name else "."), "timer_id": row.id, "due_in_s": total}

    @tool(risk=Risk.HOME)
    def alarm_set(self, time_of_day: str, name: str | None = None) -> dict:
        """Set an alarm for a clock time today or tomorrow.

        Args:
            time_of_day: "07:30" or "7:30 pm".
            name: Optional label.
        """
        parsed = None
        for fmt in ("%H:%M", "%I:%M %p", "%I:%M%p", "%I %p", "%I%p", "%H"):
            try:
                parsed = dt.datetime.strptime(time_of_day.strip().upper(), fmt).time()
                break
            except ValueError:
                continue
        if parsed is None:
            raise ToolError(f"I don't understand the time {time_of_day!r}; say it like 07:30 or 7:30 pm.")
        now = dt.datetime.fromtimestamp(self.clock())
        when = now.replace(hour=parsed.hour, minute=parsed.minute, second=0, microsecond=0)
        if when <= now:
            when += dt.timedelta(days=1)
        row = TimerRow(uuid.uuid4().hex[:10], "alarm", name or None, self.default_area or None, None, None, None,
                       (when - now).total_seconds(), when.timestamp(), None, 0, self.clock())
        self.store.add(row)
        self._changed()
        day = "today" if when.date() == now.date() else "tomorrow"
        return {"say": f"Alarm set for {when.strftime('%H:%M')} {day}.", "timer_id": row.id}

    @tool(risk=Risk.HOME)
    def timer_cancel(self, name: str | None = None, area: str | None = None, start_hours: int | None = None,
                     start_minutes: int | None = None, start_seconds: int | None = None) -> dict:
        """Cancel a timer or alarm, found by name, area, or the duration it was started with.

        Args:
            name: Its name.
            area: Its area.
            start_hours: Hours it was started with.
            start_minutes: Minutes it was started with.
            start_seconds: Seconds it was started with.
        """
        t = self._one(name=name, area=area, start_hours=start_hours, start_minutes=start_minutes, start_seconds=start_seconds)
        self.store.delete([t.id])
        self._changed()
        return {"say": f"Cancelled {t.label()}.", "timer_id": t.id}

    @tool(risk=Risk.HOME)
    def timer_cancel_all(self, area: str | None = None) -> dict:
        """Cancel every timer (in an area, if given).

        Args:
            area: Only the timers of this area.
        """
        found = self._find(None, area, None, None, None, kind="timer")
        self.store.delete([t.id for t in found])
        self._changed()
        n = len(found)
        return {"say": "There were no timers." if not n else f"Cancelled {n} timer{'s' if n != 1 else ''}.", "cancelled": n}

    @tool(risk=Risk.READ_ONLY)
    def timer_status(self, name: str | None = None, area: str | None = None, start_hours: int | None = None,
                     start_minutes: int | None = None, start_seconds: int | None = None) -> dict:
        """Say how much time is left on timers and alarms.

        Args:
            name: Only the timer with this name.
            area: Only timers of this area.
            start_hours: Only timers started with these hours.
            start_minutes: Only timers started with these minutes.
            start_seconds: Only timers started with these seconds.
        """
        now = self.clock()
        found = self._find(name, area, start_hours, start_minutes, start_seconds)
        if not found:
            return {"say": "There are no timers running." if not any((name, area, start_hours, start_minutes, start_seconds)) else "There is no such timer.", "timers": []}
        items = [{"id": t.id, "label": t.label(), "left_s": round(t.left(now)), "paused": t.paused} for t in found]
        lines = [f"{t.label()} has {say_duration(t.left(now))} left" + (" and is paused" if t.paused else "") for t in found[:4]]
        text = "; ".join(lines)
        return {"say": text[0].upper() + text[1:] + ".", "timers": items}

    def _adjust(self, delta: float, **kw: Any) -> dict:
        t = self._one(**kw)
        now = self.clock()
        if t.paused:
            t.remaining_s = max(1.0, (t.remaining_s or 0) + delta)
        else:
            t.due_at = max(now + 1.0, (t.due_at or now) + delta)
        t.duration_s = max(1.0, t.duration_s + delta)
        self.store.update(t)
        self._changed()
        return {"say": f"{t.label()[0].upper() + t.label()[1:]} now has {say_duration(t.left(now))} left.", "timer_id": t.id}

    @tool(risk=Risk.HOME)
    def timer_add_time(self, hours: int = 0, minutes: int = 0, seconds: int = 0, name: str | None = None, area: str | None = None,
                       start_hours: int | None = None, start_minutes: int | None = None, start_seconds: int | None = None) -> dict:
        """Add time to a running timer.

        Args:
            hours: Hours to add.
            minutes: Minutes to add.
            seconds: Seconds to add.
            name: The timer's name.
            area: The timer's area.
            start_hours: Hours it was started with.
            start_minutes: Minutes it was started with.
            start_seconds: Seconds it was started with.
        """
        return self._adjust(hours * 3600 + minutes * 60 + seconds, name=name, area=area, start_hours=start_hours, start_minutes=start_minutes, start_seconds=start_seconds)

    @tool(risk=Risk.HOME)
    def timer_remove_time(self, hours: int = 0, minutes: int = 0, seconds: int = 0, name: str | None = None, area: str | None = None,
                          start_hours: int | None = None, start_minutes: int | None = None, start_seconds: int | None = None) -> dict:
        """Take time off a running timer.

        Args:
            hours: Hours to remove.
            minutes: Minutes to remove.
            seconds: Seconds to remove.
            name: The timer's name.
            area: The timer's area.
            start_hours: Hours it was started with.
            start_minutes: Minutes it was started with.
            start_seconds: Seconds it was started with.
        """
        return self._adjust(-(hours * 3600 + minutes * 60 + seconds), name=name, area=area, start_hours=start_hours, start_minutes=start_minutes, start_seconds=start_seconds)

    @tool(risk=Risk.HOME)
    def timer_pause(self, name: str | None = None, area: str | None = None, start_hours: int | None = None,
                    start_minutes: int | None = None, start_seconds: int | None = None) -> dict:
        """Pause a running timer.

        Args:
            name: The timer's name.
            area: The timer's area.
            start_hours: Hours it was started with.
            start_minutes: Minutes it was started with.
            start_seconds: Seconds it was started with.
        """
        t = self._one(name=name, area=area, start_hours=start_hours, start_minutes=start_minutes, start_seconds=start_seconds)
        if t.paused:
            return {"say": f"{t.label()} is already paused.", "timer_id": t.id}
        t.remaining_s = t.left(self.clock())
        t.due_at = None
        self.store.update(t)
        self._changed()
        return {"say": f"Paused {t.label()}.", "timer_id": t.id}

    @tool(risk=Risk.HOME)
    def timer_resume(self, name: str | None = None, area: str | None = None, start_hours: int | None = None,
                     start_minutes: int | None = None, start_seconds: int | None = None) -> dict:
        """Resume a paused timer.

        Args:
            name: The timer's name.
            area: The timer's area.
            start_hours: Hours it was started with.
            start_minutes: Minutes it was started with.
            start_seconds: Seconds it was started with.
        """
        t = self._one(name=name, area=area, start_hours=start_hours, start_minutes=start_minutes, start_seconds=start_seconds)
        if not t.paused:
            return {"say": f"{t.label()} is already running.", "timer_id": t.id}
        t.due_at = self.clock() + (t.remaining_s or 0)
        t.remaining_s = None
        self.store.update(t)
        self._changed()
        return {"say": f"Resumed {t.label()}.", "timer_id": t.id}


@hookimpl
def register_tools(register, context: PluginContext) -> None:
    timers = Timers(context.data_dir / "timers.db", context.bus, context.config.home.area)
    context.provide("timers", timers)
    register(timers)
