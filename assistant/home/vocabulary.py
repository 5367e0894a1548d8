"""Words for kinds of device: what people call them, and what the assistant calls them back.

:data:`KIND_WORDS` maps what people say ("the telly", "the curtains", "the aircon", "the
sprinklers") to Home Assistant domains and device classes; the resolver uses it when a request
names a kind of device instead of a device. Keys are in :func:`~assistant.home.text.normalize`'s
form and singular; plurals are found with :func:`~assistant.home.text.singular`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ALL_DEVICES_DOMAINS",
    "DEVICE_CLASS_WORDS",
    "DOMAIN_WORDS",
    "KIND_WORDS",
    "Kind",
    "kind_words",
]


@dataclass(frozen=True)
class Kind:
    """A kind of device: its domains, and (optionally) the device classes within them."""

    domains: frozenset[str]
    device_classes: frozenset[str] = frozenset()
    """Empty: any device class. Entities without a device class also count (many TVs have none)."""

    def admits(self, domain: str, device_class: str | None) -> bool:
        if domain not in self.domains:
            return False
        return not self.device_classes or device_class is None or device_class in self.device_classes


def _k(domains: str, classes: str = "") -> Kind:
    return Kind(frozenset(domains.split()), frozenset(classes.split()))


_COVER_DOOR = _k("cover lock binary_sensor", "door garage garage_door opening")
KIND_WORDS: dict[str, Kind] = {
    # lights and power
    "light": _k("light"), "bulb": _k("light"), "lighting": _k("light"),
    "switch": _k("switch input_boolean"), "plug": _k("switch", "outlet"), "outlet": _k("switch", "outlet"), "socket": _k("switch", "outlet"),
    "fan": _k("fan"),
    # climate
    "thermostat": _k("climate"), "heating": _k("climate"), "heat": _k("climate"), "ac": _k("climate"), "aircon": _k("climate"),
    "air con": _k("climate"), "air conditioner": _k("climate"), "air conditioning": _k("climate"), "hvac": _k("climate"),
    "climate": _k("climate"), "heat pump": _k("climate"), "furnace": _k("climate sensor"),
    # media
    "tv": _k("media_player", "tv"), "telly": _k("media_player", "tv"), "television": _k("media_player", "tv"),
    "speaker": _k("media_player", "speaker"), "music": _k("media_player"), "stereo": _k("media_player", "speaker receiver"),
    "media player": _k("media_player"), "player": _k("media_player"), "radio": _k("media_player", "speaker receiver"),
    # cleaning
    "vacuum": _k("vacuum"), "robot": _k("vacuum"), "robot vacuum": _k("vacuum"), "vacuum cleaner": _k("vacuum"), "hoover": _k("vacuum"),
    "cleaner": _k("vacuum"), "robot cleaner": _k("vacuum"),
    # water
    "valve": _k("valve"), "sprinkler": _k("valve"), "irrigation": _k("valve"), "water": _k("valve"), "water valve": _k("valve"),
    # openings
    "cover": _k("cover"), "blind": _k("cover", "blind"), "curtain": _k("cover", "curtain"), "drape": _k("cover", "curtain"),
    "shade": _k("cover", "shade"), "shutter": _k("cover", "shutter"), "awning": _k("cover", "awning"), "gate": _k("cover", "gate"),
    "garage door": _k("cover binary_sensor", "garage garage_door"), "garage": _k("cover", "garage"), "garage door opener": _k("cover", "garage"),
    "window": _k("cover binary_sensor", "window"), "door": _COVER_DOOR, "lock": _k("lock"), "deadbolt": _k("lock"),
    # the rest
    "scene": _k("scene"), "script": _k("script"), "routine": _k("script scene"), "button": _k("button input_button"),
    "sensor": _k("sensor binary_sensor"), "thermometer": _k("sensor", "temperature"), "list": _k("todo"), "to do list": _k("todo"),
    "todo list": _k("todo"), "todo": _k("todo"), "person": _k("person"),
}
"""What people call kinds of device → domains (and device classes)."""

ALL_DEVICES_DOMAINS = ("light", "switch", "fan", "media_player", "input_boolean")
"""What "turn everything off" reaches: things with an on and an off that are safe to switch
together (not locks, covers, valves, vacuums or thermostats)."""

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
    "button": ("button", "buttons"),
    "input_boolean": ("switch", "switches"),
    "input_number": ("setting", "settings"),
    "todo": ("list", "lists"),
    "person": ("person", "people"),
    "weather": ("weather service", "weather services"),
}
"""How the assistant names a domain in a reply (singular, plural)."""

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
    "temperature": ("temperature sensor", "temperature sensors"),
    "humidity": ("humidity sensor", "humidity sensors"),
    "moisture": ("leak sensor", "leak sensors"),
    "motion": ("motion sensor", "motion sensors"),
    "battery": ("battery", "batteries"),
}
"""How the assistant names a device class in a reply (singular, plural)."""


def kind_words(domains: list[str] | None, classes: list[str] | None, plural: bool) -> str:
    """ "lights", "garage door", "devices": how to say a kind in a reply."""
    i = 1 if plural else 0
    if classes:
        return DEVICE_CLASS_WORDS.get(classes[0], (classes[0].replace("_", " "),) * 2)[i]
    if domains:
        return DOMAIN_WORDS.get(domains[0], (domains[0].replace("_", " "),) * 2)[i]
    return ("device", "devices")[i]
