"""A real MCP server for the tests, written with the official SDK (``mcp.server.mcpserver.MCPServer``).

Tools: a read-only one, a non-destructive change, a destructive one, one without annotations,
one reaching the open world, one that kills the server process, one that hangs.

Run: ``python demo_server.py stdio``, ``python demo_server.py http PORT`` (Streamable HTTP at
``/mcp``) or ``python demo_server.py sse PORT`` (the older SSE transport at ``/sse``). State (what was
deleted, the mode) lives in the process and in ``$DEMO_STATE`` (a JSON file) when set, so a test can
see what a call did even after the server restarted.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("demo")
STATE_FILE = os.environ.get("DEMO_STATE", "")


def _record(event: str, **data) -> None:
    if STATE_FILE:
        with open(STATE_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps({"event": event, "pid": os.getpid(), **data}) + "\n")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def get_weather(city: str) -> str:
    """The weather in a city today."""
    _record("get_weather", city=city)
    return f"It is sunny and 21 degrees in {city}."


@server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))
def add_note(text: str) -> str:
    """Add a note to the demo notebook."""
    _record("add_note", text=text)
    return "Noted."


@server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
def delete_file(name: str) -> str:
    """Delete a file from the demo store."""
    _record("delete_file", name=name)
    return f"Deleted {name}."


@server.tool()
def set_mode(mode: str) -> str:
    """Set the demo device's mode."""
    _record("set_mode", mode=mode)
    return f"Mode set to {mode}."


@server.tool(annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True))
def web_lookup(query: str) -> str:
    """Look something up on the web."""
    _record("web_lookup", query=query)
    return f"Results for {query}."


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def crash() -> str:
    """Stop the server process at once (a crashing server)."""
    _record("crash")
    os._exit(3)


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
async def hang() -> str:
    """Never answer (a hanging tool)."""
    _record("hang")
    await asyncio.sleep(3600)
    return "late"


if __name__ == "__main__":
    _record("start")
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    elif len(sys.argv) > 2 and sys.argv[1] == "sse":
        server.run("sse", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
