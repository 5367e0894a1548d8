"""MCP client: the tools of every configured MCP server become the assistant's tools.

Each ``[[mcp.servers]]`` entry gets one :class:`McpServerLink`: a task that owns the connection
(a stdio subprocess, or Streamable HTTP / SSE with headers or a bearer token from the
environment), lists the server's tools, registers them in the :class:`ToolRegistry` as
``<server>__<tool>``, checks the server every :data:`CHECK_EVERY_S` seconds and reconnects with
exponential backoff (tenacity) when it dies or hangs. A call to a server that is down, dead or
hanging comes back as a tool error — never a stuck turn: every call has the server's
``timeout_s`` (the registry's per-tool timeout).

Risk for tools we did not write (:func:`risk_of`): MCP tools carry optional hints
(``readOnlyHint``, ``destructiveHint``, ``openWorldHint``); many servers, Home Assistant's among
them, send none. A read-only tool runs like our read-only tools; a tool that says it changes
things without destroying them is a ``home`` tool; a destructive or unannotated one asks first;
one that reaches the open world (``openWorldHint``) is an ``off_device`` tool and goes through the
remote policy (``remote.policy = "never"`` refuses it), the redaction of what leaves the device,
and the audit log (which fails closed). ``[mcp.servers.risk]`` overrides all of that per tool.
The hints are the server's word, not a guarantee (the MCP specification says so too): give a
server you do not trust explicit ``risk`` entries, or an ``allow`` list.

The last tool list of each server is kept in ``<data dir>/mcp/<server>.tools.json``, so a server
that is down at start still has its tools registered (they answer "not reachable" until it is back).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Literal, Optional

import pydantic
import tenacity

from ..config import Config, McpServerConfig
from ..errors import AssistantError, MissingDependencyError, ToolError
from ..toolkit.api import Risk, Tool

__all__ = ["CHECK_EVERY_S", "McpServerLink", "McpTools", "namespaced", "risk_of"]

log = logging.getLogger(__name__)

CHECK_EVERY_S = 15.0
"""How often a connection is checked by listing the server's tools again (MCP's ``ping`` is gone
from the 2026-07-28 protocol; a listing works in every version and also notices new or removed tools)."""
CHECK_TIMEOUT_S = 5.0
"""A check not answered within this counts the server as hung: the connection is dropped and remade."""
BACKOFF_MAX_S = 30.0
"""Longest wait between reconnection attempts (exponential from 0.5 s, with jitter)."""


def _require_sdk() -> Any:
    try:
        import mcp  # noqa: PLC0415
    except ImportError as exc:
        raise MissingDependencyError(
            "MCP servers are configured but the MCP SDK is not installed",
            hint="pip install 'jarvis-assistant[mcp]'",
        ) from exc
    return mcp


def namespaced(server: str, name: str) -> str:
    """The registry name of an MCP server's tool: ``<server>__<tool>``, lower-case, at most 64
    characters (a long name is cut and given a hash of the original, so it stays unique)."""
    base = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "tool"
    full = f"{server}__{base}"
    if len(full) > 64:
        full = full[:55] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return full


def risk_of(annotations: Any | None, override: str | None = None) -> tuple[Risk, bool]:
    """The risk class of an MCP tool, and whether it asks before every call.

    Args:
        annotations: The tool's ``ToolAnnotations`` (or None).
        override: ``[mcp.servers.risk]`` entry for the tool, which wins.

    Returns:
        ``(risk, always_confirm)``: read-only → (read_only, no); open world → (off_device, no —
        ``tools.confirm_risks`` and ``remote.policy`` decide); destructive, or not said to be
        read-only (no annotations) → (home, yes); changes things but says it is not destructive →
        (home, no).
    """
    if override:
        return Risk(override), False
    ro = getattr(annotations, "read_only_hint", None)
    destructive = getattr(annotations, "destructive_hint", None)
    open_world = getattr(annotations, "open_world_hint", None)
    if open_world is True:
        return Risk.OFF_DEVICE, False
    if ro is True:
        return Risk.READ_ONLY, False
    if ro is False and destructive is False:
        return Risk.HOME, False
    return Risk.HOME, True  # destructive (the spec's default when unsaid) or unannotated: ask first


# ---------------------------------------------------------------------- schemas and results

_SCALARS: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "array": list[Any], "object": dict[str, Any]}


def _annotation(prop: dict[str, Any]) -> Any:
    enum = prop.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in enum):
        return Literal[tuple(enum)]  # type: ignore[valid-type]
    kind = prop.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        inner = _SCALARS.get(kinds[0], Any) if len(kinds) == 1 else Any
        return Optional[inner] if "null" in kind else inner
    return _SCALARS.get(kind, Any) if isinstance(kind, str) else Any


def args_model(name: str, schema: dict[str, Any]) -> type[pydantic.BaseModel]:
    """A pydantic model of an MCP tool's ``inputSchema`` (top-level properties, their JSON types
    and enums, required or not); nested structure is left to the server to check. Unknown
    arguments are refused unless the schema allows additional properties."""
    props = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    fields: dict[str, Any] = {}
    for pname, prop in props.items():
        prop = prop if isinstance(prop, dict) else {}
        field_name = pname if pname.isidentifier() and not pname.startswith("_") else "f_" + re.sub(r"\W", "_", pname)
        default = ... if pname in required else prop.get("default", None)
        fields[field_name] = (_annotation(prop), pydantic.Field(default, alias=pname, description=prop.get("description")))
    extra = "allow" if schema.get("additionalProperties") not in (None, False) else "forbid"
    return pydantic.create_model(f"{name}_args", __config__=pydantic.ConfigDict(extra=extra, populate_by_name=True), **fields)


def _speakable(data: Any) -> str | None:
    """A short sentence for flat JSON results ({"city": "Paris", "temperature": 21} → "city Paris,
    temperature 21"); None for anything deeper (the LLM reads those)."""
    if isinstance(data, dict) and data and all(isinstance(v, (str, int, float, bool)) for v in data.values()):
        return ", ".join(f"{str(k).replace('_', ' ')} {v}" for k, v in data.items()) + "."
    return None


def result_value(result: Any) -> Any:
    """What a ``CallToolResult`` becomes for the router: ``{"say": text}`` for a text answer, with
    ``"data"`` when the tool returned structured content.

    Raises:
        ToolError: The tool reported an error (``isError``); its text is the message.
    """
    texts: list[str] = []
    for c in result.content:
        kind = getattr(c, "type", "")
        if kind == "text":
            texts.append(c.text)
        elif kind == "resource":
            texts.append(getattr(c.resource, "text", None) or f"[{c.resource.uri}]")
        elif kind == "resource_link":
            texts.append(f"[{c.name}: {c.uri}]")
        else:
            texts.append(f"[{kind} content]")
    text = "\n".join(t for t in texts if t).strip()
    if result.is_error:
        raise ToolError(text or "the tool reported an error without saying which")
    data = result.structured_content
    if data is None and text[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            data = json.loads(text)
    if data is None:
        return {"say": text or "Done."}
    plain = text and text[:1] not in ("{", "[")
    if plain and isinstance(data, dict) and list(data) == ["result"]:
        return {"say": text}  # the SDK's wrapping of a plain return value: the text says it all
    say = text if plain else _speakable(data)
    return {"data": data, **({"say": say} if say else {})}


# ---------------------------------------------------------------------- one server


class McpServerLink:
    """The connection to one MCP server, kept up in its own task.

    Args:
        config: The server's entry.
        data_dir: Where its tool-list cache and (stdio) its stderr log go (``<data dir>/mcp``).
        on_tools: Called with the server's tool list (``mcp.types.Tool``) after each (re)connection.

    Attributes:
        state: ``connecting``, ``connected`` or ``reconnecting``.
        error: Why the last attempt failed ("" when connected).
        reconnects: Connections made after the first.
    """

    check_every_s = CHECK_EVERY_S
    check_timeout_s = CHECK_TIMEOUT_S

    def __init__(self, config: McpServerConfig, data_dir: Path, on_tools) -> None:
        self.config = config
        self.data_dir = data_dir
        self.on_tools = on_tools
        self.state = "connecting"
        self.error = ""
        self.reconnects = 0
        self.client: Any | None = None
        self.ready = asyncio.Event()
        """Set once the first attempt succeeded or failed."""
        self._lost = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._connections = 0

    @property
    def where(self) -> str:
        c = self.config
        return " ".join(c.command) if c.command else c.url

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"mcp-{self.config.name}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self.client = None

    async def _run(self) -> None:
        while True:
            retrying = tenacity.AsyncRetrying(
                wait=tenacity.wait_exponential(multiplier=0.5, max=BACKOFF_MAX_S) + tenacity.wait_random(0, 0.5),
                retry=tenacity.retry_if_exception_type(Exception),
                before_sleep=self._failed,
            )
            async for attempt in retrying:
                with attempt:
                    await self._connect_once()
            # the connection was up and is lost: start again with a short wait
            self.state, self.client = "reconnecting", None
            await asyncio.sleep(0.5)

    def _failed(self, retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        self.error = _describe(exc)
        self.state, self.client = "reconnecting", None
        self.ready.set()
        log.warning("MCP server '%s' (%s): %s; retrying in %.1f s", self.config.name, self.where, self.error,
                    retry_state.next_action.sleep if retry_state.next_action else 0.0)

    async def _transport(self, stack: AsyncExitStack) -> Any:
        from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: PLC0415

        c = self.config
        kind = c.kind()
        if kind == "stdio":
            self.data_dir.mkdir(parents=True, exist_ok=True)
            errlog = stack.enter_context(open(self.data_dir / f"{c.name}.stderr.log", "a", encoding="utf-8"))
            params = StdioServerParameters(command=c.command[0], args=list(c.command[1:]), env=dict(c.env) or None, cwd=c.cwd)
            return stdio_client(params, errlog=errlog)
        headers = dict(c.headers)
        if c.token_env:
            token = os.environ.get(c.token_env, "")
            if not token:
                raise AssistantError(f"the environment variable {c.token_env} (the token of MCP server '{c.name}') is not set",
                                     hint=f"export {c.token_env}=… before starting the assistant")
            headers["Authorization"] = f"Bearer {token}"
        if kind == "sse":
            from mcp.client.sse import sse_client  # noqa: PLC0415

            return sse_client(c.url, headers=headers, timeout=c.connect_timeout_s)
        from mcp.client.streamable_http import streamable_http_client  # noqa: PLC0415
        from mcp.shared._httpx_utils import create_mcp_http_client  # noqa: PLC0415

        http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
        return streamable_http_client(c.url, http_client=http)

    async def _connect_once(self) -> None:
        import anyio  # noqa: PLC0415
        from mcp import Client  # noqa: PLC0415
        from mcp.types import Implementation  # noqa: PLC0415

        async with AsyncExitStack() as stack:
            transport = await self._transport(stack)
            # every request (the handshake too) has a read timeout; a hung server cannot stall the start
            client = Client(transport, client_info=Implementation(name="jarvis-assistant", version="0.1.0"),
                            read_timeout_seconds=max(self.config.connect_timeout_s, self.config.timeout_s))
            await stack.enter_async_context(client)  # not under a cancel scope: it opens a task group that outlives one
            with anyio.fail_after(self.config.connect_timeout_s):
                tools = await self._list_tools(client)
            self._connections += 1
            if self._connections > 1:
                self.reconnects += 1
            self.client, self.state, self.error = client, "connected", ""
            self._lost.clear()
            self.on_tools(self, tools)
            self.ready.set()
            log.info("MCP server '%s' connected (%s): %d tools", self.config.name, self.where, len(tools))
            await self._watch(client, tools)
            self.client, self.state = None, "reconnecting"

    @staticmethod
    async def _list_tools(client: Any, cache_mode: str = "use") -> list[Any]:
        tools: list[Any] = []
        cursor = None
        for _ in range(100):  # a paginator that never ends cannot hang the start
            page = await client.list_tools(cursor=cursor, cache_mode=cache_mode)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    async def _watch(self, client: Any, tools: list[Any]) -> None:
        """Return when the connection is lost: a failed call said so, or a check (a fresh tools/list)
        went unanswered. A listing that changed is applied to the registry."""
        import anyio  # noqa: PLC0415

        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), self.check_every_s)
                self.error = self.error or "the connection was lost"
                return
            except asyncio.TimeoutError:
                pass
            try:
                with anyio.fail_after(self.check_timeout_s):
                    fresh = await self._list_tools(client, cache_mode="bypass")
            except Exception as exc:  # noqa: BLE001 - dead or hung: drop the connection and make a new one
                self.error = f"no answer to a check ({_describe(exc)})"
                log.warning("MCP server '%s': %s; reconnecting", self.config.name, self.error)
                return
            if [t.model_dump() for t in fresh] != [t.model_dump() for t in tools]:
                tools = fresh
                self.on_tools(self, tools)

    def lost(self, why: str) -> None:
        """A call found the connection broken: reconnect."""
        self.error = why
        self.client, self.state = None, "reconnecting"
        self._lost.set()

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        """Call one of the server's tools by its own name.

        Raises:
            ToolError: The server is not connected, the call failed, or the tool reported an error.
        """
        from mcp import MCPError  # noqa: PLC0415
        from mcp.types import CONNECTION_CLOSED  # noqa: PLC0415

        client = self.client
        if client is None:
            raise ToolError(f"The {self.config.name} server is not reachable right now ({self.error or 'still connecting'}).")
        try:
            result = await client.call_tool(tool, arguments)
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:  # the server process died or the stream ended
                self.lost(exc.error.message)
                raise ToolError(f"The {self.config.name} server went away during the call ({exc.error.message}); it is being reconnected.") from None
            raise ToolError(f"The {self.config.name} server refused the call: {exc.error.message}") from None
        except Exception as exc:  # noqa: BLE001 - the connection broke under the call
            self.lost(_describe(exc))
            raise ToolError(f"The {self.config.name} server went away during the call ({_describe(exc)}); it is being reconnected.") from None
        return result_value(result)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    if isinstance(exc, AssistantError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---------------------------------------------------------------------- all servers


class McpTools:
    """Every configured MCP server, with their tools in a :class:`ToolRegistry`.

    Args:
        config: ``[mcp]`` (servers), ``[remote]`` (policy and redaction for open-world tools), paths.
        registry: Where the tools are registered (and unregistered when a server stops listing them).
    """

    def __init__(self, config: Config, registry: Any) -> None:
        self.config = config
        self.registry = registry
        self.dir = config.paths.resolved_data_dir() / "mcp"
        self.links: dict[str, McpServerLink] = {}
        self._registered: dict[str, set[str]] = {}

    async def start(self) -> None:
        """Start every server's connection and wait (at most each server's ``connect_timeout_s``)
        for the first attempts; a server that is not up by then gets its cached tools.

        Raises:
            MissingDependencyError: Servers are configured and the ``mcp`` package is missing.
        """
        if not self.config.mcp.servers:
            return
        _require_sdk()
        for sc in self.config.mcp.servers:
            link = McpServerLink(sc, self.dir, self._on_tools)
            self.links[sc.name] = link
            link.start()
        waits = [asyncio.wait_for(link.ready.wait(), link.config.connect_timeout_s + 1.0) for link in self.links.values()]
        await asyncio.gather(*waits, return_exceptions=True)
        for name, link in self.links.items():
            if link.state != "connected" and name not in self._registered:
                cached = self._cached(name)
                if cached:
                    self._on_tools(link, cached, cache=False)
                if link.state == "connecting":
                    link.error = link.error or f"not connected within {link.config.connect_timeout_s:g} s"

    async def close(self) -> None:
        await asyncio.gather(*(link.close() for link in self.links.values()), return_exceptions=True)

    def status(self) -> list[dict[str, Any]]:
        """One row per server: name, transport, where, state, error, tool count, reconnects."""
        return [
            {"server": n, "transport": link.config.kind(), "where": link.where, "state": link.state, "error": link.error,
             "tools": len(self._registered.get(n, ())), "reconnects": link.reconnects}
            for n, link in self.links.items()
        ]

    def state_of(self, tool: Tool) -> str:
        """The state of the server a tool came from ("" for tools not from MCP)."""
        link = self.links.get(tool.plugin.removeprefix("mcp:")) if tool.plugin.startswith("mcp:") else None
        return link.state if link else ""

    # ------------------------------------------------------------------ tool list

    def _cache_path(self, server: str) -> Path:
        return self.dir / f"{server}.tools.json"

    def _cached(self, server: str) -> list[Any]:
        from mcp.types import Tool as McpTool  # noqa: PLC0415

        try:
            raw = json.loads(self._cache_path(server).read_text(encoding="utf-8"))
            return [McpTool.model_validate(t) for t in raw]
        except (OSError, ValueError, pydantic.ValidationError):
            return []

    def _on_tools(self, link: McpServerLink, tools: list[Any], *, cache: bool = True) -> None:
        sc = link.config
        if cache:
            with contextlib.suppress(OSError):
                self.dir.mkdir(parents=True, exist_ok=True)
                self._cache_path(sc.name).write_text(json.dumps([t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]), encoding="utf-8")
        wanted: dict[str, Tool] = {}
        for t in tools:
            if (sc.allow and t.name not in sc.allow) or t.name in sc.block:
                continue
            try:
                tool = self._make_tool(link, t)
            except Exception as exc:  # noqa: BLE001 - one odd schema must not lose the others
                self.registry.errors.append(f"MCP server '{sc.name}': tool '{t.name}' skipped: {type(exc).__name__}: {exc}")
                continue
            wanted[tool.name] = tool
        for gone in self._registered.get(sc.name, set()) - set(wanted):
            self.registry.remove_tool(gone)
        registered = set()
        for name, tool in wanted.items():
            try:
                if self.registry.add_tool(tool):
                    registered.add(name)
            except TypeError as exc:
                self.registry.errors.append(f"MCP server '{sc.name}': {exc}")
        self._registered[sc.name] = registered

    def _make_tool(self, link: McpServerLink, t: Any) -> Tool:
        sc = link.config
        name = namespaced(sc.name, t.name)
        risk, ask = risk_of(t.annotations, sc.risk.get(t.name))
        schema = dict(t.input_schema or {})
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        description = (t.description or t.title or getattr(t.annotations, "title", None) or t.name.replace("_", " ")).strip()
        description = description.split("\n\n")[0].replace("\n", " ")[:1024]
        server_tool = t.name

        if risk is Risk.OFF_DEVICE:
            async def func(**arguments: Any) -> Any:
                return await self._call_off_device(link, server_tool, arguments)
        else:
            async def func(**arguments: Any) -> Any:
                return await link.call(server_tool, arguments)

        func.__name__ = name
        sayable = t.name.replace("_", " ")
        prompt = (f"The {sc.name} tool '{sayable}' may delete or overwrite things. Go ahead?" if getattr(t.annotations, "destructive_hint", None)
                  else f"The {sc.name} tool '{sayable}' does not say what it changes. Run it?")
        return Tool(
            name=name, description=description, parameters=schema, risk=risk, func=func, is_async=True,
            args_model=args_model(name, schema), templates=tuple(sc.templates.get(t.name, ())), timeout_s=sc.timeout_s,
            confirm_prompt=prompt if ask else None, plugin=f"mcp:{sc.name}",
            param_docs={k: str(v.get("description", "")) for k, v in schema["properties"].items() if isinstance(v, dict)},
            always_confirm=ask, omit_unset=True,
        )

    async def _call_off_device(self, link: McpServerLink, tool: str, arguments: dict[str, Any]) -> Any:
        """An open-world tool: the remote policy, redaction of what is sent, and the audit log."""
        from ..controller.remote import append_audit, audit_path, home_redactor  # noqa: PLC0415

        rc = self.config.remote
        if rc.policy == "never":
            raise ToolError(f"The {link.config.name} tool '{tool}' reaches off the device, and nothing may leave it (remote.policy is \"never\").",
                            hint='set [remote] policy = "ask" (or give the tool a lower risk in [mcp.servers.risk]) to use it')
        redactor = None if rc.redact == "never" else home_redactor(rc, self.registry.service("home"))
        sent = redactor.redact_value(arguments) if redactor else arguments
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "endpoint": f"mcp:{link.config.name}", "url": link.where, "tool": tool, "sent": sent}
        append_audit(audit_path(self.config), {**entry, "phase": "sending"}, required=True)  # no record, no sending
        try:
            value = await link.call(tool, sent)
        except ToolError as exc:
            append_audit(audit_path(self.config), {**entry, "phase": "failed", "error": exc.message})
            raise
        append_audit(audit_path(self.config), {**entry, "phase": "done"})
        return redactor.restore(value) if redactor else value
