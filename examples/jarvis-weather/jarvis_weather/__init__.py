"""Current weather from Open-Meteo, as a Jarvis tool plugin.

The whole plugin is the :class:`Weather` toolbox and the ``register_tools`` hook; the
assistant discovers it through the ``jarvis_assistant.tools`` entry point in ``pyproject.toml``.
"""

from __future__ import annotations

import httpx
import pydantic

from assistant.errors import ToolError
from assistant.toolkit import PluginContext, Risk, Toolbox, hookimpl, tool

__all__ = ["Weather", "WeatherSettings", "register_tools"]

# WMO weather interpretation codes (the ones Open-Meteo reports), in words.
WMO = {
    0: "clear", 1: "mainly clear", 2: "partly cloudy", 3: "overcast", 45: "foggy", 48: "foggy with rime",
    51: "light drizzle", 53: "drizzle", 55: "heavy drizzle", 61: "light rain", 63: "rain", 65: "heavy rain",
    66: "freezing rain", 67: "heavy freezing rain", 71: "light snow", 73: "snow", 75: "heavy snow", 77: "snow grains",
    80: "rain showers", 81: "heavy rain showers", 82: "violent rain showers", 85: "snow showers", 86: "heavy snow showers",
    95: "a thunderstorm", 96: "a thunderstorm with hail", 99: "a thunderstorm with heavy hail",
}


class WeatherSettings(pydantic.BaseModel):
    """``[plugins.weather]`` in the assistant's config."""

    model_config = pydantic.ConfigDict(extra="forbid")
    latitude: float = pydantic.Field(52.52, ge=-90, le=90)
    longitude: float = pydantic.Field(13.41, ge=-180, le=180)
    base_url: str = "https://api.open-meteo.com"
    timeout_s: float = pydantic.Field(8.0, gt=0)


class Weather(Toolbox):
    """Weather tools."""

    name = "weather"

    def __init__(self, settings: WeatherSettings) -> None:
        self.settings = settings
        self.client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self.client = httpx.AsyncClient(base_url=self.settings.base_url, timeout=self.settings.timeout_s)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    @tool(
        risk=Risk.OFF_DEVICE,
        templates=["what's the weather [like] [today|now|outside]", "what is the weather [like] [today|now|outside]", "how is the weather [today]"],
        confirm_prompt="Look up the weather online? This sends your location to Open-Meteo.",
    )
    async def weather_now(self) -> dict:
        """Tell the current weather (temperature, sky, wind) where the user lives."""
        assert self.client is not None
        params = {
            "latitude": self.settings.latitude,
            "longitude": self.settings.longitude,
            "current": "temperature_2m,weather_code,wind_speed_10m",
        }
        try:
            r = await self.client.get("/v1/forecast", params=params)
        except httpx.TimeoutException:
            raise ToolError("The weather service did not answer in time.") from None
        except httpx.TransportError:
            raise ToolError("I can't reach the weather service; are we offline?") from None
        if r.status_code != 200:
            raise ToolError(f"The weather service answered HTTP {r.status_code}.")
        try:
            current = r.json()["current"]
            temp = round(float(current["temperature_2m"]))
            sky = WMO.get(int(current["weather_code"]), "unsettled")
            wind = round(float(current["wind_speed_10m"]))
        except (KeyError, TypeError, ValueError):
            raise ToolError("The weather service sent an answer I can't read.") from None
        return {"say": f"It's {temp} degrees and {sky}, with wind at {wind} kilometres per hour.",
                "temperature_c": temp, "sky": sky, "wind_kmh": wind}


@hookimpl
def register_tools(register, context: PluginContext) -> None:
    try:
        settings = WeatherSettings.model_validate(context.settings)
    except pydantic.ValidationError as exc:
        raise ToolError(f"[plugins.weather] is invalid: {exc}") from None
    register(Weather(settings))
