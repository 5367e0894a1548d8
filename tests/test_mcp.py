"""MCP both ways, with real servers and clients of the official SDK.

Client side: ``tests/mcp_servers/demo_server.py`` (written with the SDK's ``MCPServer``) runs over
stdio and over Streamable HTTP on loopback; its read-only, non-destructive, destructive,
unannotated, open-world, crashing and hanging tools go through the registry, the fast path, the
scripted LLM, ``assistant tools list`` and the TUI.

Server side: the SDK's own ``Client`` talks to ``assistant mcp`` (a subprocess over stdio) and to
``serve --mcp`` (Streamable HTTP on loopback), with and without the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from assistant.bus import EventBus  # noqa: E402
from assistant.config import Config  # noqa: E402
from assistant.controller.local_llm import LocalController  # noqa: E402
from assistant.controller.memory import Conversation  # noqa: E402
from assistant.events import ToolCallStarted  # noqa: E402
from assistant.mcp.client import namespaced, risk_of  # noqa: E402
from assistant.toolkit.api import Risk  # noqa: E402
from assistant.toolkit.registry import ToolRegistry  # noqa: E402
from assistant.testing.llm import ScriptedLLM  # noqa: E402

from .servers import free_port, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "tests" / "mcp_servers" / "demo_server.py"


def _events(state: Path) -> list[dict]:
    if not state.exists():
        return []
    return [json.loads(line) for line in state.read_text().splitlines() if line.strip()]


def _mcp_config(config: Config, state: Path, **server) -> Config:
    entry = {"name": "demo", "command": [sys.executable, str(DEMO), "stdio"], "env": {"DEMO_STATE": str(state)}, "timeout_s": 3.0, **server}
    return config.with_overrides({"mcp.servers": [entry], "tools.confirm_risks": ["security", "off_device"]})


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "demo-state.jsonl"


@pytest.fixture(params=["http", "sse"])
def http_demo(request, tmp_path: Path, state: Path):
    """The demo server over Streamable HTTP (and the older SSE transport) on a loopback port."""
    port = free_port()
    log = tmp_path / "demo-http.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(DEMO), request.param, str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "DEMO_STATE": str(state)})
    try:
        import socket

        def up() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True

        wait_for(up, 30, "the demo MCP server", proc, log)
        yield request.param, f"http://127.0.0.1:{port}/" + ("mcp" if request.param == "http" else "sse")
    finally:
        proc.terminate()
        proc.wait(10)


# ---------------------------------------------------------------------------- risk and names


def test_risk_from_annotations():
    from mcp.types import ToolAnnotations as A

    assert risk_of(A(read_only_hint=True)) == (Risk.READ_ONLY, False)
    assert risk_of(A(read_only_hint=False, destructive_hint=False)) == (Risk.HOME, False)
    assert risk_of(A(read_only_hint=False, destructive_hint=True)) == (Risk.HOME, True)
    assert risk_of(A(read_only_hint=False)) == (Risk.HOME, True)  # destructive is the spec's default
    assert risk_of(None) == (Risk.HOME, True)  # no annotations (Home Assistant's server sends none): ask
    assert risk_of(A(read_only_hint=True, open_world_hint=True)) == (Risk.OFF_DEVICE, False)
    assert risk_of(None, "read_only") == (Risk.READ_ONLY, False)  # the config's word wins
    assert namespaced("demo", "Get-Weather") == "demo__get_weather"
    long = namespaced("srv", "x" * 100)
    assert len(long) == 64 and long != namespaced("srv", "x" * 99)


# ---------------------------------------------------------------------------- client over stdio


async def test_stdio_server_tools_are_registered_with_risk_and_called(config, state):
    cfg = _mcp_config(config, state, risk={"set_mode": "read_only"})
    asked: list[str] = []

    async def no(req) -> bool:
        asked.append(req.prompt)
        return False

    async def yes(req) -> bool:
        asked.append(req.prompt)
        return True

    reg = await ToolRegistry.create(cfg, EventBus(), confirm=no)
    try:
        assert reg.mcp.status()[0]["state"] == "connected", reg.mcp.status()
        tools = {n: t for n, t in reg.tools.items() if t.plugin == "mcp:demo"}
        assert set(tools) == {f"demo__{n}" for n in ("get_weather", "add_note", "delete_file", "set_mode", "web_lookup", "crash", "hang")}
        assert tools["demo__get_weather"].risk is Risk.READ_ONLY and not tools["demo__get_weather"].always_confirm
        assert tools["demo__delete_file"].always_confirm
        assert tools["demo__set_mode"].risk is Risk.READ_ONLY and not tools["demo__set_mode"].always_confirm  # the override
        assert tools["demo__web_lookup"].risk is Risk.OFF_DEVICE
        assert tools["demo__get_weather"].parameters["required"] == ["city"]

        out = await reg.call("demo__get_weather", {"city": "Paris"})
        assert out.ok and out.say == "It is sunny and 21 degrees in Paris."
        assert not asked

        bad = await reg.call("demo__get_weather", {"town": "Paris"})
        assert not bad.ok and "city" in bad.error  # checked against the server's schema before sending

        out = await reg.call("demo__delete_file", {"name": "taxes.pdf"})  # destructive: asks first; refused
        assert out.refused and asked and "delete or overwrite" in asked[-1]
        assert not [e for e in _events(state) if e["event"] == "delete_file"]
        out = await reg.call("demo__delete_file", {"name": "taxes.pdf"}, confirm=yes)
        assert out.ok and out.say == "Deleted taxes.pdf."
        assert [e["name"] for e in _events(state) if e["event"] == "delete_file"] == ["taxes.pdf"]
    finally:
        await reg.close()


async def test_a_hanging_and_a_crashing_server_are_survived(config, state):
    cfg = _mcp_config(config, state, timeout_s=1.5)
    reg = await ToolRegistry.create(cfg, EventBus())
    try:
        t0 = time.monotonic()
        out = await reg.call("demo__hang", {})
        assert not out.ok and "did not answer within 1.5 seconds" in out.error
        assert time.monotonic() - t0 < 5
        assert (await reg.call("demo__get_weather", {"city": "Rome"})).ok  # the hang took only that call

        first_pid = _events(state)[0]["pid"]
        out = await reg.call("demo__crash", {})
        assert not out.ok and "went away" in out.error
        out = await reg.call("demo__get_weather", {"city": "Oslo"})  # while it restarts: an error at once, not a wait
        assert not out.ok and "not reachable" in out.error
        link = reg.mcp.links["demo"]
        for _ in range(100):
            if link.state == "connected":
                break
            await asyncio.sleep(0.1)
        assert link.state == "connected" and link.reconnects == 1
        out = await reg.call("demo__get_weather", {"city": "Oslo"})
        assert out.ok, out.error
        starts = [e["pid"] for e in _events(state) if e["event"] == "start"]
        assert len(starts) == 2 and starts[0] == first_pid and starts[1] != first_pid  # a new server process
    finally:
        await reg.close()


async def test_a_hung_server_process_is_found_and_replaced(config, state, monkeypatch):
    """The whole server stops answering (SIGSTOP): calls time out, the periodic check notices, a new process takes over."""
    import signal

    from assistant.mcp.client import McpServerLink

    monkeypatch.setattr(McpServerLink, "check_every_s", 0.3)
    monkeypatch.setattr(McpServerLink, "check_timeout_s", 0.5)
    reg = await ToolRegistry.create(_mcp_config(config, state, timeout_s=1.0), EventBus())
    pid = _events(state)[0]["pid"]
    try:
        os.kill(pid, signal.SIGSTOP)
        out = await reg.call("demo__get_weather", {"city": "Rome"})  # the call's timeout or the check, whichever is first
        assert not out.ok and ("did not answer within 1 seconds" in out.error or "went away" in out.error), out.error
        assert out.duration_ms < 1500
        link = reg.mcp.links["demo"]
        for _ in range(150):
            if link.reconnects == 1 and link.state == "connected":
                break
            await asyncio.sleep(0.1)
        assert link.reconnects == 1 and link.state == "connected", reg.mcp.status()
        out = await reg.call("demo__get_weather", {"city": "Rome"})
        assert out.ok, out.error
        assert [e["pid"] for e in _events(state) if e["event"] == "start"][-1] != pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        await reg.close()


async def test_a_server_that_cannot_start_keeps_its_cached_tools_and_errors(config, state, tmp_path):
    cfg = _mcp_config(config, state)
    reg = await ToolRegistry.create(cfg, EventBus())  # first start: lists and caches the tools
    await reg.close()
    broken = cfg.with_overrides({"mcp.servers": [{"name": "demo", "command": [sys.executable, "-c", "import sys; sys.exit(2)"], "connect_timeout_s": 2}]})
    t0 = time.monotonic()
    reg = await ToolRegistry.create(broken, EventBus())
    try:
        assert time.monotonic() - t0 < 6  # the start does not wait on a dead server
        assert "demo__get_weather" in reg.tools  # from the cache
        out = await reg.call("demo__get_weather", {"city": "Paris"})
        assert not out.ok and "not reachable" in out.error
        assert reg.mcp.status()[0]["state"] == "reconnecting" and reg.mcp.status()[0]["error"]
    finally:
        await reg.close()


async def test_open_world_tools_follow_the_remote_policy_redaction_and_audit(config, state):
    cfg = _mcp_config(config, state)
    reg = await ToolRegistry.create(cfg, EventBus(), confirm=lambda req: asyncio.sleep(0, True))
    try:
        out = await reg.call("demo__web_lookup", {"query": "pizza"})  # remote.policy "never" by default
        assert not out.ok and "remote.policy" in out.error
        assert not [e for e in _events(state) if e["event"] == "web_lookup"]
    finally:
        await reg.close()
    cfg = cfg.with_overrides({"remote.policy": "ask", "remote.private_terms": ["Alice Smith"]})
    reg = await ToolRegistry.create(cfg, EventBus(), confirm=lambda req: asyncio.sleep(0, True))
    try:
        out = await reg.call("demo__web_lookup", {"query": "birthday cake for Alice Smith at 12 Oak Street, call 5551234567"})
        assert out.ok, out.error
        sent = [e["query"] for e in _events(state) if e["event"] == "web_lookup"][0]
        assert "Alice" not in sent and "Smith" not in sent and "5551234567" not in sent and "<PERSON_1>" in sent
        assert "Alice Smith" in out.say  # placeholders restored on the device
        audit = [json.loads(x) for x in (cfg.paths.resolved_data_dir() / "remote_audit.jsonl").read_text().splitlines()]
        assert [a["phase"] for a in audit] == ["sending", "done"] and audit[0]["endpoint"] == "mcp:demo"
        assert audit[0]["sent"] == {"query": sent}
    finally:
        await reg.close()


async def test_fast_path_templates_and_the_scripted_llm_call_mcp_tools(config, state):
    from assistant.app import build_controller
    from assistant.events import RouteDecided
    from assistant.pipeline import Pipeline

    cfg = _mcp_config(config.with_overrides({"llm.enabled": False}), state,
                      templates={"get_weather": ["what's the weather in {city}", "weather in {city}"]})
    bus = EventBus()
    events = bus.record()
    controller = await build_controller(cfg, bus)
    try:
        pipeline = Pipeline(cfg, None, responder=controller.router, bus=bus)
        reply = await pipeline.handle_text("what's the weather in Lisbon", speak=False)
        assert reply == "It is sunny and 21 degrees in Lisbon."
        assert [e.route for e in events if isinstance(e, RouteDecided)] == ["fast_path"]
        assert [e["city"] for e in _events(state) if e["event"] == "get_weather"] == ["Lisbon"]

        reg = controller.registry
        llm = ScriptedLLM([
            {"tool": "demo__add_note", "arguments": {"text": "buy milk"}},
            {"tool": "done", "arguments": {}},
        ])
        local = LocalController(llm, reg, bus, cfg.llm)
        pieces = [p async for p in local.respond("note that I need to buy milk", turn=1, conversation=Conversation())]
        assert "".join(p for p in pieces if isinstance(p, str)) == "Noted."
        assert [e.tool for e in events if isinstance(e, ToolCallStarted)] == ["demo__get_weather", "demo__add_note"]
        assert [e["text"] for e in _events(state) if e["event"] == "add_note"] == ["buy milk"]
        assert "demo__add_note" in llm.prompts[0]  # offered to the model like any tool
    finally:
        await controller.close()


async def test_http_servers_with_a_token(config, state, http_demo, monkeypatch):
    transport, url = http_demo
    monkeypatch.setenv("DEMO_TOKEN", "s3cret")
    cfg = config.with_overrides({"mcp.servers": [{"name": "web", "url": url, "transport": transport, "token_env": "DEMO_TOKEN",
                                                  "allow": ["get_weather", "delete_file"]}]})
    reg = await ToolRegistry.create(cfg, EventBus())
    try:
        assert reg.mcp.status()[0]["state"] == "connected", reg.mcp.status()
        assert {n for n, t in reg.tools.items() if t.plugin == "mcp:web"} == {"web__get_weather", "web__delete_file"}
        out = await reg.call("web__get_weather", {"city": "Bergen"})
        assert out.ok and "Bergen" in out.say
    finally:
        await reg.close()


def test_tools_list_shows_the_server_and_its_state(config, state, tmp_path):
    from assistant.config import save_config

    cfg = _mcp_config(config, state)
    path = save_config(cfg, tmp_path / "config.toml")
    r = subprocess.run([sys.executable, "-m", "assistant", "--config", str(path), "tools", "list"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "demo__get_weather" in r.stdout and "mcp:demo" in r.stdout
    assert "demo__delete_file" in r.stdout and "(asks first)" in r.stdout
    assert "MCP server demo (stdio:" in r.stdout and ": connected; 7 tools" in r.stdout
    r = subprocess.run([sys.executable, "-m", "assistant", "--config", str(path), "tools", "list", "--json"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    data = json.loads(r.stdout)
    assert data["mcp_servers"][0]["state"] == "connected"
    assert {t["name"]: t.get("server_state") for t in data["tools"]}["demo__hang"] == "connected"


# ---------------------------------------------------------------------------- the assistant as a server


async def test_sdk_client_uses_assistant_mcp_over_stdio(config, tmp_path):
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from assistant.config import save_config

    cfg = config.with_overrides({"llm.enabled": False})
    path = save_config(cfg, tmp_path / "config.toml")
    params = StdioServerParameters(command=sys.executable, args=["-m", "assistant", "--config", str(path), "mcp"], cwd=str(ROOT),
                                   env={"PYTHONPATH": str(ROOT)})
    with open(tmp_path / "stderr.log", "w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=60) as client:
            names = {t.name: t for t in (await client.list_tools()).tools}
            assert "ask" in names and "home_turn_on" in names and "clock_time" in names
            assert names["clock_time"].annotations.read_only_hint is True
            assert not any(n.startswith("demo__") for n in names)

            r = await client.call_tool("ask", {"text": "turn on the kitchen light"})
            assert not r.is_error and "kitchen" in r.content[0].text.lower()
            res = await client.read_resource("home://entities")
            entities = json.loads(res.contents[0].text)
            kitchen = [e for e in entities if e["id"] == "light.kitchen"]
            assert kitchen and kitchen[0]["state"] == "on"  # the ask changed the home the resource shows

            r = await client.call_tool("clock_time", {})
            assert not r.is_error and r.content[0].text

            r = await client.call_tool("ask", {"text": "unlock the front door"})  # needs a yes nobody can give here
            lock = [e for e in json.loads((await client.read_resource("home://entities")).contents[0].text) if e["id"].startswith("lock.")]
            assert lock and all(e["state"] == "locked" for e in lock), r.content[0].text


async def test_serve_mcp_over_http_needs_the_token(config, tmp_path):
    """`assistant serve --mcp` in a subprocess; the SDK's client with the token, raw requests without."""
    import httpx
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    from .test_service import Service

    port = free_port()
    svc = Service(config.with_overrides({"llm.enabled": False, "mcp.serve_port": port}), tmp_path, None, extra=("--mcp",))
    try:
        svc.wait_ready()
        url = f"http://127.0.0.1:{port}/mcp"
        from .test_service import _until

        ready = _until(lambda: [e for e in svc.logs() if e.get("msg") == "ready"], 60, "ready")
        assert ready[0]["mcp"] == url
        token = svc.headers["Authorization"].removeprefix("Bearer ")
        async with httpx.AsyncClient() as h:  # no token, a wrong token, a foreign Host: refused before MCP sees them
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            hdr = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
            r = await h.post(url, json=body, headers=hdr)
            assert r.status_code == 401 and "token" in r.json()["hint"]
            assert (await h.post(url, json=body, headers={**hdr, "Authorization": "Bearer nope"})).status_code == 401
            assert (await h.post(url, json=body, headers={**hdr, "Authorization": f"Bearer {token}", "Host": "evil.example"})).status_code == 421
            assert (await h.post(url, json=body, headers={**hdr, "Authorization": f"Bearer {token}", "Origin": "http://evil.example"})).status_code == 403
        async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
            async with Client(streamable_http_client(url, http_client=http), read_timeout_seconds=30) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                assert {"ask", "home_turn_off", "timer_start"} <= names
                r = await client.call_tool("ask", {"text": "turn off the kitchen light"})
                assert not r.is_error and "kitchen" in r.content[0].text.lower()
                r = await client.call_tool("no_such_tool", {})
                assert r.is_error and "no tool" in r.content[0].text
                rows = {e["id"]: e for e in json.loads((await client.read_resource("home://entities")).contents[0].text)}
                assert rows["light.kitchen"]["state"] == "off"
        calls = [e for e in svc.events() if e["type"] == "tool_call_finished"]
        assert calls and calls[-1]["tool"] == "home_turn_off" and calls[-1]["ok"]  # one event bus: the API sees MCP turns
    finally:
        assert svc.stop() == 0


async def test_the_tui_shows_the_mcp_tools_and_their_server(config, state, tmp_path):
    from assistant.session import SessionOptions
    from tui.app import JarvisApp

    cfg = _mcp_config(config.with_overrides({"llm.enabled": False}), state)
    app = JarvisApp(cfg, SessionOptions(voice=False, speak=False), config_path=tmp_path / "config.toml")
    async with app.run_test(size=(120, 36)) as pilot:
        await asyncio.wait_for(app.ready.wait(), 60)
        app.query_one("#right").active = "tab-tools"
        table = app.query_one("#tools")
        for _ in range(50):
            if table.row_count:
                break
            await pilot.pause(0.1)
        rows = {table.get_row_at(i)[0]: table.get_row_at(i) for i in range(table.row_count)}
        assert rows["demo__get_weather"][1:] == ["mcp:demo", "read_only", "connected"]
        assert rows["demo__delete_file"][2] == "home, asks"
        assert rows["clock_time"][1] == "clock" and rows["clock_time"][3] == ""
        assert set(rows) == {t["name"] for t in await app.session.tools()}
