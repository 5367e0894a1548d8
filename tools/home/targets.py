"""Finding the entities a request means: by name, area, floor, domain, device class and state.

The matching follows Home Assistant's intent target matching: names and aliases compare
case-insensitively without punctuation; an area or floor narrows the search; a name that is
really an area ("turn on the kitchen") falls back to the area. The errors read as sentences a
voice assistant can say.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from .model import Area, Entity, HomeSnapshot, normalize_name

__all__ = ["DOMAIN_WORDS", "Match", "match_targets", "describe_targets"]

DOMAIN_WORDS = {
    "light": ("light", "lights"),
    "switch": ("switch", "switches"),
    "fan": ("fan", "fans"),
    "cover": ("cover", "covers"),
    "lock": ("lock", "locks"),
    "climate": ("thermostat", "thermostats"),
    "media_player": ("media player", "media players"),
    "sensor": ("sensor", "sensors"),
    "binary_sensor": ("sensor", "sensors"),
    "vacuum": ("vacuum", "vacuums"),
    "valve": ("valve", "valves"),
    "scene": ("scene", "scenes"),
    "script": ("script", "scripts"),
    "person": ("person", "people"),
    "weather": ("weather service", "weather services"),
}

DEVICE_CLASS_WORDS = {
    "garage": ("garage door", "garage doors"),
    "garage_door": ("garage door", "garage doors"),
    "door": ("door", "doors"),
    "window": ("window", "windows"),
    "blind": ("blind", "blinds"),
    "curtain": ("curtain", "curtains"),
    "shade": ("shade", "shades"),
    "shutter": ("shutter", "shutters"),
    "awning": ("awning", "awnings"),
    "gate": ("gate", "gates"),
    "tv": ("TV", "TVs"),
    "speaker": ("speaker", "speakers"),
    "outlet": ("outlet", "outlets"),
}


@dataclass
class Match:
    """The result of a target search."""

    entities: list[Entity] = field(default_factory=list)
    error: str = ""
    """Why nothing matched, as a sentence to say (empty when something matched)."""
    area: Area | None = None
    floor_name: str | None = None


def _find_area(snap: HomeSnapshot, name: str) -> Area | None:
    n = normalize_name(name)
    for a in snap.areas:
        if n in {normalize_name(x) for x in (a.name, *a.aliases)} or normalize_name(a.id.removesuffix("_id")) == n.replace(" ", "_"):
            return a
    return None


def _find_floor(snap: HomeSnapshot, name: str):
    n = normalize_name(name)
    for f in snap.floors:
        if n in {normalize_name(x) for x in (f.name, *f.aliases)}:
            return f
    return None


def _as_list(v: str | list[str] | None) -> list[str] | None:
    if v is None or v == "" or v == []:
        return None
    return [v] if isinstance(v, str) else list(v)


def match_targets(
    snap: HomeSnapshot,
    *,
    name: str | None = None,
    area: str | None = None,
    floor: str | None = None,
    domain: str | list[str] | None = None,
    device_class: str | list[str] | None = None,
    state: str | list[str] | None = None,
    fuzzy: bool = True,
) -> Match:
    """Find entities.

    Args:
        snap: The home.
        name: Entity name or alias.
        area: Area name or alias.
        floor: Floor name or alias.
        domain: One or more domains (``light``, ``cover`` ...).
        device_class: One or more device classes (``garage_door``, ``window`` ...).
        state: Keep only entities in this state (raw or as said, e.g. "open").
        fuzzy: When no name matches exactly, accept the closest name (difflib ratio ≥ 0.85).

    Returns:
        The matching entities, or an error sentence.
    """
    domains = _as_list(domain)
    classes = _as_list(device_class)
    states = [normalize_name(s) for s in _as_list(state) or []]
    result = Match()
    candidates = list(snap.entities)
    if floor:
        fl = _find_floor(snap, floor)
        if fl is None:
            return Match(error=f"I don't know a floor called {floor}.")
        area_ids = {a.id for a in snap.areas if a.floor_id == fl.id}
        candidates = [e for e in candidates if e.area_id in area_ids]
        result.floor_name = fl.name
    if area:
        ar = _find_area(snap, area)
        if ar is None:
            return Match(error=f"I don't know an area called {area}.")
        candidates = [e for e in candidates if e.area_id == ar.id]
        result.area = ar
    if domains:
        candidates = [e for e in candidates if e.domain in domains]
    if classes:
        candidates = [e for e in candidates if e.device_class in classes]
    if name:
        n = normalize_name(name)
        named = [e for e in candidates if n in {normalize_name(x) for x in e.names()}]
        if not named and not area:
            ar = _find_area(snap, name)
            if ar is not None:  # "turn on the kitchen" = everything of that kind in the kitchen
                named = [e for e in candidates if e.area_id == ar.id]
                result.area = ar
        if not named and fuzzy:
            pool = {normalize_name(x): e for e in candidates for x in e.names()}
            close = difflib.get_close_matches(n, list(pool), n=1, cutoff=0.85)
            named = [pool[close[0]]] if close else []
        if not named:
            where = f" in the {result.area.name}" if result.area and area else ""
            return Match(error=f"I couldn't find a device called {name}{where}.")
        candidates = named
    if states:
        candidates = [e for e in candidates if normalize_name(e.state) in states or (e.human_state and normalize_name(e.human_state) in states)]
        result.entities = candidates
        return result  # an empty list is an answer ("no, none are open"), not an error
    if not candidates:
        what = _kind_words(domains, classes, plural=True)
        where = f" in the {result.area.name}" if result.area else (f" on the {result.floor_name}" if result.floor_name else "")
        return Match(error=f"There are no {what}{where}.")
    result.entities = candidates
    return result


def _kind_words(domains: list[str] | None, classes: list[str] | None, plural: bool) -> str:
    i = 1 if plural else 0
    if classes:
        return DEVICE_CLASS_WORDS.get(classes[0], (classes[0].replace("_", " "),) * 2)[i]
    if domains:
        return DOMAIN_WORDS.get(domains[0], (domains[0].replace("_", " "),) * 2)[i]
    return ("device", "devices")[i]


def describe_targets(m: Match, *, name: str | None, domain=None, device_class=None) -> str:
    """How to refer to what was matched in a reply: "the living room lamp", "the lights in the kitchen"."""
    if len(m.entities) == 1 and (name or not (domain or device_class)):
        return "the " + m.entities[0].name.lower()
    kind = _kind_words(_as_list(domain), _as_list(device_class), plural=len(m.entities) != 1)
    if m.area:
        return f"the {kind} in the {m.area.name.lower()}"
    if m.floor_name:
        floor = m.floor_name.lower()
        return f"the {kind} {floor}" if floor in ("upstairs", "downstairs") else f"the {kind} on the {floor}"
    return f"all the {kind}" if len(m.entities) > 1 else f"the {kind}"
