"""Entity resolution: which devices a request means.

One component, used by every tier (the templates, the tolerant matcher, the LLM's tool calls and
the tools themselves), modelled on Home Assistant's ``async_match_targets``
(``homeassistant/helpers/intent.py``): constraints (name, area, floor, domain, device class,
state) narrow the home's entities; preferences (the speaker's own area, the devices the action
would change) choose among several; and when a request meant one device and two fit equally,
the answer is *which one?* (:attr:`Resolution.candidates`), never a guess.

A name is looked for, in order:

1. ``everything`` / ``all devices``; an entity id (``light.desk_lamp``);
2. an entity's name or alias (numbers as words or digits, plurals, case and punctuation aside);
3. an area or floor named inside it: "bedroom 2 heater", "kitchen ceiling light", "the back
   garden valve", "Noah's light" (an area "Noah's room");
4. a kind of device (:data:`~assistant.home.vocabulary.KIND_WORDS`): "the fan", "the curtains",
   "the telly";
5. part of a name: "the lamp" (Floor Lamp), "the heater" (Patio Heater), "the entry door" (the
   lock in the Entry);
6. a close spelling (rapidfuzz ratio ≥ :data:`FUZZY_NAME`): the speech recogniser's slips,
   "living room liam" → Living Room Lamp, "dibrigation valve" → Irrigation Valve.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Iterable

from rapidfuzz import fuzz, process

from .model import Area, Entity, Floor, HomeSnapshot
from .text import normalize, place_phrase, singular
from .vocabulary import ALL_DEVICES_DOMAINS, KIND_WORDS, Kind, kind_words

__all__ = ["EntityResolver", "FUZZY_NAME", "Resolution", "would_change"]

FUZZY_NAME = 85.0
"""rapidfuzz ratio (0-100) a misheard name needs to count as a device's name. Names that differ
by one short word score 85-94 ("living room liam" / "living room lamp" 94, "dibrigation valve" /
"irrigation valve" 91); different devices of one room score below 80 ("kitchen light" /
"kitchen fan" 75). Measured on the development set (``benchmarks``, section nlu)."""

FUZZY_MARGIN = 4.0
"""Two fuzzy candidates closer than this are both offered ("which one?")."""

_LEADING = ("the", "my", "our", "a", "an", "this", "that", "your", "their")
_ALL = ("all", "every", "each", "both", "any")
_STOP = frozenset(("the", "a", "an", "my", "our", "in", "on", "of", "at", "to", "for", "please", "all", "both", "every", "each", "any", "one", "ones", "thing"))
_GENERIC_ROOM = frozenset(("room", "bedroom", "area", "space"))
_EVERYTHING = frozenset(("everything", "all devices", "every device", "all the devices", "anything", "all things", "the whole house", "whole house"))

# The generic words a device of each kind answers to, besides its name ("the entry door" = a lock).
_KIND_TOKENS: dict[str, frozenset[str]] = {
    "light": frozenset({"light"}),
    "switch": frozenset({"switch", "plug", "light"}),
    "fan": frozenset({"fan"}),
    "lock": frozenset({"lock", "door"}),
    "climate": frozenset({"thermostat", "heating", "ac"}),
    "media_player": frozenset({"speaker", "player"}),
    "vacuum": frozenset({"vacuum", "robot"}),
    "valve": frozenset({"valve"}),
    "scene": frozenset({"scene"}),
    "script": frozenset({"script", "routine"}),
    "button": frozenset({"button"}),
    "todo": frozenset({"list"}),
}
_CLASS_TOKENS: dict[str, frozenset[str]] = {
    "garage": frozenset({"garage", "door"}), "garage_door": frozenset({"garage", "door"}), "door": frozenset({"door"}),
    "window": frozenset({"window"}), "blind": frozenset({"blind"}), "curtain": frozenset({"curtain"}), "shade": frozenset({"shade"}),
    "shutter": frozenset({"shutter"}), "awning": frozenset({"awning"}), "gate": frozenset({"gate"}), "tv": frozenset({"tv", "television"}),
    "speaker": frozenset({"speaker"}), "outlet": frozenset({"outlet", "plug"}),
}

# (verb, domain) → states in which the verb changes the entity (for "the one it would change")
_ON_STATES = frozenset(("on", "open", "opening", "unlocked", "playing", "cleaning", "heat", "cool", "heat_cool", "auto", "dry", "fan_only", "idle", "paused", "buffering"))


def would_change(entity: Entity, verb: str) -> bool:
    """Whether ``verb`` ("turn_on", "turn_off", "open", "close", "lock", "unlock") changes ``entity`` now.

    ``"set"`` (a brightness, a colour) counts the devices that are on: "make the light blue" in a
    room where one light is on means that one.
    """
    d, s = entity.domain, entity.state
    if verb in ("lock", "unlock"):
        return d == "lock" and (s != "locked" if verb == "lock" else s != "unlocked")
    if d == "lock":
        return s != "locked" if verb in ("turn_on", "close") else s != "unlocked"
    if d in ("cover", "valve"):
        return s not in ("open", "opening") if verb in ("turn_on", "open") else s not in ("closed", "closing")
    if d == "vacuum":
        return s != "cleaning" if verb in ("turn_on", "start") else s not in ("docked", "returning")
    if d in ("scene", "script", "button"):
        return verb == "turn_on"
    if d == "media_player":
        return s in ("off", "standby") if verb == "turn_on" else s not in ("off", "standby")
    if d == "climate":
        return s == "off" if verb == "turn_on" else s != "off"
    return s != "on" if verb in ("turn_on", "open", "start") else s == "on"


@dataclass
class Resolution:
    """The devices a request means, or why there are none, or the ones to choose from."""

    entities: list[Entity] = field(default_factory=list)
    reason: str = "ok"
    """``ok``, ``no_area``, ``no_floor``, ``no_name``, ``no_kind`` or ``ambiguous``."""
    message: str = ""
    """What to tell the user when not ``ok``: a sentence, or for ``ambiguous`` the question."""
    candidates: list[Entity] = field(default_factory=list)
    """For ``ambiguous``: the devices that fit equally."""
    area: Area | None = None
    floor: Floor | None = None
    plural: bool = False
    """The request meant several devices ("the lights", "both lamps", "all the blinds")."""
    how: str = ""
    """How the name was found: ``exact``, ``place``, ``kind``, ``partial``, ``fuzzy``, ``everything``, ``id``."""

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


@dataclass
class _Found:
    entities: list[Entity]
    how: str
    plural: bool = False
    everywhere: bool = False
    area: Area | None = None
    floor: Floor | None = None
    scores: dict[str, float] = field(default_factory=dict)


class EntityResolver:
    """Resolves what a request names against one home.

    Args:
        snap: The home (floors, areas, entities).
        context_area: The area the assistant (or satellite) is in: preferred when a request names
            no place ("the lamp" = the lamp here).
    """

    def __init__(self, snap: HomeSnapshot, context_area: str | None = None) -> None:
        self.snap = snap
        self._areas: dict[str, Area] = {}
        for a in snap.areas:
            for n in (a.name, *a.aliases, a.id.removesuffix("_id").replace("_", " ")):
                self._areas.setdefault(normalize(n), a)
        self._floors: dict[str, Floor] = {}
        for f in snap.floors:
            for n in (f.name, *f.aliases):
                self._floors.setdefault(normalize(f.name if n is None else n), f)
        # "noahs" for an area called "Noah's room": a place named by its owner
        self._area_owners: dict[str, Area] = {}
        for key, a in list(self._areas.items()):
            words = key.split()
            if len(words) >= 2 and words[-1] in _GENERIC_ROOM:
                self._area_owners.setdefault(" ".join(words[:-1]), a)
        self._area_of = {a.id: a for a in snap.areas}
        self._floor_area_ids = {f.id: {a.id for a in snap.areas if a.floor_id == f.id} for f in snap.floors}
        self._names: list[tuple[str, Entity]] = [(normalize(n), e) for e in snap.entities for n in e.names()]
        self._places = sorted(
            [(k, "area", a) for k, a in self._areas.items()] + [(k, "floor", f) for k, f in self._floors.items()]
            + [(k, "area", a) for k, a in self._area_owners.items() if k not in self._areas],
            key=lambda t: -len(t[0]),
        )
        self.context_area = self.find_area(context_area) if context_area else None

    # ------------------------------------------------------------------ places

    def find_area(self, text: str | None) -> Area | None:
        """The area called ``text`` (name, alias, "Noah's" for "Noah's room", or a close spelling)."""
        if not text:
            return None
        n = _strip_leading(normalize(text))
        if n in self._areas:
            return self._areas[n]
        if n in self._area_owners:
            return self._area_owners[n]
        return _fuzzy_key(n, self._areas)

    def find_floor(self, text: str | None) -> Floor | None:
        """The floor called ``text`` (name, alias, or a close spelling)."""
        if not text:
            return None
        n = _strip_leading(normalize(text))
        return self._floors.get(n) or _fuzzy_key(n, self._floors)

    def area_name(self, entity: Entity) -> str:
        a = self._area_of.get(entity.area_id or "")
        return a.name if a else ""

    def _in_area(self, ents: Iterable[Entity], area: Area) -> list[Entity]:
        return [e for e in ents if e.area_id == area.id]

    def _on_floor(self, ents: Iterable[Entity], floor: Floor) -> list[Entity]:
        ids = self._floor_area_ids.get(floor.id, set())
        return [e for e in ents if e.area_id in ids]

    # ------------------------------------------------------------------ resolving

    def resolve(
        self,
        *,
        name: str | None = None,
        area: str | None = None,
        floor: str | None = None,
        domain: str | list[str] | None = None,
        device_class: str | list[str] | None = None,
        state: str | list[str] | None = None,
        verb: str | None = None,
        plural: bool | None = None,
    ) -> Resolution:
        """Find the entities a request names.

        Args:
            name: What the request called the device(s), as said: "the bedroom 2 heater",
                "lamps", "Kitchen Light", an entity id.
            area: An area name or alias as said ("here" = the context area).
            floor: A floor name or alias as said.
            domain: Only these domains (``light``, ``cover`` ...).
            device_class: Only these device classes (``garage``, ``window`` ...).
            state: Only entities in this state, raw or as said (for questions: "which are on").
            verb: The action ("turn_on", "turn_off", "open", "close", "lock", "unlock") when the
                request changes something; None for questions. With a verb, a request that names
                no place means the context area, and among equal candidates the one the verb
                would change is preferred.
            plural: The request meant several devices; None = tell from the words.

        Returns:
            The entities, or why there are none (``message`` says it), or the candidates to ask
            about (``reason == "ambiguous"``).
        """
        domains = _as_list(domain)
        classes = _as_list(device_class)
        res = Resolution()
        cands = list(self.snap.entities)
        explicit_place = False
        if floor:
            fl = self.find_floor(floor)
            if fl is None:
                ar = self.find_area(floor)
                if ar is None:
                    return Resolution(reason="no_floor", message=f"I don't know a floor called {floor}.")
                area, floor = ar.name, None
            else:
                cands = self._on_floor(cands, fl)
                res.floor = fl
                explicit_place = True
        if area:
            if normalize(area) in ("here", "in here", "this room"):
                ar = self.context_area
            else:
                ar = self.find_area(area)
            if ar is None:
                fl = self.find_floor(area)
                if fl is None:
                    return Resolution(reason="no_area", message=f"I don't know an area called {area}.")
                cands = self._on_floor(cands, fl)
                res.floor = fl
            else:
                cands = self._in_area(cands, ar)
                res.area = ar
            explicit_place = True
        if domains or classes:
            placed = cands
            kind = Kind(frozenset(domains or {e.domain for e in cands}), frozenset(classes or ()))
            cands = [e for e in cands if kind.admits(e.domain, e.device_class)]
            if classes:  # asked for a device class: entities without one do not count here
                cands = [e for e in cands if e.device_class in classes]
            if not cands and domains == ["light"] and explicit_place and not name:
                # "the porch light" where the porch's light is on a wall switch
                cands = [e for e in placed if e.domain == "switch" and e.device_class != "outlet"]
        found: _Found | None = None
        if name:
            found = self._by_name(name, cands)
            if found is None or not found.entities:
                return self._not_found(name, found, res, domains, classes)
            cands = found.entities
            res.how = found.how
            res.area = res.area or found.area
            res.floor = res.floor or found.floor
            explicit_place = explicit_place or found.area is not None or found.floor is not None
            if plural is None:
                plural = found.plural
            if found.everywhere:
                explicit_place = True
        elif plural is None:
            plural = True  # a kind and/or a place: everything of that kind there (Home Assistant's rule)
        res.plural = bool(plural)
        if verb and not explicit_place and self.context_area is not None and len(cands) > 1:
            here = self._in_area(cands, self.context_area)
            if here and (plural or len(here) >= 1):
                cands = here
                res.area = res.area or (self.context_area if plural and not name else res.area)
        if state is not None:
            wanted = {normalize(s) for s in _as_list(state) or []}
            cands = [e for e in cands if normalize(e.state) in wanted or (e.human_state and normalize(e.human_state) in wanted)]
            res.entities = cands
            return res  # an empty list is an answer ("no, none are open"), not an error
        if not cands:
            return self._not_found(name, None, res, domains, classes)
        if len(cands) > 1 and not res.plural:
            cands = self._prefer(cands, verb, found)
            if len(cands) > 1:
                res.reason = "ambiguous"
                res.candidates = cands
                res.message = self.which_one(cands)
                return res
        res.entities = cands
        return res

    def _prefer(self, cands: list[Entity], verb: str | None, found: _Found | None) -> list[Entity]:
        """Among several devices for a request that meant one: the best fuzzy match, then the
        one the action would change."""
        if found is not None and found.scores:
            best = max(found.scores.get(e.id, 0.0) for e in cands)
            cands = [e for e in cands if found.scores.get(e.id, 0.0) >= best - FUZZY_MARGIN]
        if verb and len(cands) > 1:
            changing = [e for e in cands if would_change(e, verb)]
            if len(changing) == 1:
                return changing
        return cands

    def _not_found(self, name: str | None, found: _Found | None, res: Resolution, domains, classes) -> Resolution:
        where = place_phrase(res.area.name if res.area else None, res.floor.name if res.floor else None)
        if name and (found is None or found.how != "kind"):
            shown = _strip_leading(normalize(name))
            said = f"the {shown}" if shown else "that device"  # a name that was only "the" ("is the home")
            return Resolution(reason="no_name", message=f"I couldn't find {said}{where}.", area=res.area, floor=res.floor)
        what = kind_words(domains, classes, plural=True)
        if found is not None and found.how == "kind" and name:
            what = _strip_leading(normalize(name))
            what = what if singular(what.split()[-1]) != what.split()[-1] else plural_of(what)
        return Resolution(reason="no_kind", message=f"There are no {what}{where}.", area=res.area, floor=res.floor)

    def which_one(self, cands: list[Entity]) -> str:
        """The question to ask when several devices fit: "Which one: the reading lamp or the floor lamp?"."""
        labels = self.labels(cands)
        shown = labels[:4]
        if len(shown) == 2:
            listed = f"{shown[0]} or {shown[1]}"
        else:
            listed = ", ".join(shown[:-1]) + f" or {shown[-1]}"
        more = f" (or one of {len(labels) - 4} more)" if len(labels) > 4 else ""
        return f"Which one: {listed}{more}?"

    def labels(self, cands: list[Entity]) -> list[str]:
        """How to say each candidate so that they differ: "the reading lamp", "the ceiling light in the kitchen"."""
        names = [e.name for e in cands]
        out = []
        for e in cands:
            label = "the " + _spoken_name(e.name)
            if names.count(e.name) > 1:
                area = self.area_name(e)
                label += f" in the {area.lower()}" if area else f" ({e.id})"
            out.append(label)
        return out

    # ------------------------------------------------------------------ names

    def _by_name(self, text: str, cands: list[Entity], depth: int = 0) -> _Found | None:
        raw = normalize(text)
        words = raw.split()
        if depth == 0 and len(words) > 1 and words[0] == "all" and singular(words[-1]) == words[-1]:
            # "all light on" is not English for all the lights: it is Whisper's "hall light" (a
            # device name close in spelling, and only one, is what was said)
            near = self._fuzzy(raw, cands)
            if near is not None and len(near.entities) == 1:
                return near
        everywhere = False
        while words and words[0] in _LEADING + _ALL:
            everywhere = everywhere or words[0] in _ALL
            words = words[1:]
        t = " ".join(words)
        if not t:
            return None
        if t in _EVERYTHING or raw in _EVERYTHING:
            ents = [e for e in cands if e.domain in ALL_DEVICES_DOMAINS]
            return _Found(ents, "everything", plural=True, everywhere=everywhere)
        by_id = [e for e in cands if e.id == text.strip()]
        if by_id:
            return _Found(by_id, "id")
        # 2. a name or alias (also its plural: "the bedroom lamps")
        exact = [e for n, e in self._names if n == t and e in cands]
        if not exact:
            st = _singular_phrase(t)
            exact = [e for n, e in self._names if _singular_phrase(n) == st and e in cands]
            if exact:
                return _Found(_unique(exact), "exact", plural=st != t or everywhere, everywhere=everywhere)
        if exact:
            return _Found(_unique(exact), "exact", plural=everywhere, everywhere=everywhere)
        # 3. a place inside the name: "bedroom 2 heater", "heater in bedroom 2", "noahs light"
        if depth == 0:
            for key, kind, place in self._places:
                rest = None
                if t.startswith(key + " "):
                    rest = t[len(key) + 1 :]
                elif t.endswith(" " + key):
                    rest = t[: -len(key) - 1]
                    for prep in (" in the", " in", " on the", " on", " of the", " at the"):
                        if rest.endswith(prep):
                            rest = rest[: -len(prep)]
                            break
                if not rest:
                    continue
                here = self._in_area(cands, place) if kind == "area" else self._on_floor(cands, place)
                sub = self._by_name(rest, here, depth + 1)
                if sub is not None and sub.entities:
                    sub.area = place if kind == "area" else None
                    sub.floor = place if kind == "floor" else None
                    sub.everywhere = False
                    return sub
        # 4. a kind of device: "the fan", "curtains", "the telly"
        kind_word = singular(t) if " " not in t else _singular_phrase(t)
        kind = KIND_WORDS.get(kind_word) or KIND_WORDS.get(t)
        if kind is not None:
            ents = [e for e in cands if kind.admits(e.domain, e.device_class)]
            if kind.device_classes:
                with_class = [e for e in ents if e.device_class in kind.device_classes]
                ents = with_class or ents
            plural = kind_word != t or everywhere
            if ents:
                return _Found(ents, "kind", plural=plural, everywhere=everywhere)
            partial = self._partial(t, cands)
            return partial if partial is not None else _Found([], "kind", plural=plural)
        # 5. part of a name: "the lamp", "the heater", "the entry door"
        partial = self._partial(t, cands)
        if partial is not None:
            partial.everywhere = everywhere
            partial.plural = partial.plural or everywhere
            return partial
        # 6. a close spelling (the recogniser's slips)
        return self._fuzzy(t, cands)

    def _partial(self, t: str, cands: list[Entity]) -> _Found | None:
        said = [w for w in t.split() if w not in _STOP]
        if not said:
            return None
        q = {singular(w) for w in said}
        plural = any(singular(w) != w for w in said)
        hits = []
        for e in cands:
            have = self._entity_tokens(e)
            if q <= have:
                hits.append(e)
        if not hits:
            return None
        return _Found(_unique(hits), "partial", plural=plural)

    def _entity_tokens(self, e: Entity) -> frozenset[str]:
        return _entity_tokens(e.names(), e.domain, e.device_class, self.area_name(e))

    def _fuzzy(self, t: str, cands: list[Entity]) -> _Found | None:
        if len(t) < 4:
            return None
        choices: dict[str, list[Entity]] = {}
        for n, e in self._names:
            if e in cands:
                choices.setdefault(n, []).append(e)
                area = self.area_name(e)
                if area and not n.startswith(normalize(area)):
                    choices.setdefault(normalize(area) + " " + n, []).append(e)
        hits = process.extract(t, list(choices), scorer=fuzz.ratio, score_cutoff=FUZZY_NAME, limit=6)
        if not hits:
            return None
        scores: dict[str, float] = {}
        ents: list[Entity] = []
        best = hits[0][1]
        for key, score, _ in hits:
            if score < best - FUZZY_MARGIN:
                break
            for e in choices[key]:
                if e not in ents:
                    ents.append(e)
                scores[e.id] = max(scores.get(e.id, 0.0), score)
        return _Found(ents, "fuzzy", scores=scores)


@functools.lru_cache(maxsize=4096)
def _entity_tokens(names: tuple[str, ...], domain: str, device_class: str | None, area: str) -> frozenset[str]:
    out: set[str] = set()
    for n in names:
        out.update(singular(w) for w in normalize(n).split())
    out |= _KIND_TOKENS.get(domain, frozenset())
    if device_class:
        out |= _CLASS_TOKENS.get(device_class, frozenset())
    if area:
        out.update(normalize(area).split())
    return frozenset(out)


def plural_of(phrase: str) -> str:
    """ "switch" → "switches", "garage door" → "garage doors", "battery" → "batteries"."""
    head, _, last = phrase.rpartition(" ")
    if last.endswith(("s", "sh", "ch", "x", "z")):
        last += "es"
    elif last.endswith("y") and not last.endswith(("ay", "ey", "oy", "uy")):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}".strip()


def _singular_phrase(t: str) -> str:
    return " ".join(singular(w) for w in t.split())


def _strip_leading(n: str) -> str:
    words = n.split()
    while words and words[0] in _LEADING + _ALL:
        words = words[1:]
    return " ".join(words)


def _spoken_name(name: str) -> str:
    """Names are said in lower case unless they look like acronyms ("TV")."""
    return " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in name.split())


def _fuzzy_key(n: str, table: dict[str, object]):
    if len(n) < 4 or not table:
        return None
    hit = process.extractOne(n, list(table), scorer=fuzz.ratio, score_cutoff=FUZZY_NAME)
    if hit is not None:
        return table[hit[0]]
    # "terrace" for "Rooftop Terrace": every word said is in exactly one place's name
    words = set(n.split())
    subset = {id(v): v for k, v in table.items() if words <= set(k.split())}
    return next(iter(subset.values())) if len(subset) == 1 else None


def _unique(ents: list[Entity]) -> list[Entity]:
    seen: set[str] = set()
    out = []
    for e in ents:
        if e.id not in seen:
            seen.add(e.id)
            out.append(e)
    return out


def _as_list(v: str | list[str] | None) -> list[str] | None:
    if v is None or v == "" or v == []:
        return None
    return [v] if isinstance(v, str) else list(v)
