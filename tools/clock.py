"""Clock and date tool plugin (local time of this machine)."""

from __future__ import annotations

import datetime as dt

from assistant.toolkit import Risk, hookimpl, tool

__all__ = ["clock_date", "clock_time", "register_tools"]


def _now() -> dt.datetime:
    return dt.datetime.now().astimezone()


@tool(risk=Risk.READ_ONLY, templates=["what time is it", "what's the time", "tell me the time"])
def clock_time() -> dict:
    """Tell the current local time."""
    now = _now()
    hour = now.strftime("%I").lstrip("0") or "12"
    spoken = f"It is {hour}:{now.strftime('%M %p')}." if now.minute else f"It is {hour} {now.strftime('%p')}."
    return {"say": spoken, "time": now.strftime("%H:%M"), "timezone": now.tzname()}


@tool(risk=Risk.READ_ONLY, templates=["what's the date [today]", "what is [the] date [today]", "what day is it [today]"])
def clock_date() -> dict:
    """Tell today's date and weekday."""
    now = _now()
    return {"say": f"Today is {now.strftime('%A, %B')} {now.day}, {now.year}.", "date": now.date().isoformat(), "weekday": now.strftime("%A")}


@hookimpl
def register_tools(register) -> None:
    register(clock_time)
    register(clock_date)
