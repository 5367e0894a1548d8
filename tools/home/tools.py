"""The home-control tools: every Home Assistant domain people talk to, and questions about the home.

Arguments use Home Assistant's intent slot names (``name``, ``area``, ``floor``, ``domain``,
``device_class``, ``state`` ...), so the fast path passes matched slots through unchanged and the
LLM sees the same vocabulary. ``name`` is what the request called the device, as said: an
entity's name or alias, "the bedroom 2 heater", "the lamp", "the curtains", "both bedside lamps"
or an entity id; :class:`~assistant.home.resolver.EntityResolver` finds the devices, and when
a request meant one device and several fit, the tool asks which one
(:class:`~assistant.errors.NeedsClarification`) instead of guessing.

Calls that reach a lock, an alarm panel or a garage door/gate are security-sensitive and ask for
confirmation first.
"""

from __future__ import annotations

from typing import Any, Literal

from assistant.errors import NeedsClarification, ToolError
from assistant.home import Entity, EntityResolver, HomeSnapshot, Resolution
from assistant.home.text import place_phrase
from assistant.home.vocabulary import DOMAIN_WORDS, kind_words
from assistant.toolkit import Risk, Toolbox, tool

from .backend import HomeBackend, service_for
from .colors import COLOR_TEMPERATURES, kelvin_for, rgb_for

__all__ = ["HomeTools", "describe_targets", "home_rows", "spoken_state"]

SECURITY_DOMAINS = {"lock", "alarm_control_panel"}
SECURITY_COVER_CLASSES = {"garage", "garage_door", "gate", "door"}

_BINARY_WORDS = {
    "door": ("open", "closed"), "window": ("open", "closed"), "garage_door": ("open", "closed"), "opening": ("open", "closed"),
    "moisture": ("wet", "dry"), "battery": ("low", "normal"), "battery_charging": ("charging", "not charging"),
    "motion": ("detecting motion", "clear"), "occupancy": ("occupied", "clear"), "presence": ("home", "away"),
    "smoke": ("detecting smoke", "clear"), "carbon_monoxide": ("detecting carbon monoxide", "clear"),
    "lock": ("unlocked", "locked"), "plug": ("plugged in", "unplugged"), "power": ("on", "off"),
}
_STATE_WORDS = {"not_home": "away", "home": "home", "docked": "docked", "returning": "returning to its dock", "heat_cool": "heating and cooling", "fan_only": "fan only"}

FAN_SPEEDS = {"off": 0, "low": 33, "medium": 66, "high": 100, "max": 100, "maximum": 100, "full": 100, "min": 1, "minimum": 1}
"""Speed words → percent, before snapping to the fan's own steps (``percentage_step``)."""

BRIGHTNESS_STEP = 25
"""Percent a "brighter"/"dimmer" changes a light by."""
VOLUME_STEP = 10
"""Percent "louder"/"quieter" changes a player's volume by."""
COLOR_TEMP_STEP = 500
"""Kelvin "warmer"/"cooler" changes a white light by."""


def home_rows(snapshot) -> list[dict[str, str]]:
    """Every entity as ``{"area", "name", "kind", "state"}`` (state as spoken), sorted by area then
    name, entities without an area last (the live views: the TUI, ``GET /home``)."""
    names = {a.id: a.name for a in snapshot.areas}
    rows = [{"area": names.get(e.area_id or "", "—"), "name": e.name, "kind": e.domain.replace("_", " "), "state": spoken_state(e)}
            for e in snapshot.entities]
    return sorted(rows, key=lambda r: (r["area"] == "—", r["area"], r["name"]))


def spoken_state(e: Entity) -> str:
    """An entity's state as a person would say it ("open", "21.5 degrees", "on at 50 percent")."""
    if e.human_state:
        return e.human_state
    s = e.state
    if e.domain == "binary_sensor":
        on, off = _BINARY_WORDS.get(e.device_class or "", ("on", "off"))
        return on if s == "on" else off if s == "off" else s
    unit = e.attributes.get("unit_of_measurement")
    if e.domain in ("sensor", "input_number") and unit:
        unit_word = {"°C": "degrees", "°F": "degrees", "%": "percent"}.get(unit, unit)
        return f"{_number(s)} {unit_word}"
    if e.domain == "light" and s == "on" and e.attributes.get("brightness") not in (None, 255):
        return f"on at {round(int(e.attributes['brightness']) * 100 / 255)} percent"
    if e.domain == "fan" and s == "on" and e.attributes.get("percentage"):
        return f"on at {round(float(e.attributes['percentage']))} percent"
    if e.domain == "media_player" and s in ("playing", "paused") and e.attributes.get("media_title"):
        return f"{s} {e.attributes['media_title']}"
    if e.domain == "todo":
        return f"{s} items" if s not in ("", "unknown") else "empty"
    return _STATE_WORDS.get(s, s.replace("_", " "))


def _number(s: str) -> str:
    try:
        f = float(s)
    except ValueError:
        return s
    return str(int(f)) if f.is_integer() else str(round(f, 1))


def describe_targets(res: Resolution, entities: list[Entity], *, domain=None, device_class=None) -> str:
    """How to refer to what was acted on in a reply: "the living room lamp", "the lights in the kitchen"."""
    if len(entities) == 1:
        return "the " + _spoken(entities[0].name)
    domains = sorted({e.domain for e in entities})
    classes = device_class if isinstance(device_class, list) else ([device_class] if device_class else None)
    kind = kind_words(domain if isinstance(domain, list) else (domains if len(domains) == 1 else None), classes, plural=True)
    if len(domains) > 1 and not domain:
        kind = "devices"
    if res.area or res.floor:
        return f"the {kind}" + place_phrase(res.area.name.lower() if res.area else None, res.floor.name.lower() if res.floor else None)
    if len(entities) <= 3:
        names = [_spoken(e.name) for e in entities]
        return "the " + ", ".join(names[:-1]) + " and the " + names[-1]
    return f"all the {kind}"


