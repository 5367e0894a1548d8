"""The template fast path: sentence templates → intent + slots → tool call, with no LLM.

Home commands are matched with hassil against Home Assistant's own English sentence templates
(the ``home-assistant-intents`` package), with the area, floor and device names the home backend
reports as slot lists, exactly as Home Assistant's default conversation agent does. Tool plugins
contribute their own templates (``@tool(templates=[...])``); each becomes an intent whose slots
are the tool's parameters. A match is turned into one tool call by :data:`INTENT_TOOLS`.

It answers in about a millisecond or two (see ``benchmarks``), and returns None when nothing
matches, so the router can hand the request to the LLM.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, get_origin

from ..home.text import words_in
from ..errors import MissingDependencyError, require
from ..toolkit.api import Tool, literal_values
from ..toolkit.registry import ToolRegistry

__all__ = ["FastMatch", "FastPath", "INTENT_TOOLS", "UNSERVED_INTENTS", "refine_home_arguments"]

log = logging.getLogger(__name__)

_HOME_ARGS = ("name", "area", "floor", "domain", "device_class")
_TIMER_ARGS = ("name", "area", "start_hours", "start_minutes", "start_seconds")


def _pick(slots: dict[str, Any], keys: tuple[str, ...], **renames: str) -> dict[str, Any]:
    out = {k: slots[k] for k in keys if k in slots and not (k == "name" and slots[k] == "all")}  # "all" = no particular name
    for new, old in renames.items():
        if old in slots:
            out[new] = slots[old]
    for k in ("domain", "device_class"):
        if k in out and isinstance(out[k], str):
            out[k] = [out[k]]
    return out


def _duration(slots: dict[str, Any]) -> dict[str, Any]:
    return {k: int(slots[k]) for k in ("hours", "minutes", "seconds") if k in slots}


IntentMapper = Callable[[dict[str, Any]], tuple[str, dict[str, Any]] | None]

INTENT_TOOLS: dict[str, IntentMapper] = {
    "HassTurnOn": lambda s: ("home_turn_on", _pick(s, _HOME_ARGS)),
    "HassTurnOff": lambda s: ("home_turn_off", _pick(s, _HOME_ARGS)),
    "HassToggle": lambda s: ("home_toggle", _pick(s, ("name", "area", "floor", "domain"))),
    "HassLightSet": lambda s: ("home_set_light", _pick(s, ("name", "area", "floor", "brightness", "color"))),
    "HassGetState": lambda s: ("home_get_state", _pick(s, (*_HOME_ARGS, "state"))),
    "HassSetPosition": lambda s: ("home_set_position", _pick(s, ("name", "area", "domain", "device_class", "position"))),
    "HassClimateSetTemperature": lambda s: ("home_set_temperature", _pick(s, ("name", "area", "floor", "temperature"))),
    "HassClimateGetTemperature": lambda s: ("home_get_temperature", _pick(s, ("name", "area"))),
    "HassMediaPause": lambda s: ("home_media", {"action": "pause", **_pick(s, ("name", "area"))}),
    "HassMediaUnpause": lambda s: ("home_media", {"action": "resume", **_pick(s, ("name", "area"))}),
    "HassMediaNext": lambda s: ("home_media", {"action": "next", **_pick(s, ("name", "area"))}),
    "HassMediaPrevious": lambda s: ("home_media", {"action": "previous", **_pick(s, ("name", "area"))}),
    "HassSetVolume": lambda s: ("home_set_volume", {"volume": s["volume_level"], **_pick(s, ("name", "area"))}),
    "HassVacuumStart": lambda s: ("home_vacuum", {"action": "start", **_pick(s, ("name", "area"))}),
    "HassVacuumReturnToBase": lambda s: ("home_vacuum", {"action": "return_to_base", **_pick(s, ("name", "area"))}),
    "HassStartTimer": lambda s: ("timer_start", {**_duration(s), **_pick(s, ("name",))}),
    "HassCancelTimer": lambda s: ("timer_cancel", _pick(s, _TIMER_ARGS)),
    "HassCancelAllTimers": lambda s: ("timer_cancel_all", _pick(s, ("area",))),
    "HassTimerStatus": lambda s: ("timer_status", _pick(s, _TIMER_ARGS)),
    "HassIncreaseTimer": lambda s: ("timer_add_time", {**_duration(s), **_pick(s, _TIMER_ARGS)}),
    "HassDecreaseTimer": lambda s: ("timer_remove_time", {**_duration(s), **_pick(s, _TIMER_ARGS)}),
    "HassPauseTimer": lambda s: ("timer_pause", _pick(s, _TIMER_ARGS)),
    "HassUnpauseTimer": lambda s: ("timer_resume", _pick(s, _TIMER_ARGS)),
    "HassGetCurrentTime": lambda s: ("clock_time", {}),
    "HassGetCurrentDate": lambda s: ("clock_date", {}),
    "HassShoppingListAddItem": lambda s: ("list_add", {"item": s["item"]}),
    "HassShoppingListCompleteItem": lambda s: ("list_complete", {"item": s["item"]}),
    "HassListAddItem": lambda s: ("list_add", {"item": s["item"], "list_name": s.get("name")}),
    "HassListCompleteItem": lambda s: ("list_complete", {"item": s["item"], "list_name": s.get("name")}),
    "HassNevermind": lambda s: None,
    "HassRespond": lambda s: None,
}
"""How each Home Assistant intent becomes a call of a built-in tool (None = answered without a tool)."""

UNSERVED_INTENTS = {
    "HassGetWeather": "no built-in weather tool (a plugin can add one)",
    "HassBroadcast": "no other satellites to broadcast to",
    "HassMediaSearchAndPlay": "no media library search tool",
}
"""Home Assistant intents the built-in tools do not serve, and why (left to the LLM or plugins)."""


@dataclass
class FastMatch:
    """A fast-path match."""

    intent: str
    """Home Assistant intent name, or ``tool:<name>`` for a plugin template."""
    slots: dict[str, Any]
    """Slot values as hassil matched them."""
    tool: str | None
    """The tool to call, or None for intents answered without a tool (nevermind)."""
    arguments: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    match_ms: float = 0.0
    text: str = ""
    """The sentence that matched."""


class FastPath:
    """Template matching over Home Assistant's sentences and plugin templates.

    Args:
        registry: The tools (for plugin templates, and to check mapped tools exist).
        language: Sentence language (``"en"``).
        area: The assistant's own area ("turn on the lights" then means the lights here).

    Raises:
        MissingDependencyError: hassil or home-assistant-intents is not installed.
    """

    def __init__(self, registry: ToolRegistry, language: str = "en", area: str = "") -> None:
        hassil = require("hassil", "fastpath", "the template fast path")
        intents_pkg = require("home_assistant_intents", "fastpath", "the template fast path")
        self._hassil = hassil
        self.registry = registry
        self.language = language
        self.area = area
        data = intents_pkg.get_intents(language)
        if data is None:
            raise MissingDependencyError(f"home-assistant-intents has no sentences for language {language!r}")
        self._plugin_tools: dict[str, Tool] = {}
        self._add_plugin_templates(data)
        self.intents = hassil.Intents.from_dict(data)
        self.words = words_in(data, keys=False, skip=frozenset(("responses", "metadata")))
        """Every word the templates, their lists and expansion rules can say (not the responses)."""
        self.slot_lists: dict[str, Any] = {}
        self._recognised: collections.OrderedDict[tuple, Any] = collections.OrderedDict()
        """hassil's answer per (sentence, intent context), for the slot lists in force (:meth:`match`)."""
        self._recognised_lock = threading.Lock()
        self.refresh()
        self.match("turn on the light")  # hassil compiles lazily: pay that at start-up, not on the first request

    # ------------------------------------------------------------------ hassil, remembered

    RECOGNISED_KEPT = 256
    """Sentences whose hassil answer is kept (the most recently used)."""

    def _recognise(self, clean: str, context: dict[str, Any]):
        """hassil's best recognition of ``clean`` in ``context`` (None: no template matches),
        remembered for the slot lists in force. One spoken request is matched several times within
        a few hundred ms — the turn detector at the pause, the final transcript's checks, the
        router — at 5-10 ms each on a Pi-class core (hassil over Home Assistant's ~3,000 English
        sentences); the answer depends only on the sentence, the context and the slot lists."""
        key = (clean, tuple(sorted((k, repr(v)) for k, v in context.items())))
        with self._recognised_lock:
            if key in self._recognised:
                self._recognised.move_to_end(key)
                return self._recognised[key]
            lists = self.slot_lists
        result = self._hassil.recognize_best(
            clean, self.intents, slot_lists=lists, intent_context=context,
            language=self.language, best_metadata_key="plugin", best_slot_name="name",
        )
        with self._recognised_lock:
            if lists is self.slot_lists:  # not refreshed meanwhile
                self._recognised[key] = result
                while len(self._recognised) > self.RECOGNISED_KEPT:
                    self._recognised.popitem(last=False)
        return result

    def _forget_recognised(self) -> None:
        with self._recognised_lock:
            self._recognised.clear()

    # ------------------------------------------------------------------ plugin templates

    def _add_plugin_templates(self, data: dict[str, Any]) -> None:
        lists = data.setdefault("lists", {})
        for t in self.registry.tools.values():
            if not t.templates:
                continue
            sentences = []
            for template in t.templates:
                def bind(m: re.Match, _t: Tool = t) -> str:
                    slot = m.group(1)
                    return "{" + f"{_t.name}__{slot}:{slot}" + "}"

                sentences.append(re.sub(r"\{(\w+)\}", bind, template))
            for pname in t.args_model.model_fields:
                field_info = t.args_model.model_fields[pname]
                lists[f"{t.name}__{pname}"] = _slot_list_for(field_info.annotation)
            data["intents"][f"tool:{t.name}"] = {"data": [{"sentences": sentences, "metadata": {"plugin": t.plugin}}]}
            self._plugin_tools[f"tool:{t.name}"] = t

    def tool_vocabulary(self) -> dict[str, str]:
        """Words of the sentence templates that lead to each tool ("switch off", "deactivate",
        "shut" for home_turn_off ...): how people ask for a tool, used to rank tools for the LLM."""
        rules = {name: (rule.text or "") for name, rule in self.intents.expansion_rules.items()}
        rule_ref = re.compile(r"<(\w+)>")

        def expand(text: str, depth: int = 0) -> str:
            if depth > 3:
                return text
            return rule_ref.sub(lambda m: " " + expand(rules.get(m.group(1), ""), depth + 1) + " ", text)

        strip = re.compile(r"\{[^}]*\}|[\[\]()|;:,.?!]")
        out: dict[str, set[str]] = {}
        for intent in self.intents.intents.values():
            tool_name = _tool_of(intent.name)
            if tool_name is None:
                continue
            words = out.setdefault(tool_name, set())
            for data in intent.data:
                for sentence in data.sentences:
                    words.update(strip.sub(" ", expand(sentence.text or "")).lower().split())
        return {k: " ".join(sorted(v)) for k, v in out.items()}

    # ------------------------------------------------------------------ slot lists from the home

    def refresh(self) -> None:
        """Rebuild the area/floor/name slot lists from the home backend (after devices change)."""
        TextSlotList = self._hassil.TextSlotList
        home = self.registry.service("home")
        if home is None:  # no home plugin: Home Assistant's templates find no names
            self.slot_lists = {k: TextSlotList.from_strings([], allow_template=False) for k in ("area", "floor", "name")}
            self._forget_recognised()  # after the new lists are in force (a match in flight checks which lists it used)
            return
        snap = home.snapshot()
        names = []
        for e in snap.entities:
            ctx = {"domain": e.domain, **{k: v for k, v in e.attributes.items() if isinstance(v, (str, int, float))}}
            names.extend((n, n, ctx) for n in e.names())
        self.slot_lists = {
            "area": TextSlotList.from_strings([n for a in snap.areas for n in (a.name, *a.aliases)], allow_template=False),
            "floor": TextSlotList.from_strings([n for f in snap.floors for n in (f.name, *f.aliases)], allow_template=False),
            "name": TextSlotList.from_tuples(names, allow_template=False),
        }
        self._forget_recognised()

    # ------------------------------------------------------------------ matching

    def match_all(self, text: str, context: dict[str, Any] | None = None) -> list[FastMatch]:
        """One match for the whole sentence, or one per command when it joins several
        ("turn off the lights and set a timer") and every part matches; [] otherwise."""
        whole = self.match(text, context)
        if whole is not None:
            return [whole]
        parts = split_commands(text)
        if len(parts) < 2 or len(parts) > 4:
            return []
        matches = [self.match(p, context) for p in parts]
        if all(m is not None and m.tool is not None for m in matches):
            return matches  # type: ignore[return-value]
        return []

    def match(self, text: str, context: dict[str, Any] | None = None) -> FastMatch | None:
        """Match a request.

        Args:
            text: The transcript or typed request.
            context: Intent context, e.g. ``{"area": "Kitchen"}``; default: the assistant's area.

        Returns:
            The match with its tool call, or None when no template matches (or the matched
            intent is not served by any tool here).
        """
        t0 = time.perf_counter()
        if context is None:
            from ..engine.context import current  # noqa: PLC0415

            area = current().area or self.area
            context = {"area": area} if area else {}
        clean = text.strip()
        if not clean:
            return None
        result = self._recognise(clean, context)
        ms = (time.perf_counter() - t0) * 1000.0
        if result is None:
            return None
        slots = {e.name: e.value for e in result.entities.values()}
        name = result.intent.name
        if name in self._plugin_tools:
            tool = self._plugin_tools[name]
            return FastMatch(name, slots, tool.name, dict(slots), dict(result.context or {}), ms, clean)
        mapper = INTENT_TOOLS.get(name)
        if mapper is None:
            return None  # an intent we do not serve: let the LLM try
        said = dict(slots)
        if context.get("area") and said.get("area") == context["area"] and not _mentions_area(clean, context["area"], self.slot_lists.get("area")):
            # filled in from where the speaker is, not said: a preference the tools apply, not a constraint
            # ("open the gate" means the gate, wherever it is; "turn on the lights" prefers the lights here)
            said.pop("area")
        mapped = mapper(said)
        if mapped is None:
            return FastMatch(name, slots, None, {}, dict(result.context or {}), ms, clean)
        tool_name, args = mapped
        if tool_name not in self.registry.tools:
            return None  # the tool is blocked or its plugin is off
        # "turn on the lights" with no place: the tools prefer the speaker's area (the resolver's
        # context), as Home Assistant does, without making it a constraint
        return FastMatch(name, slots, tool_name, args, dict(result.context or {}), ms, clean)


