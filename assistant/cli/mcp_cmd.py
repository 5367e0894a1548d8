"""``assistant mcp``: the assistant as an MCP server over stdio, for desktop MCP clients.

A client's configuration starts it as a subprocess, e.g. ``{"command": "assistant", "args": ["mcp"]}``.
Logging goes to stderr (stdout is the protocol). See :mod:`assistant.mcp.server`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..config import Config
from ..errors import require
from ..session import Session, SessionOptions

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mcp", help="serve the assistant's tools, an `ask` tool and the home over MCP (stdio)")
    p.add_argument("--no-llm", action="store_true", help="templates only (no local LLM): starts faster, uses less memory")
    p.set_defaults(func=mcp_stdio)


async def mcp_stdio(args: argparse.Namespace, config: Config) -> int:
    require("mcp", "mcp", "the MCP server")
    from ..mcp.server import run_stdio  # noqa: PLC0415

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    if args.no_llm:
        config = config.with_overrides({"llm.enabled": False})
    # no microphone, no speaker: replies are text; what needs a yes is refused (nobody can be asked)
    session = Session(config, SessionOptions(voice=False, speak=False, degrade=True, notice=lambda t: print(t, file=sys.stderr)))
    await session.start()
    try:
        await run_stdio(session)
    finally:
        await session.close()
    return 0
