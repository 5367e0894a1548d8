"""The plugin's own tests, written with the assistant's plugin test helpers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

import jarvis_weather
from assistant.testing.plugins import PluginHarness, check_tool_documented


@pytest.fixture
def open_meteo():
    """A loopback server answering like Open-Meteo's /v1/forecast."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.path)
            body = json.dumps({"current": {"temperature_2m": 11.6, "weather_code": 61, "wind_speed_10m": 14.2}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()


async def test_weather_now(tmp_path, open_meteo):
    url, seen = open_meteo
    async with PluginHarness(jarvis_weather, "weather", tmp_path, settings={"base_url": url, "latitude": 1.5, "longitude": 2.5}) as h:
        out = await h.call("weather_now")
        assert out.ok, out.error
        assert out.say == "It's 12 degrees and light rain, with wind at 14 kilometres per hour."
        assert "latitude=1.5" in seen[0] and "longitude=2.5" in seen[0]
        assert h.confirmations and "Open-Meteo" in h.confirmations[0].prompt  # off-device: asked first
        assert h.route("what's the weather like today").tool == "weather_now"
        assert not check_tool_documented(h.tools["weather_now"])


async def test_refusal_and_offline(tmp_path):
    async with PluginHarness(jarvis_weather, "weather", tmp_path, settings={"base_url": "http://127.0.0.1:9"}, confirm=False) as h:
        assert (await h.call("weather_now")).refused
    async with PluginHarness(jarvis_weather, "weather", tmp_path, settings={"base_url": "http://127.0.0.1:9"}) as h:
        out = await h.call("weather_now")
        assert not out.ok and "can't reach" in out.error
