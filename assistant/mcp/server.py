"""The assistant as an MCP server: its tools, an ``ask`` tool, and the home as resources.

* ``assistant mcp`` serves over stdio (a desktop MCP client starts it as a subprocess);
* ``assistant serve --mcp`` also serves Streamable HTTP at ``http://<service.host>:<mcp.serve_port>/mcp``,
  with the control API's checks: ``Authorization: Bearer <token>`` (the token in
  ``<data dir>/api-token`` or ``$ASSISTANT_API_TOKEN``), a ``Host`` naming this machine and no
  foreign ``Origin`` (DNS rebinding) — on loopback too, like the control API.

Tools offered: every tool of the assistant except those it took from MCP servers itself (no
loops), or ``mcp.expose_tools``, each with MCP annotations from its risk class; plus ``ask``,
which runs a request through the whole router (fast path, tolerant matcher, local LLM, remote
model) exactly as a typed request. A call that needs confirmation (unlocking, a destructive or
off-device tool) is asked **on the device by voice** when the assistant listens there (``serve``
with a microphone), and refused otherwise: an MCP client cannot say yes on the user's behalf.

Resources: ``home://entities`` (every device with its area, kind and state) and ``home://areas``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from ..config import Config
from ..engine.channels import TextChannel
from ..engine.speaker import Speaker
from ..engine.arbiter import Busy
from ..errors import AssistantError, MissingDependencyError
from ..toolkit.api import Risk, Tool
from ..toolkit.registry import ConfirmationRequest

__all__ = ["ASK_TOOL", "McpFrontend", "McpHttpService", "run_stdio"]

log = logging.getLogger(__name__)

ASK_TOOL = "ask"
MAX_ASK_CHARS = 2000
"""Longest request text ``ask`` accepts (the control API's limit)."""


def _require_sdk() -> Any:
    try:
        import mcp  # noqa: PLC0415
    except ImportError as exc:
        raise MissingDependencyError("the MCP server needs the MCP SDK", hint="pip install 'jarvis-assistant[mcp]'") from exc
    return mcp


def _annotations(tool: Tool) -> Any:
    from mcp.types import ToolAnnotations  # noqa: PLC0415

    return ToolAnnotations(
        title=tool.name.replace("_", " "),
        read_only_hint=tool.risk is Risk.READ_ONLY,
        destructive_hint=tool.risk is Risk.SECURITY or tool.always_confirm,
        open_world_hint=tool.risk is Risk.OFF_DEVICE,
    )


class McpFrontend:
    """The MCP server of one running :class:`~assistant.session.Session`.

    Args:
        session: A started session (its registry, router, home and, if any, its voice).
        origin: The conversation MCP requests belong to (kept apart from the device's own).
    """

    def __init__(self, session: Any, *, origin: str = "mcp") -> None:
        _require_sdk()
        from mcp.server import Server  # noqa: PLC0415

        self.session = session
        self.origin = origin
        self.config: Config = session.config
        self.server = Server(
            "jarvis-assistant", version="0.1.0",
            instructions="An on-device voice assistant. Use `ask` for anything said in words; its other tools act directly.",
            on_list_tools=self._list_tools, on_call_tool=self._call_tool,
            on_list_resources=self._list_resources, on_read_resource=self._read_resource,
        )
        self._channel: TextChannel | None = None

    # ------------------------------------------------------------------ tools

    def exposed(self) -> list[Tool]:
        """The assistant's tools MCP clients may call (not ``ask``)."""
        reg = self.session.controller.registry
        wanted = set(self.config.mcp.expose_tools)
        return [t for t in sorted(reg.tools.values(), key=lambda t: t.name)
                if not t.plugin.startswith("mcp:") and (not wanted or t.name in wanted)]

    async def _list_tools(self, ctx: Any, params: Any) -> Any:
        from mcp.types import ListToolsResult, ToolAnnotations  # noqa: PLC0415
        from mcp.types import Tool as McpTool  # noqa: PLC0415

        ask = McpTool(
            name=ASK_TOOL,
            description="Say something to the assistant, as if spoken to it: a home command, a timer, a question. "
                        "Returns its reply. Risky actions are confirmed by the user on the device, or refused.",
            input_schema={"type": "object", "properties": {"text": {"type": "string", "description": 'the request, e.g. "turn on the kitchen light"'}},
                          "required": ["text"]},
            annotations=ToolAnnotations(title="ask the assistant", read_only_hint=False, destructive_hint=False, open_world_hint=False),
        )
        tools = [ask] + [McpTool(name=t.name, description=t.description, input_schema=t.parameters, annotations=_annotations(t)) for t in self.exposed()]
        return ListToolsResult(tools=tools)

    async def _confirm_on_device(self, request: ConfirmationRequest) -> bool:
        """Ask the user by voice on the device when it listens; else nobody can say yes."""
        pipeline = self.session.pipeline
        if pipeline is None or not self.session.has_voice:
            return False
        return await pipeline.ask_yes_no(request.prompt)

    def _text_channel(self) -> TextChannel:
        if self._channel is None:
            self._channel = TextChannel(Speaker(None, None, self.session.bus, self.config.tts), confirm=self._confirm_on_device, voice=False)
        return self._channel

    async def _call_tool(self, ctx: Any, params: Any) -> Any:
        from mcp.types import CallToolResult, TextContent  # noqa: PLC0415

        def result(text: str, *, error: bool = False, data: Any = None) -> Any:
            return CallToolResult(content=[TextContent(text=text)], structured_content=data, is_error=error)

        args = dict(params.arguments or {})
        if params.name == ASK_TOOL:
            text = str(args.get("text", "")).strip()
            if not text:
                return result('`ask` needs {"text": "..."}, e.g. {"text": "turn on the kitchen light"}', error=True)
            if len(text) > MAX_ASK_CHARS:
                return result(f"the text is longer than {MAX_ASK_CHARS} characters", error=True)
            try:
                reply = await self.session.ask(text, origin=self.origin, channel=self._text_channel())
            except Busy as exc:
                return result(exc.message, error=True)
            except AssistantError as exc:
                return result(exc.message + (f" ({exc.hint})" if exc.hint else ""), error=True)
            return result(reply, data={"reply": reply})
        if params.name not in {t.name for t in self.exposed()}:
            return result(f"there is no tool called {params.name!r}; list the tools to see them", error=True)
        outcome = await self.session.controller.registry.call(params.name, args, confirm=self._confirm_on_device)
        if outcome.refused:
            return result(f"'{params.name}' needs the user's confirmation on the device, and it was not given "
                          "(the assistant asks by voice when it listens there).", error=True)
        if not outcome.ok:
            return result(outcome.error, error=True)
        return result(outcome.say, data={"result": outcome.result})

    # ------------------------------------------------------------------ resources

    async def _list_resources(self, ctx: Any, params: Any) -> Any:
        from mcp.types import ListResourcesResult, Resource  # noqa: PLC0415

        if self.session.home is None:
            return ListResourcesResult(resources=[])
        return ListResourcesResult(resources=[
            Resource(uri="home://entities", name="entities", title="The home's devices", mime_type="application/json",
                     description="Every device and sensor with its id, area, kind and state"),
            Resource(uri="home://areas", name="areas", title="The home's areas", mime_type="application/json",
                     description="Areas (rooms) and floors with their aliases"),
        ])

    async def _read_resource(self, ctx: Any, params: Any) -> Any:
        from mcp import MCPError  # noqa: PLC0415
        from mcp.types import INVALID_PARAMS, ReadResourceResult, TextResourceContents  # noqa: PLC0415

        home = self.session.home
        uri = str(params.uri)
        if home is None or uri not in ("home://entities", "home://areas"):
            raise MCPError(INVALID_PARAMS, f"no resource {uri!r}; list the resources to see them")
        snap = home.snapshot()
        if uri == "home://entities":
            from tools.home.tools import spoken_state  # noqa: PLC0415

            areas = {a.id: a.name for a in snap.areas}
            data: Any = [{"id": e.id, "name": e.name, "area": areas.get(e.area_id or ""), "kind": e.domain, "state": e.state,
                          "said": spoken_state(e)} for e in snap.entities]
        else:
            data = {"areas": [{"id": a.id, "name": a.name, "aliases": list(a.aliases)} for a in snap.areas],
                    "floors": [{"id": f.id, "name": f.name, "aliases": list(f.aliases)} for f in snap.floors]}
        return ReadResourceResult(contents=[TextResourceContents(uri=uri, mime_type="application/json", text=json.dumps(data, ensure_ascii=False))])


async def run_stdio(session: Any) -> None:
    """Serve MCP on this process's stdin/stdout until the client closes it (``assistant mcp``)."""
    from mcp.server.stdio import stdio_server  # noqa: PLC0415

    front = McpFrontend(session)
    async with stdio_server() as (read, write):
        await front.server.run(read, write, front.server.create_initialization_options())


class _Guard:
    """ASGI middleware: the control API's access checks (token, Host, Origin, Content-Type)."""

    def __init__(self, app: Any, access: Any) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.datastructures import Headers  # noqa: PLC0415
        from starlette.responses import JSONResponse  # noqa: PLC0415

        refused = self.access.check(scope["method"], scope["path"], Headers(scope=scope))
        if refused is not None:
            status, why = refused
            hint = "send Authorization: Bearer <token> (the token is in <data dir>/api-token)" if status == 401 else ""
            await JSONResponse({"error": why, "hint": hint}, status_code=status)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class McpHttpService:
    """``assistant serve --mcp``: MCP over Streamable HTTP beside the control API.

    Args:
        session: The running session.
        config: ``service.host``, ``mcp.serve_port`` and the control API's token settings.

    Raises:
        ConfigError: (on start) the token file cannot be created.
        AssistantError: (on start) the port is taken.
    """

    def __init__(self, session: Any, config: Config) -> None:
        _require_sdk()
        self.session = session
        self.config = config
        self.host = config.service.host
        self.port = config.mcp.serve_port
        self._server: Any = None
        self._task: asyncio.Task | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/mcp"

    async def start(self) -> None:
        import socket  # noqa: PLC0415

        import uvicorn  # noqa: PLC0415
        from mcp.server.transport_security import TransportSecuritySettings  # noqa: PLC0415

        from ..service.auth import AccessPolicy, ensure_token  # noqa: PLC0415

        front = McpFrontend(self.session)
        # Host and Origin are checked by the guard with the control API's own rules.
        app = front.server.streamable_http_app(streamable_http_path="/mcp", host=self.host,
                                               transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        guarded = _Guard(app, AccessPolicy(self.config, ensure_token(self.config)))
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise AssistantError(f"cannot serve MCP on {self.host}:{self.port}: {exc.strerror or exc}",
                                 hint="set [mcp] serve_port to a free port") from None
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(guarded, log_level="warning", lifespan="on", access_log=False))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="mcp-http")
        for _ in range(200):
            if self._server.started or self._task.done():
                break
            await asyncio.sleep(0.025)
        if self._task.done():
            self._task.result()  # raises what stopped it
        log.info("MCP server listening", extra={"url": self.url})

    async def close(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5.0)
