"""The home as the assistant sees it: floors, areas and entities, in Home Assistant's shape.

An entity has an id ``<domain>.<object_id>`` (``light.living_room_lamp``), a name, an area, a
state (``"on"``, ``"off"``, ``"open"``, ``"locked"``, ``"21.5"`` ...) and attributes
(``brightness`` 0-255, ``rgb_color``, ``device_class``, ``current_temperature``, ``volume_level``
0-1, ``current_position`` 0-100 ...), as Home Assistant reports them.

:func:`load_home_yaml` reads the YAML shape of Home Assistant's intent test fixtures (``floors``,
``areas``, ``entities`` lists), which is also what the simulated home and the bundled demo use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

__all__ = ["Area", "Entity", "Floor", "HomeSnapshot", "load_home_yaml", "normalize_name"]


def normalize_name(name: str) -> str:
    """Case-folded, apostrophes and punctuation dropped, single spaces: how names are compared."""
    name = name.casefold().replace("'", "").replace("’", "")
    name = re.sub(r"[^\w\s]", " ", name)
    return re.sub(r"\s+", " ", name).strip()


@dataclass(frozen=True)
class Floor:
    id: str
    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Area:
    id: str
    name: str
    floor_id: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entity:
    """One device or sensor.

    Attributes:
        id: ``domain.object_id``.
        name: Friendly name.
        area_id: The area it is in, or None.
        state: Home Assistant state string.
        attributes: Home Assistant attributes.
        aliases: Other names it answers to.
    """

    id: str
    name: str
    area_id: str | None = None
    state: str = "unknown"
    attributes: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    human_state: str | None = None
    """How the state is said out loud when it differs from the raw state (e.g. "normal" for off)."""

    @property
    def domain(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def device_class(self) -> str | None:
        return self.attributes.get("device_class")

    def with_state(self, state: str | None = None, **attributes: Any) -> "Entity":
        attrs = {**self.attributes, **{k: v for k, v in attributes.items()}}
        return replace(self, state=self.state if state is None else state, attributes=attrs, human_state=None)

    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass
class HomeSnapshot:
    """Floors, areas and entities at one moment."""

    floors: list[Floor] = field(default_factory=list)
    areas: list[Area] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)

    def entity(self, entity_id: str) -> Entity | None:
        for e in self.entities:
            if e.id == entity_id:
                return e
        return None

    def area(self, area_id: str | None) -> Area | None:
        for a in self.areas:
            if a.id == area_id:
                return a
        return None

    def names(self) -> list[str]:
        """Every device name and alias, then every area and floor name and alias (empty ones left out)."""
        out = [n for e in self.entities for n in e.names()] + [n for x in (*self.areas, *self.floors) for n in (x.name, *x.aliases)]
        return [n for n in out if n]

    def floor_of(self, entity: Entity) -> str | None:
        area = self.area(entity.area_id)
        return area.floor_id if area else None


def _expand(name: str) -> list[str]:
    """Names in the fixture may be hassil templates (``"Trader Joe[']s"``): all spellings, first = main."""
    if not any(c in name for c in "[]()|"):
        return [name.strip()]
    from hassil import parse_sentence, sample_expression  # noqa: PLC0415

    return [n.strip() for n in sample_expression(parse_sentence(name).expression)]


def load_home_yaml(path: Path) -> HomeSnapshot:
    """Read a home description (Home Assistant's intent-fixture YAML shape).

    Raises:
        ConfigError: The file is missing, is not YAML, or an entry lacks ``id``/``name``.
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"home file {path} does not exist", hint="set home.simulated_home to a YAML file, or remove it to use the demo home") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read home file {path}: {exc}") from None
    snap = HomeSnapshot()
    try:
        for f in data.get("floors", []) or []:
            names = _expand(f["name"])
            snap.floors.append(Floor(id=f["id"], name=names[0], aliases=tuple(names[1:]) + tuple(f.get("aliases", []))))
        for a in data.get("areas", []) or []:
            names = _expand(a["name"])
            snap.areas.append(Area(id=a["id"], name=names[0], floor_id=a.get("floor"), aliases=tuple(names[1:]) + tuple(a.get("aliases", []))))
        for e in data.get("entities", []) or []:
            names = _expand(e["name"])
            state = e.get("state", "off")
            human = None
            if isinstance(state, dict):
                human, state = state.get("in"), state.get("out")
            if "." not in e["id"]:
                raise ConfigError(f"home file {path}: entity id {e['id']!r} must look like domain.object_id")
            snap.entities.append(
                Entity(id=e["id"], name=names[0], area_id=e.get("area"), state=str(state), attributes=dict(e.get("attributes") or {}),
                       aliases=tuple(names[1:]) + tuple(e.get("aliases", [])), human_state=human)
            )
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"home file {path}: an entry lacks {exc}", hint="each floor, area and entity needs an id and a name") from None
    return snap
