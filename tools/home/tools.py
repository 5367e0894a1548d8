"""The home-control tools: turn on/off, lights, covers, locks, climate, media, and state questions.

Arguments use Home Assistant's intent slot names (``name``, ``area``, ``floor``, ``domain``,
``device_class``, ``state``, ``brightness`` ...), so the fast path passes matched slots through
unchanged and the LLM sees the same vocabulary. Calls that reach a lock, an alarm panel or a
garage door/gate are security-sensitive and ask for confirmation first.
"""

from __future__ import annotations

from typing import Any, Literal

from assistant.errors import ToolError
from assistant.toolkit import Risk, Toolbox, tool

from .backend import HomeBackend, service_for
from .model import Entity, HomeSnapshot
from .targets import DOMAIN_WORDS, Match, describe_targets, match_targets

__all__ = ["HomeTools", "spoken_state"]

SECURITY_DOMAINS = {"lock", "alarm_control_panel"}
SECURITY_COVER_CLASSES = {"garage", "garage_door", "gate", "door"}

_BINARY_WORDS = {
    "door": ("open", "closed"), "window": ("open", "closed"), "garage_door": ("open", "closed"), "opening": ("open", "closed"),
    "moisture": ("wet", "dry"), "battery": ("low", "normal"), "battery_charging": ("charging", "not charging"),
    "motion": ("detecting motion", "clear"), "occupancy": ("occupied", "clear"), "presence": ("home", "away"),
    "smoke": ("detecting smoke", "clear"), "carbon_monoxide": ("detecting carbon monoxide", "clear"),
    "lock": ("unlocked", "locked"), "plug": ("plugged in", "unplugged"), "power": ("on", "off"),
}


def spoken_state(e: Entity) -> str:
    """An entity's state as a person would say it ("open", "21.5 degrees", "on at 50 percent")."""
    if e.human_state:
        return e.human_state
    s = e.state
    if e.domain == "binary_sensor":
        on, off = _BINARY_WORDS.get(e.device_class or "", ("on", "off"))
        return on if s == "on" else off if s == "off" else s
    unit = e.attributes.get("unit_of_measurement")
    if e.domain == "sensor" and unit:
        unit_word = {"°C": "degrees", "°F": "degrees", "%": "percent"}.get(unit, unit)
        return f"{s} {unit_word}"
    if e.domain == "light" and s == "on" and e.attributes.get("brightness") not in (None, 255):
        return f"on at {round(int(e.attributes['brightness']) * 100 / 255)} percent"
    if e.domain == "media_player" and "volume_level" in e.attributes and s in ("playing", "paused"):
        return s
    return s.replace("_", " ")


def _rgb(color: str) -> list[int]:
    import webcolors  # noqa: PLC0415

    try:
        c = webcolors.name_to_rgb(color.lower().replace(" ", ""))
    except ValueError:
        raise ToolError(f"I don't know the colour {color}.") from None
    return [c.red, c.green, c.blue]


