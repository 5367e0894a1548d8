"""The model catalog (``models/catalog.toml``): what can be fetched, from where, with which hash."""

from __future__ import annotations

import os
import platform
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..errors import ModelError

__all__ = ["Catalog", "ModelEntry", "ModelFile", "KINDS", "TIERS", "catalog_path", "detect_tier", "load_catalog"]

KINDS = ("wake", "wake_features", "turn", "asr", "tts", "llm")
TIERS = ("pi4", "pi5", "laptop", "desktop")


@dataclass(frozen=True)
class ModelFile:
    """One file of a model."""

    path: str
    """Path inside the model's folder."""
    url: str
    size: int | None
    """Bytes, or None when unknown."""
    sha256: str | None
    """Lower-case hex SHA-256, or None when no hash is published (pinned on first download)."""


@dataclass(frozen=True)
class ModelEntry:
    """One model of the catalog."""

    name: str
    kind: str
    engine: str
    description: str
    license: str
    restrictive: bool
    """True when the licence restricts use (non-commercial, community licences): shown before use."""
    language: str
    tiers: tuple[str, ...]
    main: str
    """What the engine loads, relative to the model folder ("." = the folder itself)."""
    files: tuple[ModelFile, ...] = field(default_factory=tuple)

    @property
    def size(self) -> int:
        """Total bytes of the files whose size is known."""
        return sum(f.size or 0 for f in self.files)


@dataclass(frozen=True)
class Catalog:
    entries: dict[str, ModelEntry]
    defaults: dict[str, tuple[str, ...]]
    """Recommended model names per hardware tier."""

    def get(self, name: str) -> ModelEntry:
        """The entry called ``name``.

        Raises:
            ModelError: No such model; the hint lists the close names.
        """
        try:
            return self.entries[name]
        except KeyError:
            import difflib

            close = difflib.get_close_matches(name, list(self.entries), n=3)
            raise ModelError(
                f"unknown model '{name}'",
                hint=("did you mean " + ", ".join(close) + "? " if close else "")
                + "`assistant models list` shows the catalog",
            ) from None

    def by_kind(self, kind: str) -> list[ModelEntry]:
        return [e for e in self.entries.values() if e.kind == kind]


def catalog_path() -> Path:
    """Where the catalog file is: the copy in the installed package, else the source tree's."""
    env = os.environ.get("ASSISTANT_CATALOG")
    if env:
        return Path(env)
    packaged = Path(__file__).with_name("catalog.toml")
    if packaged.exists():
        return packaged
    return Path(__file__).resolve().parents[2] / "models" / "catalog.toml"


def _parse(data: dict, source: Path) -> Catalog:
    entries: dict[str, ModelEntry] = {}
    for raw in data.get("model", []):
        try:
            files = tuple(
                ModelFile(path=f["path"], url=f["url"], size=f.get("size"), sha256=(f.get("sha256") or None))
                for f in raw["files"]
            )
            entry = ModelEntry(
                name=raw["name"], kind=raw["kind"], engine=raw["engine"], description=raw.get("description", ""),
                license=raw["license"], restrictive=bool(raw.get("restrictive", False)), language=raw.get("language", ""),
                tiers=tuple(raw.get("tiers", ())), main=raw.get("main", "."), files=files,
            )
        except KeyError as exc:
            raise ModelError(f"catalog {source}: model {raw.get('name', '?')} lacks key {exc}") from None
        if entry.kind not in KINDS:
            raise ModelError(f"catalog {source}: model {entry.name} has unknown kind {entry.kind!r}; allowed: {', '.join(KINDS)}")
        entries[entry.name] = entry
    defaults = {tier: tuple(names) for tier, names in data.get("defaults", {}).items()}
    for tier, names in defaults.items():
        for n in names:
            if n not in entries:
                raise ModelError(f"catalog {source}: default set '{tier}' names unknown model {n}")
    return Catalog(entries=entries, defaults=defaults)


@lru_cache(maxsize=4)
def _load(path: Path) -> Catalog:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"cannot read the model catalog {path}: {exc}", hint="reinstall the assistant") from None
    return _parse(data, path)


def load_catalog(path: Path | None = None) -> Catalog:
    """Load (and cache) the catalog.

    Raises:
        ModelError: The catalog is missing or malformed.
    """
    return _load(path or catalog_path())


def detect_tier() -> str:
    """Guess this machine's hardware tier: ``pi4``, ``pi5``, ``laptop`` or ``desktop``.

    A Raspberry Pi is recognised from ``/proc/device-tree/model``; otherwise machines with fewer
    than 8 logical cores or less than 16 GiB of memory count as ``laptop``.
    """
    model_file = Path("/proc/device-tree/model")
    if model_file.exists():
        try:
            model = model_file.read_bytes().decode(errors="ignore")
        except OSError:
            model = ""
        if "Raspberry Pi 5" in model:
            return "pi5"
        if "Raspberry Pi" in model:
            return "pi4"
    if platform.machine().lower() in ("aarch64", "armv7l", "arm64") and (os.cpu_count() or 1) <= 4:
        return "pi4"
    cores = os.cpu_count() or 1
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        mem = 0
    if cores >= 8 and mem >= 16 * 2**30:
        return "desktop"
    return "laptop"
