"""Colour words for lights: CSS colour names (webcolors) and names of whites (colour temperatures)."""

from __future__ import annotations

__all__ = ["COLOR_TEMPERATURES", "kelvin_for", "rgb_for"]

COLOR_TEMPERATURES = {
    "candle light": 2000, "warm white": 2700, "warm": 2700, "soft white": 3000, "white": 4000, "neutral white": 4000,
    "natural white": 4000, "cool white": 5000, "cool": 5000, "cold white": 5500, "daylight": 6500, "bright white": 6500,
}
"""Names of whites → kelvin (as bulb makers label them: 2700 K "warm white" … 6500 K "daylight")."""


def kelvin_for(name: str) -> int | None:
    """The colour temperature a white is called by ("warm white" → 2700), or None."""
    n = " ".join(name.lower().replace("-", " ").split()).removeprefix("a ")
    return COLOR_TEMPERATURES.get(n)


def rgb_for(name: str) -> list[int] | None:
    """[r, g, b] of a CSS colour name ("red", "light blue", "orange"), or None."""
    import webcolors  # noqa: PLC0415

    for candidate in (name.lower().replace(" ", ""), name.lower().replace(" ", "").removesuffix("ish")):
        try:
            c = webcolors.name_to_rgb(candidate)
        except ValueError:
            continue
        return [c.red, c.green, c.blue]
    return None
