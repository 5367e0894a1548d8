"""``assistant tools list | describe | call`` and ``assistant ask``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from ..app import build_controller, load_speech
from ..audio.io import WavSink
from ..bus import EventBus
from ..config import Config
from ..errors import AssistantError
from ..events import (
    ErrorEvent,
    Event,
    RemoteCall,
    RouteDecided,
    StageTiming,
    ToolCallFinished,
    ToolCallStarted,
    to_dict,
)
from ..pipeline import Pipeline
from ..toolkit.registry import ConfirmationRequest, ConfirmHook, ToolRegistry
from . import parse_key_value, warn

__all__ = ["register", "terminal_confirm"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="answer a typed request through the same router as voice")
    p.add_argument("text", help='the request, e.g. "turn on the living room lamp"')
    p.add_argument("--json", action="store_true", help="machine-readable output (one JSON object)")
    p.add_argument("--yes", action="store_true", help="confirm risky tool calls without asking")
    p.add_argument("--no-llm", action="store_true", help="fast path only (no local LLM)")
    p.add_argument("--output", "-o", metavar="FILE", help="also speak the reply into this WAV file")
    p.add_argument("--no-follow-up", action="store_true", help="do not read an answer when the reply asks something (\"which one?\")")
    p.set_defaults(func=ask)

    p = sub.add_parser("audit", help="what was sent off the device: the remote-call audit log")
    p.add_argument("--last", type=int, default=10, help="how many entries (default 10)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=audit)

    p = sub.add_parser("tools", help="list, describe or call tools")
    tsub = p.add_subparsers(dest="tools_command", metavar="ACTION", required=True)
    q = tsub.add_parser("list", help="the tools that are loaded, and plugins that failed")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=tools_list)
    q = tsub.add_parser("describe", help="a tool's description, risk, arguments (JSON schema) and templates")
    q.add_argument("name")
    q.set_defaults(func=tools_describe)
    q = tsub.add_parser("call", help="call a tool directly")
    q.add_argument("name")
    q.add_argument("--arg", "-a", action="append", default=[], metavar="KEY=VALUE", help="argument (value parsed as TOML, else a string)")
    q.add_argument("--yes", action="store_true", help="confirm without asking")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=tools_call)


def terminal_confirm(auto_yes: bool) -> ConfirmHook:
    """Confirmation on the terminal: a y/N prompt, or --yes."""

    async def confirm(req: ConfirmationRequest) -> bool:
        if auto_yes:
            return True
        if not sys.stdin.isatty():
            warn(f"'{req.tool.name}' needs confirmation ({req.risk.value}): {req.prompt} -- not confirmed; add --yes to allow it")
            return False
        answer = await asyncio.to_thread(input, f"{req.prompt} [y/N] ")
        return answer.strip().lower() in ("y", "yes")

    return confirm


async def _registry(config: Config, confirm: ConfirmHook | None = None) -> ToolRegistry:
    return await ToolRegistry.create(config, EventBus(), confirm=confirm)


async def tools_list(args: argparse.Namespace, config: Config) -> int:
    reg = await _registry(config)
    try:
        servers = reg.mcp.status() if reg.mcp is not None else []
        if args.json:
            tools = [{**t.summary(), **({"server_state": reg.mcp.state_of(t)} if reg.mcp is not None and t.plugin.startswith("mcp:") else {})}
                     for t in reg.tools.values()]
            print(json.dumps({"tools": tools, "mcp_servers": servers, "errors": reg.errors}, indent=2))
            return 0
        width = max((len(n) for n in reg.tools), default=10)
        pwidth = max((len(t.plugin) for t in reg.tools.values()), default=8)
        for t in sorted(reg.tools.values(), key=lambda t: (t.plugin, t.name)):
            templ = f" [{len(t.templates)} templates]" if t.templates else ""
            asks = " (asks first)" if t.always_confirm else ""
            print(f"{t.name:{width}s}  {t.risk.value:10s}  {t.plugin:{pwidth}s}  {t.description[:70]}{templ}{asks}")
        for s in servers:
            why = f": {s['error']}" if s["error"] else ""
            print(f"MCP server {s['server']} ({s['transport']}: {s['where']}): {s['state']}{why}; {s['tools']} tools")
        for err in reg.errors:
            print(f"error: {err}", file=sys.stderr)
        return 0
    finally:
        await reg.close()


async def tools_describe(args: argparse.Namespace, config: Config) -> int:
    reg = await _registry(config)
    try:
        t = reg.get(args.name)
        print(json.dumps({"name": t.name, "plugin": t.plugin, "risk": t.risk.value, "description": t.description,
                          "parameters": t.parameters, "templates": list(t.templates)}, indent=2, ensure_ascii=False))
        return 0
    finally:
        await reg.close()


async def tools_call(args: argparse.Namespace, config: Config) -> int:
    reg = await _registry(config, terminal_confirm(args.yes))
    try:
        reg.get(args.name)  # unknown tools fail with suggestions
        arguments = dict(parse_key_value(a, "--arg", 'name="Desk Lamp"') for a in args.arg)
        outcome = await reg.call(args.name, arguments)
        if args.json:
            print(json.dumps({"ok": outcome.ok, "result": outcome.result, "error": outcome.error, "say": outcome.say,
                              "refused": outcome.refused, "duration_ms": round(outcome.duration_ms, 2)}, ensure_ascii=False))
        else:
            print(json.dumps(outcome.result, indent=2, ensure_ascii=False) if outcome.ok else f"error: {outcome.error}")
            print(f"say: {outcome.say}")
        return 0 if outcome.ok else 1
    finally:
        await reg.close()


class _AskPrinter:
    def __init__(self) -> None:
        self.route: dict[str, Any] = {}
        self.calls: dict[str, dict[str, Any]] = {}
        self.timings: dict[str, float] = {}
        self.errors: list[str] = []
        self.remote: list[dict[str, Any]] = []

    def __call__(self, e: Event) -> None:
        if isinstance(e, RouteDecided):
            self.route = {"route": e.route, "reason": e.reason, "intent": e.intent}
        elif isinstance(e, ToolCallStarted):
            self.calls[e.call_id] = {"tool": e.tool, "arguments": e.arguments}
        elif isinstance(e, ToolCallFinished):
            self.calls.setdefault(e.call_id, {"tool": e.tool}).update(ok=e.ok, result=e.result, error=e.error, ms=e.duration_ms)
        elif isinstance(e, StageTiming):
            self.timings[e.stage] = self.timings.get(e.stage, 0.0) + e.ms
        elif isinstance(e, ErrorEvent):
            self.errors.append(f"{e.stage}: {e.message}")
        elif isinstance(e, RemoteCall):
            self.remote.append(to_dict(e))


async def ask(args: argparse.Namespace, config: Config) -> int:
    if not args.text.strip():
        raise AssistantError("nothing to ask: the request is empty", hint='e.g. assistant ask "what time is it"')
    bus = EventBus()
    printer = _AskPrinter()
    bus.subscribe(printer)
    controller = await build_controller(config, bus, confirm=terminal_confirm(args.yes), llm=not args.no_llm, notice=warn,
                                      background_llm=True)  # a template request does not wait for the LLM
    sink = None
    tts = None
    if args.output:
        tts = (await load_speech(config, wake=False, asr=False, notice=warn)).tts
        sink = WavSink(args.output, config.audio.output_sample_rate)
    try:
        pipeline = Pipeline(config, None, tts=tts, responder=controller.router, sink=sink, bus=bus)
        reply = await pipeline.handle_text(args.text, speak=sink is not None)
        for _ in range(2):  # "Which one: the reading lamp or the floor lamp?" — the answer completes the request
            if args.no_follow_up or not controller.router.expects_reply:
                break
            answer = await asyncio.to_thread(_read_answer, reply, args.json)
            if not answer:
                controller.router.forget_question()
                break
            reply = f"{reply} / {await pipeline.handle_text(answer, speak=sink is not None)}"
    finally:
        if sink is not None:
            await sink.close()
        await controller.close()
    calls = list(printer.calls.values())
    if args.json:
        print(json.dumps({"request": args.text, **printer.route, "tool_calls": calls, "reply": reply,
                          "timings_ms": {k: round(v, 2) for k, v in printer.timings.items()}, "errors": printer.errors,
                          "remote_calls": printer.remote}, ensure_ascii=False))
        return 0
    route = printer.route
    print(f"route:  {route.get('route', '?')} ({route.get('reason', '')})")
    for c in calls:
        shown = ", ".join(f"{k}={v!r}" for k, v in (c.get("arguments") or {}).items() if v not in (None, [], ""))
        status = "ok" if c.get("ok") else f"failed: {c.get('error')}"
        print(f"tool:   {c['tool']}({shown}) -> {status}")
        if c.get("ok") and c.get("result") is not None:
            print(f"result: {json.dumps(c['result'], ensure_ascii=False)[:300]}")
    print(f"reply:  {reply}")
    return 0


def _read_answer(question: str, quiet: bool) -> str:
    """The user's answer to a question the reply asked: typed at the terminal, or the next line of stdin."""
    if sys.stdin.isatty():
        try:
            return input(f"{question} > ").strip()
        except EOFError:
            return ""
    if not quiet:
        print(f"asked:  {question}")
    line = sys.stdin.readline()
    return line.strip()


def audit(args: argparse.Namespace, config: Config) -> int:
    from ..controller.remote import read_audit_log  # noqa: PLC0415

    path = config.paths.resolved_data_dir() / "remote_audit.jsonl"
    entries = read_audit_log(path, args.last)
    if args.json:
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return 0
    if not entries:
        print(f"nothing has left this device (no entries in {path})")
        return 0
    for e in entries:
        sent = e.get("sent", {})
        user = next((m.get("content") for m in sent.get("messages", []) if m.get("role") == "user"), "")
        tools = [t["function"]["name"] for t in sent.get("tools", [])]
        status = "ok" if e.get("ok") else f"FAILED ({e.get('error')})"
        print(f"{e.get('time')}  {e.get('endpoint')} ({e.get('privacy')}, {e.get('url')})  {status}")
        print(f"    sent: {user!r}" + (f" + tools {', '.join(tools)}" if tools else ""))
        if e.get("ok"):
            print(f"    tokens: {e.get('prompt_tokens', 0)} in, {e.get('completion_tokens', 0)} out")
    return 0