def _spoken(name: str) -> str:
    return " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in name.split())


def _entities(changed: list[Entity]) -> list[dict[str, Any]]:
    return [{"id": e.id, "name": e.name, "state": e.state} for e in changed]


class HomeTools(Toolbox):
    """Tools over a :class:`~tools.home.backend.HomeBackend`.

    Args:
        backend: The home.
        default_area: The area this assistant is in: a request that names no place means here.
    """

    name = "home"

    def __init__(self, backend: HomeBackend, default_area: str = "") -> None:
        self.backend = backend
        self.default_area = default_area

    async def start(self) -> None:
        await self.backend.start()

    async def close(self) -> None:
        await self.backend.close()

    # ------------------------------------------------------------------ resolving

    @property
    def snap(self) -> HomeSnapshot:
        return self.backend.snapshot()

    def resolver(self) -> EntityResolver:
        """The resolver for this request: the area it came from (a satellite's room) or this device's."""
        from assistant.engine.context import current  # noqa: PLC0415

        return EntityResolver(self.snap, current().area or self.default_area or None)

    def _resolve(self, *, verb: str | None = None, plural: bool | None = None, **target: Any) -> Resolution:
        """Resolve a target or raise what to say: the question (several fit) or why none does."""
        resolver = self.resolver()
        res = resolver.resolve(verb=verb, plural=plural, **{k: v for k, v in target.items() if v not in (None, "", [])})
        if res.reason == "ambiguous":
            raise NeedsClarification(res.message, [{"name": e.id} for e in res.candidates], resolver.labels(res.candidates))
        if not res.ok:
            raise ToolError(res.message)
        return res

    async def _call_each(self, entities: list[Entity], service: str, data: dict[str, Any] | None = None) -> list[Entity]:
        return [await self.backend.call_service(e, service, data) for e in entities]

    def _security_risk(self, verb: str | None, **target: Any) -> Risk:
        res = self._resolve(verb=verb, **target)  # several fit: the question comes before any confirmation
        for e in res.entities:
            if e.domain in SECURITY_DOMAINS or (e.domain == "cover" and e.device_class in SECURITY_COVER_CLASSES):
                return Risk.SECURITY
        return Risk.HOME

    def _escalate_on(self, name=None, area=None, floor=None, domain=None, device_class=None, **_: Any) -> Risk:
        return self._security_risk("turn_on", name=name, area=area, floor=floor, domain=domain, device_class=device_class)

    def _escalate_off(self, name=None, area=None, floor=None, domain=None, device_class=None, **_: Any) -> Risk:
        return self._security_risk("turn_off", name=name, area=area, floor=floor, domain=domain, device_class=device_class)

    def _escalate_position(self, name=None, area=None, domain=None, device_class=None, **_: Any) -> Risk:
        return self._security_risk(None, name=name, area=area, domain=domain or ["cover", "valve"], device_class=device_class)

    def _confirm_text(self, verb: str, **target: Any) -> str:
        res = self._resolve(verb=verb if verb in ("turn_on", "turn_off") else None, **{k: v for k, v in target.items() if k in ("name", "area", "floor", "domain", "device_class")})
        if len(res.entities) == 1:
            e = res.entities[0]
            words = {
                ("lock", "turn_on"): "lock", ("lock", "turn_off"): "unlock", ("cover", "turn_on"): "open",
                ("cover", "turn_off"): "close", ("alarm_control_panel", "turn_on"): "arm", ("alarm_control_panel", "turn_off"): "disarm",
            }
            action = words.get((e.domain, verb), verb.replace("_", " "))
            return f"Do you want me to {action} the {e.name}?"
        names = ", ".join(e.name for e in res.entities[:4])
        return f"This affects {names}. Go ahead?"

    def _confirm_on(self, **kw: Any) -> str:
        return self._confirm_text("turn_on", **kw)

    def _confirm_off(self, **kw: Any) -> str:
        return self._confirm_text("turn_off", **kw)

    def _confirm_toggle(self, **kw: Any) -> str:
        return self._confirm_text("toggle", **kw)

    def _confirm_position(self, **kw: Any) -> str:
        return self._confirm_text("set the position of", **kw).replace("set the position of", f"set to {kw.get('position')} percent")

    _TOOL_DOMAINS = {
        "home_set_light": {"light"},
        "home_set_fan": {"fan"},
        "home_set_temperature": {"climate"},
        "home_set_hvac_mode": {"climate"},
        "home_get_temperature": {"climate", "sensor"},
        "home_media": {"media_player"},
        "home_set_volume": {"media_player"},
        "home_mute": {"media_player"},
        "home_select_source": {"media_player"},
        "home_vacuum": {"vacuum"},
        "home_set_position": {"cover", "valve"},
        "home_stop": {"cover", "valve", "vacuum", "media_player"},
        "home_set_value": {"input_number", "number"},
    }

    def argument_choices(self, tool_name: str) -> dict[str, list[str]]:
        """The names a tool's arguments may take (the LLM's grammar restricts them to these)."""
        snap = self.snap
        domains = self._TOOL_DOMAINS.get(tool_name)
        ents = [e for e in snap.entities if domains is None or e.domain in domains]
        out = {
            "name": sorted({n for e in ents for n in e.names()}),
            "area": sorted({n for a in snap.areas for n in (a.name, *a.aliases)}),
            "floor": sorted({n for f in snap.floors for n in (f.name, *f.aliases)}),
            "domain": sorted({e.domain for e in ents}),
            "device_class": sorted({e.device_class for e in ents if e.device_class}),
        }
        return {k: v for k, v in out.items() if v}

    # ------------------------------------------------------------------ on / off

    async def _verb(self, verb: str, name, area, floor, domain, device_class) -> dict[str, Any]:
        res = self._resolve(verb=verb, name=name, area=area, floor=floor, domain=domain, device_class=device_class)
        targets = [e for e in res.entities if service_for(verb, e.domain) is not None]
        if not targets:
            names = ", ".join(e.name for e in res.entities[:3])
            raise ToolError(f"{names} can't be turned {'on' if verb == 'turn_on' else 'off'}.")
        meant = targets
        if res.plural and verb in ("turn_on", "turn_off") and len(targets) > 1:
            # "turn off the lights": the ones already off need no command
            pending = [e for e in targets if e.domain not in ("scene", "script", "button") and _changes(e, verb)]
            targets = pending or targets
        changed = []
        for e in targets:
            changed.append(await self.backend.call_service(e, service_for(verb, e.domain), None))  # type: ignore[arg-type]
        return {"say": f"{_verb_word(verb, changed)} {describe_targets(res, meant, domain=domain, device_class=device_class)}.", "entities": _entities(changed)}

    @tool(risk=Risk.HOME, escalate="_escalate_on", confirm_prompt="_confirm_on")
    async def home_turn_on(
        self,
        name: str | None = None,
        area: str | None = None,
        floor: str | None = None,
        domain: list[str] | None = None,
        device_class: list[str] | None = None,
    ) -> dict[str, Any]:
        """Turn on, open, lock, start or activate devices: lights, switches, fans, covers, valves, locks, vacuums, scenes, scripts, buttons.

        Args:
            name: The device as the user named it, e.g. "Living Room Lamp", "the heater".
            area: Area name, e.g. "Kitchen"; with no name, everything of the domain there.
            floor: Floor name, e.g. "Upstairs".
            domain: Kinds of device, e.g. ["light"], ["cover"], ["lock"].
            device_class: Sub-kinds, e.g. ["garage"], ["window"].
        """
        return await self._verb("turn_on", name, area, floor, domain, device_class)

    @tool(risk=Risk.HOME, escalate="_escalate_off", confirm_prompt="_confirm_off")
    async def home_turn_off(
        self,
        name: str | None = None,
        area: str | None = None,
        floor: str | None = None,
        domain: list[str] | None = None,
        device_class: list[str] | None = None,
    ) -> dict[str, Any]:
        """Turn off, close, unlock or dock devices: lights, switches, fans, covers, valves, locks, vacuums.

        Args:
            name: The device as the user named it, e.g. "Kitchen Light".
            area: Area name; with no name, everything of the domain there.
            floor: Floor name.
            domain: Kinds of device, e.g. ["light"].
            device_class: Sub-kinds, e.g. ["garage"].
        """
        return await self._verb("turn_off", name, area, floor, domain, device_class)

    @tool(risk=Risk.HOME, escalate="_escalate_on", confirm_prompt="_confirm_toggle")
    async def home_toggle(
        self,
        name: str | None = None,
        area: str | None = None,
        floor: str | None = None,
        domain: list[str] | None = None,
    ) -> dict[str, Any]:
        """Toggle devices: on becomes off and off becomes on.

        Args:
            name: Device name.
            area: Area name.
            floor: Floor name.
            domain: Kinds of device, e.g. ["light"].
        """
        return await self._verb("toggle", name, area, floor, domain, None)

    # ------------------------------------------------------------------ lights

    @tool(risk=Risk.HOME)
    async def home_set_light(
        self,
        name: str | None = None,
        area: str | None = None,
        floor: str | None = None,
        brightness: int | None = None,
        brightness_step: int | None = None,
        color: str | None = None,
        color_temp_kelvin: int | None = None,
        color_temp_step: int | None = None,
    ) -> dict[str, Any]:
        """Set lights' brightness (percent, or up/down by a step), colour, or white colour temperature.

        Args:
            name: Light name.
            area: Area name; with no name, all lights there.
            floor: Floor name.
            brightness: 0 to 100 percent.
            brightness_step: Change the brightness by this many percent, e.g. 25 or -25.
            color: A colour name, e.g. "red", "orange", or a white such as "warm white", "daylight".
            color_temp_kelvin: White colour temperature in kelvin, 2000 (warm) to 6500 (cool daylight).
            color_temp_step: Change the colour temperature by this many kelvin (negative = warmer).
        """
        if brightness is None and brightness_step is None and not color and color_temp_kelvin is None and color_temp_step is None:
            raise ToolError("Tell me a brightness or a colour.")
        if brightness is not None and not 0 <= brightness <= 100:
            raise ToolError("Brightness goes from 0 to 100 percent.")
        if color and color_temp_kelvin is None and kelvin_for(color) is not None:
            color_temp_kelvin, color = kelvin_for(color), None
        rgb = rgb_for(color) if color else None
        if color and rgb is None:
            raise ToolError(f"I don't know the colour {color}.")
        res = self._resolve(name=name, area=area, floor=floor, domain=["light"], verb="set")  # no "the one it would change": ask
        targets = res.entities
        if brightness_step is not None and brightness_step < 0 and len(targets) > 1:
            targets = [e for e in targets if e.state == "on"] or targets  # "dim the lights": the ones that are on
        changed = []
        for e in targets:
            data: dict[str, Any] = {}
            if brightness is not None:
                data["brightness_pct"] = brightness
            elif brightness_step is not None:
                now = round(int(e.attributes.get("brightness") or 0) * 100 / 255) if e.state == "on" else 0
                data["brightness_pct"] = max(1 if brightness_step < 0 and now else 0, min(100, now + brightness_step))
            if rgb is not None:
                data["rgb_color"] = rgb
            if color_temp_kelvin is not None:
                data["color_temp_kelvin"] = int(color_temp_kelvin)
            elif color_temp_step is not None:
                now_k = int(e.attributes.get("color_temp_kelvin") or 4000)
                data["color_temp_kelvin"] = max(2000, min(6500, now_k + color_temp_step))
            changed.append(await self.backend.call_service(e, "turn_on", data))
        what = describe_targets(res, changed)
        if brightness_step is not None and brightness is None and rgb is None:
            word = "Brightened" if brightness_step > 0 else "Dimmed"
            return {"say": f"{word} {what}.", "entities": _light_entities(changed)}
        if color_temp_step is not None and color_temp_kelvin is None:
            return {"say": f"Made {what} {'cooler' if color_temp_step > 0 else 'warmer'}.", "entities": _light_entities(changed)}
        parts = []
        if brightness is not None:
            parts.append(f"{brightness} percent")
        if color:
            parts.append(color)
        if color_temp_kelvin is not None:
            parts.append(_white_name(color_temp_kelvin))
        return {"say": f"Set {what} to {' and '.join(parts)}.", "entities": _light_entities(changed)}

    # ------------------------------------------------------------------ fans

    @tool(risk=Risk.HOME)
    async def home_set_fan(
        self,
        name: str | None = None,
        area: str | None = None,
        floor: str | None = None,
        percentage: int | None = None,
        speed: Literal["low", "medium", "high", "max"] | None = None,
        step: int | None = None,
        oscillating: bool | None = None,
        direction: Literal["forward", "reverse"] | None = None,
    ) -> dict[str, Any]:
        """Set fans' speed (percent, a speed word, or faster/slower by steps), oscillation or direction.

        Args:
            name: Fan name.
            area: Area name; with no name, all fans there.
            floor: Floor name.
            percentage: Speed, 0 to 100 percent.
            speed: "low", "medium", "high" or "max".
            step: Faster (1) or slower (-1) by the fan's own speed steps.
            oscillating: Swing from side to side (true) or not (false).
            direction: "forward" or "reverse".
        """
        if percentage is None and speed is None and step is None and oscillating is None and direction is None:
            raise ToolError("Tell me a speed, or whether it should oscillate.")
        if percentage is not None and not 0 <= percentage <= 100:
            raise ToolError("Fan speed goes from 0 to 100 percent.")
        res = self._resolve(name=name, area=area, floor=floor, domain=["fan"], verb="turn_on")
        changed = []
        for e in res.entities:
            fan_step = float(e.attributes.get("percentage_step") or 1)
            if percentage is not None or speed is not None:
                pct = percentage if percentage is not None else FAN_SPEEDS[speed or "medium"]
                e = await self.backend.call_service(e, "set_percentage", {"percentage": _snap_to_step(pct, fan_step)})
            elif step is not None:
                now = float(e.attributes.get("percentage") or 0) if e.state == "on" else 0.0
                e = await self.backend.call_service(e, "set_percentage", {"percentage": _step_speed(now, fan_step, step)})
            if oscillating is not None:
                e = await self.backend.call_service(e, "oscillate", {"oscillating": oscillating})
            if direction is not None:
                e = await self.backend.call_service(e, "set_direction", {"direction": direction})
            changed.append(e)
        what = describe_targets(res, changed)
        if oscillating is not None and percentage is None and speed is None and step is None:
            return {"say": f"{'Oscillating' if oscillating else 'Stopped oscillating'}: {what}.", "entities": _fan_entities(changed)}
        if direction is not None and percentage is None and speed is None and step is None:
            return {"say": f"Set {what} to turn {direction}.", "entities": _fan_entities(changed)}
        if step is not None and percentage is None and speed is None:
            now = changed[0].attributes.get("percentage") or 0
            return {"say": f"{'Sped up' if step > 0 else 'Slowed down'} {what} to {round(float(now))} percent.", "entities": _fan_entities(changed)}
        shown = speed if speed is not None else f"{percentage} percent"
        return {"say": f"Set {what} to {shown}.", "entities": _fan_entities(changed)}

    # ------------------------------------------------------------------ covers, valves, stop

    @tool(risk=Risk.HOME, escalate="_escalate_position", confirm_prompt="_confirm_position")
    async def home_set_position(
        self,
        position: int,
        name: str | None = None,
        area: str | None = None,
        domain: list[str] | None = None,
        device_class: list[str] | None = None,
    ) -> dict[str, Any]:
        """Set covers (blinds, curtains, shades, garage doors) or valves to a position, 0 closed to 100 open.

        Args:
            position: 0 to 100 percent open.
            name: Device name.
            area: Area name.
            domain: ["cover"] or ["valve"].
            device_class: e.g. ["blind"], ["curtain"].
        """
        if not 0 <= position <= 100:
            raise ToolError("Position goes from 0 to 100 percent.")
        res = self._resolve(name=name, area=area, domain=domain or ["cover", "valve"], device_class=device_class, verb="open" if position else "close")
        changed = []
        for e in res.entities:
            service = "set_valve_position" if e.domain == "valve" else "set_cover_position"
            changed.append(await self.backend.call_service(e, service, {"position": position}))
        return {"say": f"Set {describe_targets(res, changed, domain=domain, device_class=device_class)} to {position} percent.", "entities": _entities(changed)}

    @tool(risk=Risk.HOME)
    async def home_stop(
        self,
        name: str | None = None,
        area: str | None = None,
        domain: list[str] | None = None,
        device_class: list[str] | None = None,
    ) -> dict[str, Any]:
        """Stop covers or valves that are moving, a vacuum, or media that is playing.

        Args:
            name: Device name.
            area: Area name.
            domain: e.g. ["cover"], ["vacuum"], ["media_player"].
            device_class: e.g. ["garage"].
        """
        res = self._resolve(name=name, area=area, domain=domain or ["cover", "valve", "vacuum", "media_player"], device_class=device_class)
        service = {"cover": "stop_cover", "valve": "stop_valve", "vacuum": "stop", "media_player": "media_stop"}
        changed = [await self.backend.call_service(e, service[e.domain]) for e in res.entities if e.domain in service]
        if not changed:
            raise ToolError("There's nothing there I can stop.")
        return {"say": f"Stopped {describe_targets(res, changed)}.", "entities": _entities(changed)}

    # ------------------------------------------------------------------ climate

    @tool(risk=Risk.HOME)
    async def home_set_temperature(
        self,
        temperature: float | None = None,
        change: float | None = None,
        name: str | None = None,
        area: str | None = None,
        floor: str | None = None,
    ) -> dict[str, Any]:
        """Set a thermostat's target temperature, or raise/lower it by some degrees.

        Args:
            temperature: Target temperature in the thermostat's unit.
            change: Degrees to add (e.g. 1) or take away (e.g. -2) from the current target.
            name: Thermostat name.
            area: Area name.
            floor: Floor name.
        """
        if temperature is None and change is None:
            raise ToolError("Tell me the temperature.")
        res = self._climate(name, area, floor)
        changed = []
        for e in res.entities:
            target = temperature
            if target is None:
                now = e.attributes.get("temperature", e.attributes.get("current_temperature"))
                if now is None:
                    raise ToolError(f"{e.name} does not report a target temperature.")
                target = float(now) + float(change or 0)
            lo, hi = e.attributes.get("min_temp"), e.attributes.get("max_temp")
            if lo is not None and hi is not None and not float(lo) <= float(target) <= float(hi):
                raise ToolError(f"{e.name} goes from {_number(str(lo))} to {_number(str(hi))} degrees.")
            changed.append(await self.backend.call_service(e, "set_temperature", {"temperature": float(target)}))
        value = _number(str(changed[0].attributes.get("temperature")))
        where = "" if len(changed) == 1 and (name or not area) else f" in {describe_targets(res, changed)}"
        return {"say": f"Set the temperature{where} to {value} degrees.", "entities": [{"id": e.id, "temperature": e.attributes.get("temperature")} for e in changed]}

    def _climate(self, name, area, floor) -> Resolution:
        try:
            return self._resolve(name=name, area=area, floor=floor, domain=["climate"], verb="turn_on", plural=False)
        except NeedsClarification:
            raise
        except ToolError:
            if not name and (area or floor):
                return self._resolve(domain=["climate"], verb="turn_on", plural=False)  # one thermostat for the house
            raise

    @tool(risk=Risk.HOME)
    async def home_set_hvac_mode(
        self,
        mode: Literal["off", "heat", "cool", "auto", "heat_cool", "dry", "fan_only"],
        name: str | None = None,
        area: str | None = None,
        floor: str | None = None,
    ) -> dict[str, Any]:
        """Switch a thermostat or air conditioner to heating, cooling, auto, dry, fan only, or off.

        Args:
            mode: The HVAC mode.
            name: Thermostat name.
            area: Area name.
            floor: Floor name.
        """
        res = self._climate(name, area, floor)
        changed = []
        for e in res.entities:
            modes = e.attributes.get("hvac_modes")
            if modes and mode not in modes:
                raise ToolError(f"{e.name} can't do {mode.replace('_', ' ')}; it can do {', '.join(m.replace('_', ' ') for m in modes)}.")
            changed.append(await self.backend.call_service(e, "set_hvac_mode", {"hvac_mode": mode}))
        word = {"off": "Turned off", "heat": "Set to heating:", "cool": "Set to cooling:", "auto": "Set to auto:", "heat_cool": "Set to heat and cool:",
                "dry": "Set to dry mode:", "fan_only": "Set to fan only:"}[mode]
        return {"say": f"{word} {describe_targets(res, changed)}.", "entities": _entities(changed)}

    def _readings(self, device_class: str, name: str | None, area: str | None, floor: str | None) -> list[Entity]:
        """Sensors of a kind (device class, or a unit that says it) that a place or name picks.

        Many Home Assistant sensors have no area ("Living room humidity", "Outside Temperature"):
        when the place has none, a sensor whose name says the place counts.
        """
        resolver = self.resolver()

        def of_kind(res: Resolution) -> list[Entity]:
            return [e for e in res.entities if _is_reading(e, device_class)] if res.ok else []

        found = of_kind(resolver.resolve(name=name, area=area, floor=floor, domain=["sensor"], plural=True))
        if not found and (area or floor) and not name:
            found = of_kind(resolver.resolve(name=area or floor, domain=["sensor"], plural=True))
        if not found and name:
            found = of_kind(resolver.resolve(name=name, domain=["sensor"], plural=True))
        return found

    @tool
    async def home_get_temperature(self, name: str | None = None, area: str | None = None, floor: str | None = None) -> dict[str, Any]:
        """Tell the temperature: what a room's sensor or thermostat measures, and what the thermostat is set to.

        Args:
            name: Thermostat or sensor name.
            area: Area name ("outside" works when the home has an outside area or floor).
            floor: Floor name.
        """
        resolver = self.resolver()
        sensors = self._readings("temperature", name, area, floor)
        climate = resolver.resolve(name=name, area=area, floor=floor, domain=["climate"], plural=True)
        thermostats = climate.entities if climate.ok else []
        if not (name or area or floor):
            # no place said: here (the context area), else the house's thermostat
            here = resolver.context_area
            in_here = [e for e in thermostats if here is not None and e.area_id == here.id]
            sensors_here = [e for e in sensors if here is not None and e.area_id == here.id]
            thermostats = in_here or thermostats
            sensors = sensors_here
        elif name and thermostats and climate.how in ("exact", "partial", "kind", "place", "id"):
            sensors = []  # "what is the thermostat at": the thermostat, not a room sensor
        if sensors and (area or floor or name):
            e = sensors[0]
            return {"say": f"{e.name} is {spoken_state(e)}.", "temperature": e.state, "entity": e.id}
        if thermostats:
            e = thermostats[0]
            now, target = e.attributes.get("current_temperature"), e.attributes.get("temperature")
            parts = []
            if now is not None:
                parts.append(f"It is {_number(str(now))} degrees")
            if target is not None:
                parts.append(f"the {_spoken(e.name)} is set to {_number(str(target))}")
            if not parts:
                raise ToolError(f"{e.name} does not report a temperature.")
            say = "; ".join(parts) + "."
            return {"say": say[0].upper() + say[1:], "temperature": now, "target": target, "entity": e.id}
        if sensors:
            e = sensors[0]
            return {"say": f"{e.name} is {spoken_state(e)}.", "temperature": e.state, "entity": e.id}
        if not climate.ok and climate.reason in ("no_area", "no_floor"):
            raise ToolError(climate.message)
        where = place_phrase(area, floor)
        raise ToolError(f"There is no thermometer or thermostat{where}.")

    # ------------------------------------------------------------------ media

    @tool(risk=Risk.HOME)
    async def home_media(self, action: Literal["pause", "resume", "next", "previous", "stop"], name: str | None = None, area: str | None = None) -> dict[str, Any]:
        """Control media players: pause, resume (play), next track, previous track, stop.

        Args:
            action: What to do.
            name: Media player name.
            area: Area name.
        """
        service = {"pause": "media_pause", "resume": "media_play", "next": "media_next_track", "previous": "media_previous_track", "stop": "media_stop"}[action]
        res = self._resolve(name=name, area=area, domain=["media_player"], plural=None if name else False, verb=_MEDIA_VERB[action])
        targets = res.entities
        if len(targets) > 1 and action in ("pause", "stop", "next", "previous"):
            targets = [e for e in targets if e.state == "playing"] or targets
        changed = [await self.backend.call_service(e, service) for e in targets]
        word = {"pause": "Paused", "resume": "Resumed", "next": "Playing the next track on", "previous": "Playing the previous track on", "stop": "Stopped"}[action]
        what = describe_targets(res, changed)
        return {"say": f"{word} {what}.", "entities": _entities(changed)}

    @tool(risk=Risk.HOME)
    async def home_set_volume(self, volume: int | None = None, step: int | None = None, name: str | None = None, area: str | None = None) -> dict[str, Any]:
        """Set a media player's volume in percent, or turn it up/down by a step.

        Args:
            volume: 0 to 100 percent.
            step: Change by this many percent, e.g. 10 (louder) or -10 (quieter).
            name: Media player name.
            area: Area name.
        """
        if volume is None and step is None:
            raise ToolError("Tell me the volume.")
        if volume is not None and not 0 <= volume <= 100:
            raise ToolError("Volume goes from 0 to 100 percent.")
        res = self._resolve(name=name, area=area, domain=["media_player"], plural=None if name else False, verb="turn_off")
        changed = []
        for e in res.entities:
            level = volume if volume is not None else max(0, min(100, round(float(e.attributes.get("volume_level") or 0) * 100) + int(step or 0)))
            changed.append(await self.backend.call_service(e, "volume_set", {"volume_level": level / 100}))
        level = round(float(changed[0].attributes.get("volume_level") or 0) * 100)
        what = "" if len(changed) == 1 and not name else f" on {describe_targets(res, changed)}"
        return {"say": f"Volume{what} set to {level} percent.", "entities": [{"id": e.id, "volume_level": e.attributes.get("volume_level")} for e in changed]}

    @tool(risk=Risk.HOME)
    async def home_mute(self, muted: bool = True, name: str | None = None, area: str | None = None) -> dict[str, Any]:
        """Mute or unmute media players.

        Args:
            muted: True to mute, False to unmute.
            name: Media player name.
            area: Area name.
        """
        res = self._resolve(name=name, area=area, domain=["media_player"], plural=None if name else False, verb="turn_off")
        changed = [await self.backend.call_service(e, "volume_mute", {"is_volume_muted": muted}) for e in res.entities]
        return {"say": f"{'Muted' if muted else 'Unmuted'} {describe_targets(res, changed)}.", "entities": _entities(changed)}

    @tool(risk=Risk.HOME)
    async def home_select_source(self, source: str, name: str | None = None, area: str | None = None) -> dict[str, Any]:
        """Switch a TV or media player to an input or app, e.g. "HDMI 1", "Netflix", "Radio".

        Args:
            source: The source as the user said it.
            name: Media player name.
            area: Area name.
        """
        from rapidfuzz import fuzz, process  # noqa: PLC0415

        from assistant.home import normalize  # noqa: PLC0415

        res = self._resolve(name=name, area=area, domain=["media_player"], plural=False, verb="turn_off")
        e = res.entities[0]
        sources = list(e.attributes.get("source_list") or [])
        if not sources:
            raise ToolError(f"{e.name} has no sources to choose from.")
        by_norm = {normalize(s): s for s in sources}
        hit = process.extractOne(normalize(source).removeprefix("the "), list(by_norm), scorer=fuzz.WRatio, score_cutoff=80)
        if hit is None:
            raise ToolError(f"{e.name} has no source called {source}; it has {', '.join(sources)}.")
        chosen = by_norm[hit[0]]
        new = await self.backend.call_service(e, "select_source", {"source": chosen})
        return {"say": f"Switched the {_spoken(e.name)} to {chosen}.", "entities": [{"id": new.id, "source": new.attributes.get("source")}]}

    # ------------------------------------------------------------------ vacuums

    @tool(risk=Risk.HOME)
    async def home_vacuum(self, action: Literal["start", "pause", "stop", "return_to_base", "locate"], name: str | None = None, area: str | None = None) -> dict[str, Any]:
        """Robot vacuums: start cleaning, pause, stop, send back to the dock, or make it beep so it can be found.

        Args:
            action: What to do.
            name: Vacuum name.
            area: Area name.
        """
        res = self._resolve(name=name, area=area, domain=["vacuum"], plural=None if name else False, verb="start" if action == "start" else "turn_off")
        changed = [await self.backend.call_service(e, action) for e in res.entities]
        what = describe_targets(res, changed)
        say = {"start": f"Started {what}.", "pause": f"Paused {what}.", "stop": f"Stopped {what}.",
               "return_to_base": f"Sent {what} back to {'their docks' if len(changed) > 1 else 'its dock'}.", "locate": f"{what[0].upper() + what[1:]} is beeping so you can find it."}[action]
        return {"say": say, "entities": _entities(changed)}

    # ------------------------------------------------------------------ helpers (input_number)

    @tool(risk=Risk.HOME)
    async def home_set_value(self, value: float, name: str | None = None, area: str | None = None) -> dict[str, Any]:
        """Set a number setting (a Home Assistant input_number or number), e.g. a target level.

        Args:
            value: The new value.
            name: The setting's name.
            area: Area name.
        """
        res = self._resolve(name=name, area=area, domain=["input_number", "number"], plural=False)
        e = res.entities[0]
        lo, hi = e.attributes.get("min"), e.attributes.get("max")
        if lo is not None and hi is not None and not float(lo) <= value <= float(hi):
            raise ToolError(f"{e.name} goes from {_number(str(lo))} to {_number(str(hi))}.")
        new = await self.backend.call_service(e, "set_value", {"value": value})
        return {"say": f"Set {_spoken(e.name)} to {_number(str(value))}.", "entities": _entities([new])}

    # ------------------------------------------------------------------ questions

    @tool
    async def home_get_state(
        self,
        name: str | None = None,
        area: str | None = None,
        floor: str | None = None,
        domain: list[str] | None = None,
        device_class: list[str] | None = None,
        state: str | None = None,
        every: bool = False,
        which: bool = False,
    ) -> dict[str, Any]:
        """Answer questions about devices and sensors: "is the garage door open?", "which lights are on?".

        Args:
            name: Device or sensor name.
            area: Area name.
            floor: Floor name.
            domain: Kinds of device, e.g. ["light"], ["binary_sensor"].
            device_class: Sub-kinds, e.g. ["window"].
            state: Ask whether devices are in this state, e.g. "on", "open", "locked".
            every: The question is whether all of them are ("are all the doors locked?").
            which: The question asks which ones ("which lights are on?"): the answer lists them, no yes or no.
        """
        target = {"name": name, "area": area, "floor": floor, "domain": domain, "device_class": device_class}
        if state is None:
            res = self._resolve(**target)
            if len(res.entities) == 1:
                e = res.entities[0]
                return {"say": f"{e.name} is {spoken_state(e)}.", "entities": [{"id": e.id, "state": e.state}]}
            listed = ", ".join(f"{e.name} is {spoken_state(e)}" for e in res.entities[:6])
            return {"say": listed + ".", "entities": [{"id": e.id, "state": e.state} for e in res.entities]}
        everything = self._resolve(**target, plural=None if name else True)
        wanted = _state_words(state)

        def matches(e: Any) -> bool:
            words = wanted
            if e.domain != "binary_sensor" and state.strip().lower() in _SENSOR_ONLY_ON_OFF:
                words = wanted - {"on", "off"}  # a light that is on is not "open"; a door sensor that is on is
            return e.state in words or spoken_state(e) in words or (e.human_state or "") in words

        hits = [e for e in everything.entities if matches(e)]
        if name and len(everything.entities) == 1:
            e = everything.entities[0]
            return {"say": f"{'Yes' if hits else 'No'}, {e.name} {_verb(e.name)} {spoken_state(e)}.", "answer": bool(hits), "entities": [{"id": e.id, "state": e.state}]}
        if not hits:
            others = [e for e in everything.entities]
            if len(others) == 1:
                return {"say": f"No, {others[0].name} is {spoken_state(others[0])}.", "answer": False, "entities": []}
            return {"say": f"None are {state}." if which else f"No, none are {state}.", "answer": False, "entities": []}
        shown = [_spoken(e.name) for e in hits[:6]]
        more = f" and {len(hits) - 6} more" if len(hits) > 6 else ""
        names = ", ".join(shown) if more or len(shown) == 1 else f"{', '.join(shown[:-1])} and {shown[-1]}"
        if every and len(hits) < len(everything.entities):
            missing = [e for e in everything.entities if e not in hits]
            return {"say": f"No, the {', '.join(_spoken(e.name) for e in missing[:4])} {'is' if len(missing) == 1 else 'are'} {spoken_state(missing[0])}.",
                    "answer": False, "entities": [{"id": e.id, "state": e.state} for e in missing]}
        verb = _verb(hits[0].name) if len(hits) == 1 else "are"
        if which:
            return {"say": f"The {names}{more} {verb} {state}.", "answer": True, "entities": [{"id": e.id, "state": e.state} for e in hits]}
        return {"say": f"Yes, the {names}{more} {verb} {state}.", "answer": True, "entities": [{"id": e.id, "state": e.state} for e in hits]}

    @tool
    async def home_get_sensor(self, device_class: str, name: str | None = None, area: str | None = None, floor: str | None = None) -> dict[str, Any]:
        """Read a sensor of a kind in a place: humidity, power, energy, battery, illuminance, air quality...

        Args:
            device_class: The kind of reading, e.g. "humidity", "energy", "battery", "illuminance".
            name: Sensor name.
            area: Area name.
            floor: Floor name.
        """
        found = self._readings(device_class, name, area, floor)
        if not found:
            where = place_phrase(area, floor)
            raise ToolError(f"There is no {device_class.replace('_', ' ')} sensor{where}.")
        listed = "; ".join(f"{e.name} is {spoken_state(e)}" for e in found[:3])
        return {"say": listed + ".", "entities": [{"id": e.id, "state": e.state, "unit": e.attributes.get("unit_of_measurement")} for e in found[:3]]}

    @tool
    async def home_list(self, area: str | None = None, domain: str | None = None) -> dict[str, Any]:
        """List the home's devices with their areas and states (to find the right name).

        Args:
            area: Only this area.
            domain: Only this kind, e.g. "light".
        """
        res = self._resolve(area=area, domain=domain, plural=True) if (area or domain) else None
        ents = res.entities if res is not None else list(self.snap.entities)
        names = {a.id: a.name for a in self.snap.areas}
        items = [{"name": e.name, "area": names.get(e.area_id or "", ""), "kind": DOMAIN_WORDS.get(e.domain, (e.domain,))[0], "state": spoken_state(e)} for e in ents]
        return {"say": f"There are {len(items)} devices.", "devices": items}


