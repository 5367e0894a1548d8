"""The model store and catalog: which models exist, where they are, and whether they can be trusted."""

from __future__ import annotations

from .catalog import Catalog, ModelEntry, ModelFile, detect_tier, load_catalog
from .store import ModelStatus, ModelStore, sha256_file

__all__ = [
    "Catalog",
    "ModelEntry",
    "ModelFile",
    "ModelStatus",
    "ModelStore",
    "detect_tier",
    "load_catalog",
    "sha256_file",
]