_SINGULAR_KINDS: dict[str, frozenset[str]] = {
    "light": frozenset(("lamp",)), "fan": frozenset(("fan",)), "media_player": frozenset(("tv", "telly", "television", "speaker")),
    "lock": frozenset(("door", "lock")), "cover": frozenset(("blind", "curtain", "shade", "shutter", "awning", "gate", "window", "door", "garage door")),
    "vacuum": frozenset(("vacuum",)), "climate": frozenset(("thermostat", "heater")), "valve": frozenset(("valve",)),
}
"""Kind words that, said in the singular ("turn on the lamp"), mean one device: with several, ask.
("the light" is left out: a room's "light" is its lighting, all of it, as in Home Assistant.)"""


def refine_home_arguments(text: str, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """What the templates' slots lose from the words: "the lamp" (one device, not every light),
    "are *all* the doors locked".

    Home Assistant's templates turn "turn on the lamp" into ``domain: light`` with no name, which
    means every light there; the words said "the lamp". A singular kind word becomes the name the
    resolver gets, so it looks for lamps and asks which one when there are two.
    """
    from ..home.text import normalize  # noqa: PLC0415

    if not tool.startswith("home_"):
        return args
    words = normalize(text).split()
    out = dict(args)
    if tool == "home_get_state" and out.get("state") and ({"all", "every"} & set(words)):
        out["every"] = True
    if tool == "home_get_state" and out.get("state") and words and words[0] in ("which", "what"):
        out["which"] = True  # "which lights are on?": list them, not "Yes, ..."
    if "name" in out or not out.get("domain") or {"all", "every", "both", "each"} & set(words):
        return out
    kinds = frozenset().union(*(_SINGULAR_KINDS.get(d, frozenset()) for d in out["domain"]))
    for i, w in enumerate(words):
        two = " ".join(words[i : i + 2])
        if two in kinds:
            out["name"] = two
            return out
        if w in kinds and i > 0:  # not the first word: that is the verb ("lock the door")
            out["name"] = w
            return out
    return out


def _mentions_area(text: str, area: str, area_list: Any) -> bool:
    from ..home.text import normalize  # noqa: PLC0415

    said = f" {normalize(text)} "
    names = {area}
    for v in getattr(area_list, "values", []) or []:
        if str(v.value_out) == area:
            names.add(str(v.text_in.text) if hasattr(v.text_in, "text") else str(v.value_out))
    if any(f" {normalize(n)} " in said for n in names):
        return True
    return bool(re.search(r"\b(?:here|this room|in the room)\b", said))


class _AnySlots(dict):
    def __missing__(self, key: str) -> str:
        return "x"


def _tool_of(intent: str) -> str | None:
    """The tool an intent maps to (whatever its slots), or None."""
    if intent.startswith("tool:"):
        return intent[5:]
    mapper = INTENT_TOOLS.get(intent)
    if mapper is None:
        return None
    mapped = mapper(_AnySlots())
    return mapped[0] if mapped else None


_SPLIT = re.compile(r"\s*(?:,\s*)?\b(?:and then|and also|and|then|also)\b\s*|\s*[;,]\s*", re.I)


def split_commands(text: str) -> list[str]:
    """ "turn off the lights and set a timer for 10 minutes" → the two commands."""
    return [p for p in _SPLIT.split(text) if p and p.strip()]


def _slot_list_for(annotation: Any) -> dict[str, Any]:
    """A hassil slot list (in intents-JSON form) for a tool parameter's type."""
    values = literal_values(annotation)
    if values:
        return {"values": values}
    base = annotation
    args = getattr(annotation, "__args__", ())
    if args and get_origin(annotation) is not None:
        non_none = [a for a in args if a is not type(None)]
        base = non_none[0] if non_none else annotation
    if base is int:
        return {"range": {"from": 0, "to": 1000}}
    if base is float:
        return {"range": {"from": 0, "to": 1000, "fractions": "halves"}}
    return {"wildcard": True}