_MEDIA_VERB = {"pause": "turn_off", "stop": "turn_off", "next": "turn_off", "previous": "turn_off", "resume": "turn_on"}


_UNITS = {"temperature": ("°C", "°F", "K"), "humidity": ("%",)}


def _is_reading(e: Entity, device_class: str) -> bool:
    if e.device_class:
        return e.device_class == device_class
    return e.attributes.get("unit_of_measurement") in _UNITS.get(device_class, ()) and (device_class != "humidity" or "humid" in e.name.lower())


def _changes(e: Entity, verb: str) -> bool:
    from assistant.home import would_change  # noqa: PLC0415

    return would_change(e, verb)


def _verb_word(verb: str, changed: list[Entity]) -> str:
    domains = {e.domain for e in changed}
    if domains <= {"cover", "valve"}:
        return "Opened" if verb == "turn_on" else "Closed" if verb == "turn_off" else "Toggled"
    if domains == {"lock"}:
        return "Locked" if verb == "turn_on" else "Unlocked"
    if domains <= {"scene", "script"}:
        return "Activated"
    if domains == {"button"}:
        return "Pressed"
    if domains == {"vacuum"}:
        return "Started" if verb == "turn_on" else "Sent home"
    return {"turn_on": "Turned on", "turn_off": "Turned off", "toggle": "Toggled"}[verb]


