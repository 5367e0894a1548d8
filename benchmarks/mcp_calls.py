"""MCP tool calls: what a tool costs through an MCP server compared with an in-process plugin.

Measured through ``ToolRegistry.call`` (validation, events, timeout included), from the call to
the outcome, on the SDK-written demo server of the tests (``tests/mcp_servers/demo_server.py``):

* ``plugin``: the built-in ``clock_time`` (a sync plugin tool, run in the registry's thread pool);
* ``mcp_stdio``: ``demo__get_weather`` over stdio (a subprocess);
* ``mcp_http``: the same tool over Streamable HTTP on loopback.

Also: session start with one stdio server (spawn, handshake, tools/list), and how long a crashed
stdio server takes to be back (from the call that killed it to the next successful call).
The first ``warmup`` calls of each are dropped.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from .suite import ROOT, _free_port, stats

DEMO = ROOT / "tests" / "mcp_servers" / "demo_server.py"



async def _calls(reg: Any, name: str, args: dict, n: int, warmup: int) -> dict[str, float]:
    out = []
    for i in range(n + warmup):
        t = time.perf_counter()
        o = await reg.call(name, args)
        if not o.ok:
            raise RuntimeError(f"{name}: {o.error}")
        if i >= warmup:
            out.append((time.perf_counter() - t) * 1000)
    return stats(out)


async def _run(config: Any, quick: bool) -> dict[str, Any]:
    from assistant.bus import EventBus
    from assistant.toolkit.registry import ToolRegistry

    n, warmup = (20, 5) if quick else (200, 20)
    data = tempfile.mkdtemp(prefix="bench-mcp-")
    port = _free_port()
    http = subprocess.Popen([sys.executable, str(DEMO), "http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        servers = [{"name": "demo", "command": [sys.executable, str(DEMO), "stdio"]}]
        cfg = config.with_overrides({"paths.data_dir": data, "mcp.servers": servers})
        starts = []
        for _ in range(2 if quick else 5):
            t = time.perf_counter()
            reg = await ToolRegistry.create(cfg, EventBus())
            starts.append((time.perf_counter() - t) * 1000)
            await reg.close()
        for _ in range(100):  # wait for the HTTP server
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                await asyncio.sleep(0.1)
        servers.append({"name": "web", "url": f"http://127.0.0.1:{port}/mcp"})
        reg = await ToolRegistry.create(config.with_overrides({"paths.data_dir": data, "mcp.servers": servers}), EventBus())
        try:
            res = {
                "plugin_ms": await _calls(reg, "clock_time", {}, n, warmup),
                "mcp_stdio_ms": await _calls(reg, "demo__get_weather", {"city": "Paris"}, n, warmup),
                "mcp_http_ms": await _calls(reg, "web__get_weather", {"city": "Paris"}, n, warmup),
                "start_one_stdio_server_ms": stats(starts),
            }
            t = time.perf_counter()
            await reg.call("demo__crash", {})
            while not (await reg.call("demo__get_weather", {"city": "Oslo"})).ok:
                await asyncio.sleep(0.05)
                if time.perf_counter() - t > 60:
                    break
            res["crash_to_next_ok_call_ms"] = round((time.perf_counter() - t) * 1000, 1)
            return res
        finally:
            await reg.close()
    finally:
        http.terminate()
        http.wait(10)


def evaluate(config: Any, quick: bool) -> dict[str, Any]:
    return asyncio.run(_run(config, quick))
