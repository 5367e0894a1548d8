"""Follow-ups without an LLM: "and the kitchen too", "make it warmer", "a bit brighter".

An elliptical request right after a home command reuses that command: a new place or device
named in the request replaces the old target ("turn on the lights in the living room" … "and
the kitchen too" → the same call for the kitchen), and relative words adjust the last value
("warmer" = thermostat target + 1 degree, "brighter" = +25 % brightness, "louder" = +10 % volume).
This is deterministic and takes well under a millisecond; what it cannot resolve goes to the LLM,
which sees the same history.
"""

from __future__ import annotations

import re
from typing import Any

from .memory import Conversation, looks_elliptical

__all__ = ["resolve_follow_up"]

_WARMER = re.compile(r"\b(warmer|hotter|heat (it )?up)\b", re.I)
_COOLER = re.compile(r"\b(cooler|colder|cool (it )?down)\b", re.I)
_BRIGHTER = re.compile(r"\b(brighter|more light)\b", re.I)
_DIMMER = re.compile(r"\b(dimmer|darker|less bright)\b", re.I)
_LOUDER = re.compile(r"\b(louder|turn it up|volume up)\b", re.I)
_QUIETER = re.compile(r"\b(quieter|softer|turn it down|volume down)\b", re.I)

TEMPERATURE_STEP = 1.0
BRIGHTNESS_STEP = 25
VOLUME_STEP = 10


def _find_names(text: str, names: list[str]) -> str | None:
    low = " " + re.sub(r"[^\w\s]", " ", text.lower()) + " "
    best = None
    for n in names:
        if f" {n.lower()} " in low and (best is None or len(n) > len(best)):
            best = n
    return best


def resolve_follow_up(text: str, conversation: Conversation, home: Any | None) -> tuple[str, dict[str, Any], str] | None:
    """The tool call an elliptical request means, or None.

    Args:
        text: The request.
        conversation: The session (the previous tool call is read from it).
        home: The home backend (names, current values), or None.

    Returns:
        (tool, arguments, why) or None when it is not a follow-up this can resolve.
    """
    last = conversation.last_tool_call()
    if last is None or home is None or not (looks_elliptical(text) or _relative(text)):
        return None
    tool, args = last["tool"], dict(last["arguments"])
    snap = home.snapshot()
    place = {k: v for k, v in args.items() if k in ("name", "area", "floor") and v}

    if _WARMER.search(text) or _COOLER.search(text):
        step = TEMPERATURE_STEP if _WARMER.search(text) else -TEMPERATURE_STEP
        thermostats = [e for e in snap.entities if e.domain == "climate"]
        if place.get("name"):
            thermostats = [e for e in thermostats if e.name.lower() == str(place["name"]).lower()] or thermostats
        if not thermostats:
            return None
        target = thermostats[0]
        current = target.attributes.get("temperature", target.attributes.get("current_temperature"))
        if current is None:
            return None
        return "home_set_temperature", {"name": target.name, "temperature": float(current) + step}, "relative temperature"

    if tool.startswith("home_") and (_BRIGHTER.search(text) or _DIMMER.search(text)):
        lights = _targets(snap, place, "light")
        if not lights:
            return None
        level = max(round(int(e.attributes.get("brightness") or 0) * 100 / 255) for e in lights)
        step = BRIGHTNESS_STEP if _BRIGHTER.search(text) else -BRIGHTNESS_STEP
        return "home_set_light", {**place, "brightness": max(1, min(100, level + step))}, "relative brightness"

    if tool in ("home_set_volume", "home_media") and (_LOUDER.search(text) or _QUIETER.search(text)):
        players = _targets(snap, place, "media_player")
        if not players:
            return None
        level = round(float(players[0].attributes.get("volume_level") or 0) * 100)
        step = VOLUME_STEP if _LOUDER.search(text) else -VOLUME_STEP
        return "home_set_volume", {**place, "volume": max(0, min(100, level + step))}, "relative volume"

    if tool.startswith("home_"):
        areas = [n for a in snap.areas for n in (a.name, *a.aliases)]
        devices = [n for e in snap.entities for n in e.names()]
        floors = [n for f in snap.floors for n in (f.name, *f.aliases)]
        device = _find_names(text, devices)
        area = _find_names(text, areas)
        floor = _find_names(text, floors)
        if not (device or area or floor):
            return None
        new = {k: v for k, v in args.items() if k not in ("name", "area", "floor")}
        if device:
            new["name"] = device
            new.pop("domain", None)
            new.pop("device_class", None)
        elif area:
            new["area"] = area
        else:
            new["floor"] = floor
        return tool, new, f"same command as before for {device or area or floor}"
    return None


def _relative(text: str) -> bool:
    return any(p.search(text) for p in (_WARMER, _COOLER, _BRIGHTER, _DIMMER, _LOUDER, _QUIETER))


def _targets(snap, place: dict[str, Any], domain: str):
    ents = [e for e in snap.entities if e.domain == domain]
    if place.get("name"):
        named = [e for e in ents if str(place["name"]).lower() in {n.lower() for n in e.names()}]
        return named
    if place.get("area"):
        area_ids = {a.id for a in snap.areas if a.name.lower() == str(place["area"]).lower()}
        return [e for e in ents if e.area_id in area_ids]
    return ents