def _light_entities(changed: list[Entity]) -> list[dict[str, Any]]:
    return [{"id": e.id, "state": e.state, "attributes": {k: v for k, v in e.attributes.items() if k in ("brightness", "rgb_color", "color_temp_kelvin")}} for e in changed]


def _fan_entities(changed: list[Entity]) -> list[dict[str, Any]]:
    return [{"id": e.id, "state": e.state, "percentage": e.attributes.get("percentage"), "oscillating": e.attributes.get("oscillating")} for e in changed]


def _snap_to_step(pct: float, step: float) -> int:
    """A requested speed on the fan's own steps (33.33 % steps: 50 % → 67 %, but 0 stays 0)."""
    if pct <= 0:
        return 0
    if step <= 1:
        return int(round(pct))
    n = max(1, round(pct / step))
    return int(min(100, round(n * step)))


def _step_speed(now: float, step: float, steps: int) -> int:
    """Home Assistant's ``fan.increase_speed``: ``steps`` of ``percentage_step`` from now, within 0..100."""
    step = step if step > 1 else 10.0
    return int(max(0, min(100, round(now + steps * step))))


def _verb(name: str) -> str:
    """ "is" or "are" for a device's name: "the blinds are", "the glass is"."""
    last = name.strip().split()[-1].lower() if name.strip() else ""
    return "are" if last.endswith("s") and not last.endswith(("ss", "us", "is")) else "is"


_SENSOR_ONLY_ON_OFF = {"open", "closed", "unlocked", "dry", "wet"}
"""States a binary sensor reports as on/off (a door sensor "on" = open) that mean nothing for a light or a switch."""


def _state_words(state: str) -> set[str]:
    s = state.strip().lower()
    same = {
        "on": {"on", "playing", "heat", "cool", "auto", "heat_cool", "cleaning", "running"},
        "off": {"off", "standby", "idle"},
        "open": {"open", "opening", "on"},
        "closed": {"closed", "closing", "off", "shut"},
        "locked": {"locked"},
        "unlocked": {"unlocked", "open"},
        "running": {"on", "running", "cleaning", "playing"},
        "playing": {"playing"},
        "home": {"home"},
        "away": {"not_home", "away"},
        "docked": {"docked"},
        "cleaning": {"cleaning"},
        "dry": {"off", "dry"},
        "wet": {"on", "wet"},
    }
    return same.get(s, {s})


def _white_name(kelvin: int) -> str:
    for name, k in COLOR_TEMPERATURES.items():
        if k == kelvin:
            return name
    return f"{kelvin} kelvin"
