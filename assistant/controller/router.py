"""The router: the cheapest tier that can answer does.

1. **Fast path** — sentence templates → one tool call, no LLM (:mod:`.fastpath`).
2. **Local LLM** — a quantised small model plans and calls tools with constrained JSON
   (:mod:`.local_llm`).
3. **Remote** — an OpenAI-compatible endpoint, only when the policy allows, with what leaves
   the device minimised and redacted (:mod:`.remote`).

Every request gets a :class:`~assistant.events.RouteDecided` event saying which tier answered and
why, and the reply streams out as text pieces (the pipeline speaks each sentence as it completes).
When no tier can serve a request, the assistant says so plainly.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, AsyncIterator

from ..bus import EventBus
from ..config import Config
from ..events import RouteDecided, StageTiming
from ..toolkit.registry import ConfirmHook, ToolRegistry
from .fastpath import FastPath
from .memory import Conversation

if TYPE_CHECKING:
    from .local_llm import LocalController
    from .remote import RemoteTier

__all__ = ["CANNOT_HELP", "Router"]

log = logging.getLogger(__name__)

CANNOT_HELP = "Sorry, I can't help with that. I can control your home, set timers, take notes and answer simple questions."

_ASK_REMOTE = re.compile(r"\b(ask (the )?(cloud|remote|big model|server)|use the (cloud|remote|big model))\b", re.I)


class Router:
    """Routes requests through the tiers.

    Args:
        config: Policies and limits.
        registry: The tools.
        bus: Event bus.
        fast_path: Template matcher (None = tier off).
        local: Local LLM controller (None = tier off).
        remote: Remote tier (None = tier off).
        confirm: Confirmation hook for risky tools (voice, TUI or CLI).
    """

    def __init__(
        self,
        config: Config,
        registry: ToolRegistry,
        bus: EventBus,
        *,
        fast_path: FastPath | None = None,
        local: "LocalController | None" = None,
        remote: "RemoteTier | None" = None,
        confirm: ConfirmHook | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.bus = bus
        self.fast_path = fast_path
        self.local = local
        self.remote = remote
        self.confirm = confirm
        self.conversation = Conversation(max_turns=config.llm.history_turns)

    def _route(self, route: str, reason: str, turn: int, intent: str = "") -> None:
        self.bus.emit(RouteDecided(route=route, reason=reason, intent=intent, turn=turn))

    async def respond(self, text: str, *, turn: int) -> AsyncIterator[str]:
        """Answer one request; yields reply text as it is produced."""
        t0 = time.perf_counter()
        wants_remote = bool(_ASK_REMOTE.search(text))
        if self.fast_path is not None and not wants_remote and not self.conversation.expects_follow_up(text):
            match = self.fast_path.match(text)
            self.bus.emit(StageTiming(stage="fast_path", ms=round((time.perf_counter() - t0) * 1000, 3), turn=turn))
            if match is not None:
                self._route("fast_path", f"template {match.intent} matched", turn, match.intent)
                if match.tool is None:
                    reply = "" if match.intent == "HassNevermind" else "I'm here."
                else:
                    outcome = await self.registry.call(match.tool, match.arguments, turn=turn, confirm=self.confirm)
                    reply = outcome.say
                    self.conversation.add_tool_call(match.tool, match.arguments, outcome.for_model())
                self.conversation.add(text, reply)
                if reply:
                    yield reply
                return
        if self.local is not None and not wants_remote:
            reason = "no template matched" if self.fast_path is not None else "fast path off"
            self._route("local_llm", reason, turn)
            result = None
            async for piece in self.local.respond(text, turn=turn, conversation=self.conversation, confirm=self.confirm):
                if isinstance(piece, str):
                    yield piece
                else:
                    result = piece
            if result is None or result.handled:
                return
            escalate_reason = result.reason
        else:
            escalate_reason = "the user asked for the remote model" if wants_remote else "no local tier could answer"
        if self.remote is not None and self.remote.available():
            async for piece in self.remote.respond(text, turn=turn, reason=escalate_reason, conversation=self.conversation, confirm=self.confirm):
                yield piece
            return
        why = escalate_reason if self.remote is None else self.remote.unavailable_reason()
        self._route("none", why, turn)
        reply = self._cannot_help(text, why)
        self.conversation.add(text, reply)
        yield reply

    def _cannot_help(self, text: str, why: str) -> str:
        if self.remote is not None and self.remote.policy == "never":
            return CANNOT_HELP
        if self.remote is not None and not self.remote.reachable():
            return "Sorry, I can't answer that on my own, and I can't reach the bigger model right now."
        return CANNOT_HELP
