"""Real servers on loopback for the tests: mosquitto, Home Assistant, llama.cpp's OpenAI-compatible server.

Each helper starts the real program in a subprocess on a free port, waits until it answers, and
stops it afterwards. When a program is not installed the test is skipped with the command that
installs it (``scripts/bootstrap --dev`` installs all of them).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
HA_VENV = Path(os.environ.get("ASSISTANT_HA_VENV", ROOT / ".cache" / "ha-venv"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(check, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with code {proc.returncode}:\n{tail}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s:\n{tail}")


@contextlib.contextmanager
def mosquitto(tmp: Path) -> Iterator[tuple[str, int]]:
    """A mosquitto broker on 127.0.0.1:<free port>, anonymous access."""
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if exe is None:
        pytest.skip("mosquitto is not installed (Debian: apt install mosquitto; scripts/bootstrap --dev does it)")
    port = free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    log = tmp / "mosquitto.log"
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), 0.5).close() or True, 15, "mosquitto", proc, log)
        yield "127.0.0.1", port
    finally:
        _stop(proc)


HA_CONFIG = """\
homeassistant:
  name: Test Home
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: NL
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
websocket_api:
config:
onboarding:
demo:
shopping_list:
"""


def _ha_token(url: str) -> str:
    """Create the owner through the onboarding API, log in, and mint a long-lived token."""
    import asyncio

    import websockets

    client_id = url + "/"
    r = httpx.post(f"{url}/api/onboarding/users", json={"client_id": client_id, "name": "Test", "username": "test", "password": "test-password-1", "language": "en"}, timeout=30)
    r.raise_for_status()
    code = r.json()["auth_code"]
    r = httpx.post(f"{url}/auth/token", data={"grant_type": "authorization_code", "code": code, "client_id": client_id}, timeout=30)
    r.raise_for_status()
    access = r.json()["access_token"]

    async def mint() -> str:
        async with websockets.connect(url.replace("http", "ws") + "/api/websocket") as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "auth", "access_token": access}))
            assert json.loads(await ws.recv())["type"] == "auth_ok"
            await ws.send(json.dumps({"id": 1, "type": "auth/long_lived_access_token", "client_name": "jarvis-tests", "lifespan": 30}))
            return json.loads(await ws.recv())["result"]

    return asyncio.run(mint())


def _finish_import_flows(url: str, token: str) -> None:
    """Confirm the config-entry imports YAML started (``shopping_list:``, which gives the to-do list)."""
    import asyncio

    import websockets

    async def progress() -> list[dict]:
        async with websockets.connect(url.replace("http", "ws") + "/api/websocket") as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "auth", "access_token": token}))
            await ws.recv()
            await ws.send(json.dumps({"id": 1, "type": "config_entries/flow/progress"}))
            return json.loads(await ws.recv())["result"]

    for flow in asyncio.run(progress()):
        if flow["handler"] == "shopping_list":
            httpx.post(f"{url}/api/config/config_entries/flow/{flow['flow_id']}", headers={"Authorization": f"Bearer {token}"}, json={}, timeout=30)


@contextlib.contextmanager
def home_assistant(tmp: Path) -> Iterator[tuple[str, str]]:
    """A real Home Assistant (the demo integration and a shopping list) on loopback; yields (url, long-lived token)."""
    hass = HA_VENV / "bin" / "hass"
    if not hass.exists():
        pytest.skip(f"Home Assistant is not installed in {HA_VENV} (scripts/bootstrap --dev installs homeassistant==2024.3.3 there)")
    port = free_port()
    cfg = tmp / "ha-config"
    cfg.mkdir()
    (cfg / "configuration.yaml").write_text(HA_CONFIG.format(port=port))
    log = tmp / "hass.log"
    proc = subprocess.Popen([str(hass), "-c", str(cfg), "--skip-pip"], stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/api/", timeout=2).status_code == 401, 180, "Home Assistant", proc, log)
        token = _ha_token(url)
        _finish_import_flows(url, token)
        # the demo platforms finish setting up shortly after the API answers
        wait_for(lambda: any(s["entity_id"] == "lock.front_door" for s in httpx.get(f"{url}/api/states", headers={"Authorization": f"Bearer {token}"}, timeout=5).json()), 120, "Home Assistant demo entities", proc, log)
        yield url, token
    finally:
        _stop(proc, 30)


@contextlib.contextmanager
def llama_server(model: Path, tmp: Path) -> Iterator[str]:
    """llama-cpp-python's own OpenAI-compatible server on loopback; yields its base URL (…/v1)."""
    try:
        import llama_cpp.server  # noqa: F401,PLC0415 - only to skip when absent
    except ImportError:
        pytest.skip("llama-cpp-python[server] is not installed (scripts/bootstrap --dev installs it)")
    port = free_port()
    log = tmp / "llama-server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "2048", "--n_threads", "2"],
        stdout=open(log, "w"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_for(lambda: httpx.get(f"{url}/models", timeout=2).status_code == 200, 120, "llama-cpp-python server", proc, log)
        yield url
    finally:
        _stop(proc)


class RecordingProxy:
    """An HTTP server on loopback in front of an upstream OpenAI-compatible server.

    It records every request body (what the assistant sent), and can be told to be ``"down"``
    (never started), ``"slow"`` (answer after ``delay_s``), ``"error"`` (HTTP 500) or
    ``"scripted"`` (answer each request with the next of ``script``, OpenAI-shaped responses).
    """

    def __init__(self, upstream: str | None, mode: str = "forward", delay_s: float = 5.0, script: list[dict] | None = None) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.upstream, self.mode, self.delay_s = upstream, mode, delay_s
        self.script = list(script or [])
        self.received: list[dict] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.received.append(json.loads(body or b"{}"))
                if proxy.mode == "scripted":  # a remote model that answers what the test says (a hostile one, say)
                    answer = json.dumps(proxy.script.pop(0) if proxy.script else {"choices": [{"message": {"content": "ok"}}]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                if proxy.mode == "error":
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b'{"error": "boom"}')
                    return
                if proxy.mode == "slow":
                    time.sleep(proxy.delay_s)
                r = httpx.post(proxy.upstream + self.path.removeprefix("/v1"), content=body,
                               headers={"Content-Type": "application/json"}, timeout=120)
                try:
                    self.send_response(r.status_code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(r.content)))
                    self.end_headers()
                    self.wfile.write(r.content)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
