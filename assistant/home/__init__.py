"""The home as the assistant understands it: the model, the words for it, and entity resolution.

* :mod:`.model` — floors, areas and entities in Home Assistant's shape;
* :mod:`.text` — the one normal form names and requests are compared in;
* :mod:`.vocabulary` — what people call kinds of device;
* :mod:`.resolver` — which devices a request means (or which ones to ask about).

The home *backends* (simulated, Home Assistant, MQTT) and the home *tools* are a plugin
(``tools/home``); everything that understands requests about a home lives here, so every tier of
the router and every tool resolves names the same way.
"""

from .model import Area, Entity, Floor, HomeSnapshot, load_home_yaml, normalize_name
from .resolver import EntityResolver, Resolution, would_change
from .text import normalize, singular

__all__ = [
    "Area",
    "Entity",
    "EntityResolver",
    "Floor",
    "HomeSnapshot",
    "Resolution",
    "load_home_yaml",
    "normalize",
    "normalize_name",
    "singular",
    "would_change",
]