class HomeTools(Toolbox):
    """Tools over a :class:`~tools.home.backend.HomeBackend`.

    Args:
        backend: The home.
        default_area: The area this assistant is in, used when a request names no place.
    """

    name = "home"

    def __init__(self, backend: HomeBackend, default_area: str = "") -> None:
        self.backend = backend
        self.default_area = default_area

    async def start(self) -> None:
        await self.backend.start()

    async def close(self) -> None:
        await self.backend.close()

    # ------------------------------------------------------------------ helpers

    @property
    def snap(self) -> HomeSnapshot:
        return self.backend.snapshot()

    def _match(self, **kw: Any) -> Match:
        m = match_targets(self.snap, **kw)
        if m.error:
            raise ToolError(m.error)
        return m

    async def _apply(self, verb: str, m: Match, data: dict[str, Any] | None = None) -> list[Entity]:
        changed = []
        skipped = []
        for e in m.entities:
            service = service_for(verb, e.domain)
            if service is None:
                skipped.append(e)
                continue
            changed.append(await self.backend.call_service(e, service, data))
        if not changed:
            names = ", ".join(e.name for e in skipped[:3])
            raise ToolError(f"{names} can't be turned {'on' if verb == 'turn_on' else 'off'}.")
        return changed

    def _security_risk(self, **kw: Any) -> Risk:
        m = match_targets(self.snap, **{k: v for k, v in kw.items() if k in ("name", "area", "floor", "domain", "device_class")})
        for e in m.entities:
            if e.domain in SECURITY_DOMAINS or (e.domain == "cover" and e.device_class in SECURITY_COVER_CLASSES):
                return Risk.SECURITY
        return Risk.HOME

    def _confirm_text(self, verb: str, **kw: Any) -> str:
        m = match_targets(self.snap, **{k: kw.get(k) for k in ("name", "area", "floor", "domain", "device_class")})
        if len(m.entities) == 1:
            e = m.entities[0]
            words = {
                ("lock", "turn_on"): "lock", ("lock", "turn_off"): "unlock", ("cover", "turn_on"): "open",
                ("cover", "turn_off"): "close", ("alarm_control_panel", "turn_on"): "arm", ("alarm_control_panel", "turn_off"): "disarm",
            }
            action = words.get((e.domain, verb), verb.replace("_", " "))
            return f"Do you want me to {action} the {e.name}?"
        names = ", ".join(e.name for e in m.entities[:4])
        return f"This affects {names}. Go ahead?"

    def _confirm_on(self, **kw: Any) -> str:
        return self._confirm_text("turn_on", **kw)

    def _confirm_off(self, **kw: Any) -> str:
        return self._confirm_text("turn_off", **kw)

    def _confirm_toggle(self, **kw: Any) -> str:
        return self._confirm_text("toggle", **kw)

    def _confirm_position(self, **kw: Any) -> str:
        return self._confirm_text("set the position of", **kw).replace("set the position of", f"set to {kw.get('position')} percent")

    def _place(self, name: str | None, area: str | None, floor: str | None) -> str | None:
        if not (name or area or floor) and self.default_area:
            return self.default_area
        return area

    _TOOL_DOMAINS = {
        "home_set_light": {"light"},
        "home_set_temperature": {"climate"},
        "home_get_temperature": {"climate", "sensor"},
        "home_media": {"media_player"},
        "home_set_volume": {"media_player"},
        "home_set_position": {"cover", "valve"},
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

    # ------------------------------------------------------------------ tools

    def _verb_reply(self, verb: str, m: Match, changed: list[Entity], name, domain, device_class) -> dict[str, Any]:
        what = describe_targets(Match(entities=changed, area=m.area, floor_name=m.floor_name), name=name, domain=domain, device_class=device_class)
        domains = {e.domain for e in changed}
        if domains <= {"cover", "valve"}:
            word = "Opened" if verb == "turn_on" else "Closed"
        elif domains == {"lock"}:
            word = "Locked" if verb == "turn_on" else "Unlocked"
        elif domains <= {"scene", "script"}:
            word = "Activated"
        elif domains == {"vacuum"}:
            word = "Started" if verb == "turn_on" else "Sent home"
        else:
            word = {"turn_on": "Turned on", "turn_off": "Turned off", "toggle": "Toggled"}[verb]
        return {"say": f"{word} {what}.", "entities": [{"id": e.id, "name": e.name, "state": e.state} for e in changed]}

    async def _verb(self, verb: str, name, area, floor, domain, device_class) -> dict[str, Any]:
        m = self._match(name=name, area=self._place(name, area, floor), floor=floor, domain=domain, device_class=device_class)
        changed = await self._apply(verb, m)
        return self._verb_reply(verb, m, changed, name, domain, device_class)

    def _escalate(self, name: str | None = None, area: str | None = None, floor: str | None = None, domain=None, device_class=None, **_: Any) -> Risk:
        return self._security_risk(name=name, area=self._place(name, area, floor), floor=floor, domain=domain, device_class=device_class)

    @tool(risk=Risk.HOME, escalate="_escalate", confirm_prompt="_confirm_on")
    async def home_turn_on(
        self,
        name: str | None = None,
        area: str | None = None,
        floor: str | None = None,
        domain: list[str] | None = None,
        device_class: list[str] | None = None,
    ) -> dict[str, Any]:
        """Turn on, open, lock or start devices: lights, switches, fans, covers, locks, scenes, vacuums.

        Args:
            name: Device name, e.g. "Living Room Lamp".
            area: Area name, e.g. "Kitchen"; with no name, everything of the domain there.
            floor: Floor name, e.g. "Upstairs".
            domain: Kinds of device, e.g. ["light"], ["cover"], ["lock"].
            device_class: Sub-kinds, e.g. ["garage"], ["window"].
        """
        return await self._verb("turn_on", name, area, floor, domain, device_class)

    @tool(risk=Risk.HOME, escalate="_escalate", confirm_prompt="_confirm_off")
    async def home_turn_off(
        self,
        name: str | None = None,
        area: str | None = None,
        floor: str | None = None,
        domain: list[str] | None = None,
        device_class: list[str] | None = None,
    ) -> dict[str, Any]:
        """Turn off, close, unlock or dock devices: lights, switches, fans, covers, locks, vacuums.

        Args:
            name: Device name, e.g. "Kitchen Light".
            area: Area name; with no name, everything of the domain there.
            floor: Floor name.
            domain: Kinds of device, e.g. ["light"].
            device_class: Sub-kinds, e.g. ["garage"].
        """
        return await self._verb("turn_off", name, area, floor, domain, device_class)

    @tool(risk=Risk.HOME, escalate="_escalate", confirm_prompt="_confirm_toggle")
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

    @tool(risk=Risk.HOME)
    async def home_set_light(
        self,
        name: str | None = None,
        area: str | None = None,
        floor: str | None = None,
        brightness: int | None = None,
        color: str | None = None,
    ) -> dict[str, Any]:
        """Set the brightness (percent) and/or colour of lights.

        Args:
            name: Light name.
            area: Area name; with no name, all lights there.
            floor: Floor name.
            brightness: 0 to 100 percent.
            color: A colour name, e.g. "red", "warm white" is not a colour, "orange" is.
        """
        if brightness is None and not color:
            raise ToolError("Tell me a brightness or a colour.")
        m = self._match(name=name, area=self._place(name, area, floor), floor=floor, domain=["light"])
        data: dict[str, Any] = {}
        if brightness is not None:
            if not 0 <= brightness <= 100:
                raise ToolError("Brightness goes from 0 to 100 percent.")
            data["brightness_pct"] = brightness
        if color:
            data["rgb_color"] = _rgb(color)
        changed = [await self.backend.call_service(e, "turn_on", data) for e in m.entities]
        what = describe_targets(m, name=name, domain=["light"])
        parts = []
        if brightness is not None:
            parts.append(f"{brightness} percent")
        if color:
            parts.append(color)
        return {"say": f"Set {what} to {' and '.join(parts)}.", "entities": [{"id": e.id, "state": e.state, "attributes": e.attributes} for e in changed]}

    @tool(risk=Risk.HOME, escalate="_escalate", confirm_prompt="_confirm_position")
    async def home_set_position(
        self,
        position: int,
        name: str | None = None,
        area: str | None = None,
        domain: list[str] | None = None,
        device_class: list[str] | None = None,
    ) -> dict[str, Any]:
        """Set covers (blinds, curtains, garage doors) or valves to a position, 0 closed to 100 open.

        Args:
            position: 0 to 100 percent open.
            name: Device name.
            area: Area name.
            domain: ["cover"] or ["valve"].
            device_class: e.g. ["blind"], ["curtain"].
        """
        if not 0 <= position <= 100:
            raise ToolError("Position goes from 0 to 100 percent.")
        m = self._match(name=name, area=self._place(name, area, None), domain=domain or ["cover", "valve"], device_class=device_class)
        changed = []
        for e in m.entities:
            service = "set_valve_position" if e.domain == "valve" else "set_cover_position"
            changed.append(await self.backend.call_service(e, service, {"position": position}))
        return {"say": f"Set {describe_targets(m, name=name, domain=domain, device_class=device_class)} to {position} percent.",
                "entities": [{"id": e.id, "state": e.state} for e in changed]}

    @tool(risk=Risk.HOME)
    async def home_set_temperature(self, temperature: float, name: str | None = None, area: str | None = None, floor: str | None = None) -> dict[str, Any]:
        """Set a thermostat's target temperature.

        Args:
            temperature: Target temperature in the thermostat's unit.
            name: Thermostat name.
            area: Area name.
            floor: Floor name.
        """
        m = match_targets(self.snap, name=name, area=area, floor=floor, domain=["climate"])
        if m.error or not m.entities:
            raise ToolError(m.error or "There is no thermostat there.")
        changed = [await self.backend.call_service(e, "set_temperature", {"temperature": temperature}) for e in m.entities]
        value = int(temperature) if float(temperature).is_integer() else temperature
        return {"say": f"Set the temperature to {value} degrees.", "entities": [{"id": e.id, "temperature": e.attributes.get("temperature")} for e in changed]}

    @tool
    async def home_get_temperature(self, name: str | None = None, area: str | None = None) -> dict[str, Any]:
        """Tell the current temperature a thermostat measures.

        Args:
            name: Thermostat name.
            area: Area name.
        """
        m = match_targets(self.snap, name=name, area=self._place(name, area, None), domain=["climate"])
        if (m.error or not m.entities) and not name:
            m = match_targets(self.snap, domain=["climate"])
        if m.error or not m.entities:
            # "what is the furnace temperature": a temperature sensor answers too
            s = match_targets(self.snap, name=name, area=area, domain=["sensor"], device_class=["temperature"])
            if s.entities:
                e = s.entities[0]
                return {"say": f"{e.name} is {spoken_state(e)}.", "temperature": e.state, "entity": e.id}
            raise ToolError(m.error or "There is no thermostat.")
        e = m.entities[0]
        t = e.attributes.get("current_temperature")
        if t is None:
            raise ToolError(f"{e.name} does not report a temperature.")
        return {"say": f"It is {t} degrees.", "temperature": t, "entity": e.id}

    @tool
    async def home_get_state(
        self,
        name: str | None = None,
        area: str | None = None,
        floor: str | None = None,
        domain: list[str] | None = None,
        device_class: list[str] | None = None,
        state: str | None = None,
    ) -> dict[str, Any]:
        """Answer questions about devices and sensors: "is the garage door open?", "which lights are on?".

        Args:
            name: Device or sensor name.
            area: Area name.
            floor: Floor name.
            domain: Kinds of device, e.g. ["light"], ["binary_sensor"].
            device_class: Sub-kinds, e.g. ["window"].
            state: Ask whether devices are in this state, e.g. "on", "open", "locked".
        """
        if state is None:
            m = self._match(name=name, area=area, floor=floor, domain=domain, device_class=device_class)
            if len(m.entities) == 1:
                e = m.entities[0]
                return {"say": f"{e.name} is {spoken_state(e)}.", "entities": [{"id": e.id, "state": e.state}]}
            listed = ", ".join(f"{e.name} is {spoken_state(e)}" for e in m.entities[:6])
            return {"say": listed + ".", "entities": [{"id": e.id, "state": e.state} for e in m.entities]}
        everything = self._match(name=name, area=area, floor=floor, domain=domain, device_class=device_class)
        inside = match_targets(self.snap, name=name, area=area, floor=floor, domain=domain, device_class=device_class, state=state)
        hits = inside.entities
        if name and len(everything.entities) == 1:
            e = everything.entities[0]
            return {"say": f"{'Yes' if hits else 'No'}, {e.name} is {spoken_state(e)}.", "answer": bool(hits), "entities": [{"id": e.id, "state": e.state}]}
        if not hits:
            return {"say": f"No, none are {state}.", "answer": False, "entities": []}
        names = ", ".join(e.name for e in hits[:5])
        return {"say": f"Yes, {names} {'is' if len(hits) == 1 else 'are'} {state}.", "answer": True, "entities": [{"id": e.id, "state": e.state} for e in hits]}

    @tool(risk=Risk.HOME)
    async def home_media(self, action: Literal["pause", "resume", "next", "previous"], name: str | None = None, area: str | None = None) -> dict[str, Any]:
        """Control media players: pause, resume, next track, previous track.

        Args:
            action: What to do.
            name: Media player name.
            area: Area name.
        """
        service = {"pause": "media_pause", "resume": "media_play", "next": "media_next_track", "previous": "media_previous_track"}[action]
        m = self._match(name=name, area=self._place(name, area, None), domain=["media_player"])
        targets = m.entities
        if len(targets) > 1 and action in ("pause",):
            targets = [e for e in targets if e.state == "playing"] or targets
        changed = [await self.backend.call_service(e, service) for e in targets]
        word = {"pause": "Paused", "resume": "Resumed", "next": "Playing the next track on", "previous": "Playing the previous track on"}[action]
        what = describe_targets(m, name=name, domain=["media_player"])
        return {"say": f"{word} {what}." if action in ("next", "previous") else f"{word}.", "entities": [{"id": e.id, "state": e.state} for e in changed]}

    @tool(risk=Risk.HOME)
    async def home_set_volume(self, volume: int, name: str | None = None, area: str | None = None) -> dict[str, Any]:
        """Set a media player's volume in percent.

        Args:
            volume: 0 to 100 percent.
            name: Media player name.
            area: Area name.
        """
        if not 0 <= volume <= 100:
            raise ToolError("Volume goes from 0 to 100 percent.")
        m = self._match(name=name, area=self._place(name, area, None), domain=["media_player"])
        changed = [await self.backend.call_service(e, "volume_set", {"volume_level": volume / 100}) for e in m.entities]
        return {"say": f"Volume set to {volume} percent.", "entities": [{"id": e.id, "volume_level": e.attributes.get("volume_level")} for e in changed]}

    @tool
    async def home_list(self, area: str | None = None, domain: str | None = None) -> dict[str, Any]:
        """List the home's devices with their areas and states (to find the right name).

        Args:
            area: Only this area.
            domain: Only this kind, e.g. "light".
        """
        m = match_targets(self.snap, area=area, domain=domain)
        if m.error:
            raise ToolError(m.error)
        names = {a.id: a.name for a in self.snap.areas}
        items = [{"name": e.name, "area": names.get(e.area_id or "", ""), "kind": DOMAIN_WORDS.get(e.domain, (e.domain,))[0], "state": spoken_state(e)} for e in m.entities]
        return {"say": f"There are {len(items)} devices.", "devices": items}
