"""The remote fallback tiers: OpenAI-compatible chat-completions endpoints, used only when needed.

Endpoints are tried in the configured order (a LAN server first, say, then a cloud service).
The policy decides whether anything may leave the device: ``never``, ``ask`` (the user confirms
each call through the same hook as risky tools) or ``allowed``.

What is sent is minimised and desensitised: a short system prompt, the request itself (no
history), and only the schemas of the few tools relevant to it, with personal data replaced by
placeholders (:mod:`.redact`) for cloud endpoints (or always/never, by ``remote.redact``).
Placeholders in the answer and in tool arguments are mapped back on the device. Every call is
appended to the audit log (``<data dir>/remote_audit.jsonl``: when, to whom, exactly what was
sent, tokens, outcome), which ``assistant audit`` prints.

Failing endpoints are handled with a per-request timeout, retries with exponential backoff
(tenacity) on network errors, 429 and 5xx answers, and a circuit breaker per endpoint that stops
trying a dead server for ``remote.breaker_cooldown_s`` after ``remote.breaker_failures``
consecutive failures, so an offline assistant keeps answering locally without waiting.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import tenacity

from ..bus import EventBus
from ..config import Config, RemoteConfig, RemoteEndpoint
from ..errors import AssistantError
from ..events import RemoteCall, RouteDecided, StageTiming
from ..toolkit.registry import ConfirmationRequest, ConfirmHook, ToolRegistry
from ..toolkit.api import Risk, Tool, tool_from_function
from .local_llm import ToolSelector
from .memory import Conversation
from .redact import Redactor

__all__ = ["CircuitBreaker", "RemoteTier", "append_audit", "audit_path", "home_redactor", "read_audit_log"]

log = logging.getLogger(__name__)

SYSTEM = (
    "You are the remote helper of a home voice assistant. Answer in one to three short spoken sentences. "
    "Use a tool when the request needs one. Placeholders such as <DEVICE_1> or <PERSON_1> stand for private "
    "names; use them as they are."
)


def minimise(outcome: Any) -> dict[str, Any]:
    """What a tool result may tell a remote model: whether it worked and the sentence it says,
    never the data behind it (entity states, attributes, file paths, list contents beyond the sentence)."""
    if outcome.ok:
        return {"ok": True, "result": outcome.say[:300]}
    return {"ok": False, "error": outcome.error[:300]}


class _Retry(Exception):
    pass


@dataclass
class CircuitBreaker:
    """Opens after ``failures`` consecutive failures; lets one try through after ``cooldown_s``."""

    failures: int
    cooldown_s: float
    consecutive: int = 0
    opened_at: float | None = None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        return time.monotonic() - self.opened_at >= self.cooldown_s  # half-open: one try

    def success(self) -> None:
        self.consecutive = 0
        self.opened_at = None

    def failure(self) -> None:
        self.consecutive += 1
        if self.consecutive >= self.failures:
            self.opened_at = time.monotonic()

    @property
    def open(self) -> bool:
        return not self.allow()


def ask_remote_model() -> None:
    """Send the request to a remote model (what a remote-policy confirmation is about)."""


def read_audit_log(path: Path, last: int = 20) -> list[dict[str, Any]]:
    """The last requests in the audit log. Each request is written before it is sent
    (``"phase": "sending"``) and again with its outcome; a "sending" entry with no outcome after it
    (the process died mid-request) is shown as it is."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    out = []
    for i, e in enumerate(entries):
        nxt = entries[i + 1] if i + 1 < len(entries) else None
        if e.get("phase") == "sending" and nxt is not None and nxt.get("phase") != "sending" and nxt.get("sent") == e.get("sent"):
            continue
        out.append(e)
    return out[-last:]


def home_redactor(rc: RemoteConfig, home: Any | None) -> Redactor:
    """A :class:`Redactor` for what leaves the device: the home's device, area, floor and people
    names and entity ids, plus ``remote.private_terms``."""
    devices: list[str] = []
    areas: list[str] = []
    ids: list[str] = []
    people = list(rc.private_terms)
    if home is not None:
        snap = home.snapshot()
        for e in snap.entities:
            ids.append(e.id)
            (people if e.domain == "person" else devices).extend(e.names())
        areas = [n for a in snap.areas for n in (a.name, *a.aliases)] + [n for f in snap.floors for n in (f.name, *f.aliases)]
    return Redactor(devices=devices, areas=areas, entity_ids=ids, people=people)


def audit_path(config: Config) -> Path:
    """The audit log of everything sent off the device (``<data dir>/remote_audit.jsonl``)."""
    return config.paths.resolved_data_dir() / "remote_audit.jsonl"


def append_audit(path: Path, entry: dict[str, Any], *, required: bool = False) -> None:
    """Append an entry to the audit log (one JSON object per line, fsynced). ``required``: the entry
    records what is about to be sent; if it cannot be written, nothing is sent (the log fails closed).

    Raises:
        AssistantError: ``required`` and the log cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        log.error("cannot write the remote audit log %s: %s", path, exc)
        if required:
            raise AssistantError(f"the audit log {path} cannot be written ({exc.strerror or exc}); nothing was sent",
                                 hint="free some disk space or fix the data folder's permissions") from None


class RemoteTier:
    """The remote endpoints with policy, minimisation, redaction, audit, retries and breakers.

    Args:
        config: Policy, endpoints, redaction.
        registry: Tools (the remote model may call them; confirmation as usual).
        bus: Event bus.
        transport: Optional httpx transport (tests inject network faults at this boundary).
    """

    def __init__(self, config: Config, registry: ToolRegistry, bus: EventBus, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.rc = config.remote
        self.policy = self.rc.policy
        self.registry = registry
        self.bus = bus
        self.breakers = {e.name: CircuitBreaker(self.rc.breaker_failures, self.rc.breaker_cooldown_s) for e in self.rc.endpoints}
        self.audit_path = audit_path(config)
        self._client = httpx.AsyncClient(transport=transport, follow_redirects=False)
        self._last_error = ""

    async def close(self) -> None:
        await self._client.aclose()

    # ------------------------------------------------------------------ availability

    def available(self) -> bool:
        return self.policy != "never" and any(self.breakers[e.name].allow() for e in self.rc.endpoints)

    def reachable(self) -> bool:
        return any(self.breakers[e.name].allow() for e in self.rc.endpoints)

    def unavailable_reason(self) -> str:
        if self.policy == "never":
            return "remote policy is 'never'"
        if not self.rc.endpoints:
            return "no remote endpoints configured"
        return "every remote endpoint is failing" + (f" ({self._last_error})" if self._last_error else "")

    # ------------------------------------------------------------------ a request

    def _redactor(self, endpoint: RemoteEndpoint) -> Redactor | None:
        mode = self.rc.redact
        if mode == "never" or (mode == "cloud" and endpoint.privacy == "lan"):
            return None
        return home_redactor(self.rc, self.registry.service("home"))

    def _tools_for(self, text: str) -> list[Tool]:
        if self.rc.max_tools == 0 or not self.registry.tools:
            return []
        selector = ToolSelector(sorted(self.registry.tools.values(), key=lambda t: t.name))
        return selector.select(text, self.rc.max_tools)

    def _audit(self, entry: dict[str, Any], *, required: bool = False) -> None:
        append_audit(self.audit_path, entry, required=required)

    async def _ask_user(self, endpoint: RemoteEndpoint, confirm: ConfirmHook | None) -> bool:
        if self.policy == "allowed":
            return True
        if confirm is None:
            return False

        tool = tool_from_function(ask_remote_model)
        where = "a computer on your network" if endpoint.privacy == "lan" else "a cloud service"
        prompt = f"I can't answer that on the device. Ask {endpoint.name}, {where}? Your request will leave this device."
        return await confirm(ConfirmationRequest(call_id="remote", tool=tool, arguments={}, risk=Risk.OFF_DEVICE, prompt=prompt))

    async def _post(self, endpoint: RemoteEndpoint, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if endpoint.api_key_env:
            key = os.environ.get(endpoint.api_key_env, "")
            if not key:
                raise RuntimeError(f"API key ${endpoint.api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        url = endpoint.base_url.rstrip("/") + "/chat/completions"

        async def once() -> dict[str, Any]:
            try:
                r = await self._client.post(url, json=body, headers=headers, timeout=endpoint.timeout_s)
            except httpx.TimeoutException as exc:
                raise _Retry(f"timed out after {endpoint.timeout_s:g} s") from exc
            except httpx.TransportError as exc:
                raise _Retry(f"cannot connect: {exc}") from exc
            if r.status_code == 429 or r.status_code >= 500:
                raise _Retry(f"HTTP {r.status_code}")
            if r.status_code >= 400:
                raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
            try:
                return r.json()
            except ValueError:
                raise RuntimeError("the answer is not JSON") from None

        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(endpoint.retries + 1),
            wait=tenacity.wait_exponential(multiplier=0.2, max=2.0),
            retry=tenacity.retry_if_exception_type(_Retry),
            reraise=True,
        )
        return await retrying(once)

    async def complete(self, prompt: str, *, reason: str, confirm: ConfirmHook | None = None) -> str:
        """For a tool that needs a bigger model (summarising, drafting): the same policy,
        confirmation, redaction, audit and fallbacks as a request; no tools are offered.

        Returns:
            The remote model's text ("" when the policy forbids it or every endpoint failed).
        """
        if not self.available():
            return ""
        for endpoint in self.rc.endpoints:
            if not self.breakers[endpoint.name].allow():
                continue
            if not await self._ask_user(endpoint, confirm):
                return ""
            red = self._redactor(endpoint)
            text = red.redact(prompt) if red else prompt
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
            try:
                reply = await self._converse(endpoint, messages, [], red.restore if red else (lambda v: v),
                                             red.redact_value if red else (lambda v: v), 0, confirm, Conversation())
            except AssistantError:
                return ""  # the audit log cannot be written: nothing leaves the device
            except Exception as exc:  # noqa: BLE001
                self.breakers[endpoint.name].failure()
                self._last_error = f"{endpoint.name}: {exc}"
                continue
            self.breakers[endpoint.name].success()
            log.info("remote completion for a tool (%s) from %s", reason, endpoint.name)
            return reply
        return ""

    async def respond(
        self,
        text: str,
        *,
        turn: int,
        reason: str,
        conversation: Conversation,
        confirm: ConfirmHook | None = None,
    ) -> AsyncIterator[str]:
        """Ask the first endpoint that works; yields the reply (restored) or an honest failure."""
        tools = self._tools_for(text)
        for endpoint in self.rc.endpoints:
            breaker = self.breakers[endpoint.name]
            if not breaker.allow():
                continue
            if not await self._ask_user(endpoint, confirm):
                self.bus.emit(RouteDecided(route="none", reason=f"{reason}; the user declined sending it to {endpoint.name}", turn=turn))
                reply = "OK, I'll keep that on the device. Sorry I can't answer it here."
                conversation.add(text, reply)
                yield reply
                return
            self.bus.emit(RouteDecided(route="remote", reason=f"{reason}; asking {endpoint.name} ({endpoint.privacy})", turn=turn))
            red = self._redactor(endpoint)
            redact = red.redact if red else (lambda s: s)
            redact_value = red.redact_value if red else (lambda v: v)
            restore = red.restore if red else (lambda v: v)
            schemas = [redact_value(t.openai_schema()) for t in tools]
            choices: dict[str, dict[str, list[str]]] = {}
            for t in tools:
                provider = getattr(getattr(t.func, "__self__", None), "argument_choices", None)
                if callable(provider):
                    choices[t.name] = provider(t.name)
            for schema in schemas:
                props = schema["function"]["parameters"].get("properties", {})
                for pname, values in choices.get(schema["function"]["name"], {}).items():
                    if pname in props and pname in ("name", "area", "floor"):
                        props[pname]["description"] = (props[pname].get("description") or "") + " One of: " + ", ".join(redact_value(values)[:40])
            messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": redact(text)}]
            try:
                reply = await self._converse(endpoint, messages, schemas, restore, redact_value, turn, confirm, conversation)
            except AssistantError as exc:  # the audit log cannot be written: nothing leaves the device
                self.bus.emit(RouteDecided(route="none", reason=f"{reason}; {exc.message}", turn=turn))
                reply = "Sorry, I can't send that off the device right now: I can't keep a record of it. " + (exc.hint[:1].upper() + exc.hint[1:] + "." if exc.hint else "")
                conversation.add(text, reply)
                yield reply
                return
            except Exception as exc:  # noqa: BLE001 - next endpoint, or the honest answer below
                breaker.failure()
                self._last_error = f"{endpoint.name}: {exc}"
                log.warning("remote endpoint %s failed: %s", endpoint.name, exc)
                continue
            breaker.success()
            conversation.add(text, reply)
            if reply:
                yield reply
            return
        self.bus.emit(RouteDecided(route="none", reason=f"{reason}; {self.unavailable_reason()}", turn=turn))
        reply = "Sorry, I can't answer that on my own, and I can't reach the bigger model right now."
        conversation.add(text, reply)
        yield reply

    async def _converse(self, endpoint: RemoteEndpoint, messages: list[dict[str, Any]], schemas: list[dict[str, Any]], restore, redact_value, turn: int,
                        confirm: ConfirmHook | None, conversation: Conversation) -> str:
        spoken: list[str] = []
        for _round in range(self.config.llm.max_steps + 1):
            body: dict[str, Any] = {"model": endpoint.model, "messages": messages, "max_tokens": self.rc.max_tokens, "temperature": 0.3}
            if schemas:
                body["tools"] = schemas
                body["tool_choice"] = "auto"
            t0 = time.perf_counter()
            entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "endpoint": endpoint.name, "url": endpoint.base_url,
                     "privacy": endpoint.privacy, "sent": body}
            self._audit({**entry, "phase": "sending"}, required=True)  # no record, no sending
            try:
                data = await self._post(endpoint, body)
            except Exception as exc:
                entry.update(ok=False, error=str(exc))
                self._audit(entry)
                self.bus.emit(RemoteCall(endpoint=endpoint.name, url=endpoint.base_url, ok=False, error=str(exc), turn=turn))
                raise
            usage = data.get("usage") or {}
            entry.update(ok=True, prompt_tokens=usage.get("prompt_tokens", 0), completion_tokens=usage.get("completion_tokens", 0),
                         received=data.get("choices", [{}])[0].get("message"))
            self._audit(entry)
            self.bus.emit(RemoteCall(endpoint=endpoint.name, url=endpoint.base_url, ok=True, prompt_tokens=int(usage.get("prompt_tokens", 0)),
                                     completion_tokens=int(usage.get("completion_tokens", 0)), turn=turn))
            self.bus.emit(StageTiming(stage="remote", ms=round((time.perf_counter() - t0) * 1000, 2), turn=turn, detail=endpoint.name))
            try:
                message = data["choices"][0]["message"]
            except (KeyError, IndexError, TypeError):
                raise RuntimeError("the answer has no choices[0].message") from None
            calls = message.get("tool_calls") or []
            if not calls:
                text = restore((message.get("content") or "").strip())
                return " ".join(spoken + ([text] if text else []))
            messages.append({"role": "assistant", "content": message.get("content") or "", "tool_calls": calls})
            offered = {sch["function"]["name"] for sch in schemas}
            for call in calls:
                fn = call.get("function", {})
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except ValueError:
                    args = {}
                name = fn.get("name", "")
                if name not in offered:  # only the tools sent with this request may run
                    log.warning("the remote model called %r, which it was not offered; refused", name)
                    result: dict[str, Any] = {"ok": False, "error": f"there is no tool called {name}"}
                else:
                    outcome = await self.registry.call(name, restore(args) if isinstance(args, dict) else {}, turn=turn, confirm=confirm)
                    conversation.add_tool_call(name, outcome.arguments, outcome.for_model())
                    if outcome.ok and outcome.say:
                        spoken.append(outcome.say)
                    result = redact_value(minimise(outcome))  # tool results leave the device too: the sentence, not the data
                messages.append({"role": "tool", "tool_call_id": call.get("id", name), "content": json.dumps(result)})
        return " ".join(spoken) or "I couldn't finish that."
