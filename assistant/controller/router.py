"""The router: the cheapest tier that can answer does.

0. **An answer to a question the assistant asked** ("Which one: the reading lamp or the floor
   lamp?" — "the floor lamp") completes the call that asked it (:mod:`.clarify`).
1. **Fast path** — sentence templates → one tool call, no LLM (:mod:`.fastpath`).
2. **Tolerant tier** — requests as people say them (other words, other order, filler, indirect
   requests, the recogniser's slips in names) → tool calls, in milliseconds and with no LLM
   (:mod:`.tolerant`).
3. **Local LLM** — a quantised small model plans and calls tools with constrained JSON
   (:mod:`.local_llm`).
4. **Remote** — an OpenAI-compatible endpoint, only when the policy allows, with what leaves
   the device minimised and redacted (:mod:`.remote`).

Every request gets a :class:`~assistant.events.RouteDecided` event saying which tier answered and
why, and the reply streams out as text pieces (the pipeline speaks each sentence as it completes).
When no tier can serve a request, the assistant says so plainly.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator

from ..bus import EventBus
from ..engine.context import current as current_turn
from ..config import Config
from ..events import RouteDecided, StageTiming
from ..toolkit.registry import ConfirmHook, ToolOutcome, ToolRegistry
from .clarify import PendingQuestion, choose, is_cancel
from .fastpath import FastPath, refine_home_arguments
from .followup import resolve_follow_up
from .memory import Conversation

if TYPE_CHECKING:
    from .local_llm import LocalController
    from .remote import RemoteTier
    from .tolerant import TolerantMatcher

__all__ = ["CANNOT_HELP", "Router"]

log = logging.getLogger(__name__)

LOADING_NOTICE = "One moment, I'm still loading my language model. "
"""Said first when a request needs the local LLM while it is still loading in the background."""
CANNOT_HELP = "Sorry, I can't help with that. I can control your home, set timers, take notes and answer simple questions."

_HELP = re.compile(
    r"^(?:(?:hey |ok |okay )?\w+,? )?(?:so |and |please )?(?:what (?:can|could|do) you (?:do|help (?:me )?with)|what are you able to do|"
    r"what (?:can|should) i (?:say|ask(?: you)?)|what are your (?:skills|abilities|commands)|how can you help(?: me)?|help(?: me)?|"
    r"what do you know how to do)(?: for me)?(?: please)?[?.!]*$", re.I)
"""Asking what the assistant can do (answered from the tools it has, never "Sorry")."""

_CAPABILITIES: tuple[tuple[str, str], ...] = (
    ("home_turn_on", "switch and dim your lights, open covers, lock doors and run the other devices in your home, and tell you their state"),
    ("timer_start", "set timers and alarms"),
    ("list_add", "keep your shopping and to-do lists"),
    ("note_add", "take notes"),
    ("clock_time", "tell the time and date"),
    ("calculate", "do sums and convert units"),
    ("weather_now", "tell you the weather"),
    ("web_search", "look things up on the web"),
    ("search_documents", "search your documents"),
)


def capabilities_reply(tools: set[str]) -> str:
    """What the assistant can do, from the tools it has now (plugins off or blocked are not offered)."""
    have = [what for tool, what in _CAPABILITIES if tool in tools]
    servers = sorted({t.split("__", 1)[0] for t in tools if "__" in t})
    if servers:
        have.append("use " + ", ".join(servers))
    if not have:
        return "I can answer simple questions."
    listed = have[0] if len(have) == 1 else f"{'; '.join(have[:-1])}; and {have[-1]}"
    example = ' For example, say "turn on the kitchen light" or "set a timer for five minutes".' if "home_turn_on" in tools else ""
    return f"I can {listed}.{example}"


_ASK_REMOTE = re.compile(r"\b(ask (the )?(cloud|remote|big model|server)|use the (cloud|remote|big model))\b", re.I)


@dataclass
class _OriginState:
    conversation: Conversation
    pending: PendingQuestion | None = None


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
        tolerant: "TolerantMatcher | None" = None,
        local: "LocalController | None" = None,
        remote: "RemoteTier | None" = None,
        confirm: ConfirmHook | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.bus = bus
        self.fast_path = fast_path
        self.tolerant = tolerant
        self.local = local
        self.remote = remote
        self.confirm = confirm
        self._origins: dict[str, _OriginState] = {}
        self._answered = False
        self._prepared: tuple[str, str] | None = None
        """(origin, text) of the request :meth:`prepare` started the local LLM on."""
        self.local_loading: "asyncio.Task[LocalController | None] | None" = None
        """The local LLM still loading in the background (``build_controller(background_llm=True)``)."""

    # ------------------------------------------------------------------ per-origin state

    def _origin(self) -> "_OriginState":
        key = current_turn().origin
        state = self._origins.get(key)
        if state is None:
            state = self._origins[key] = _OriginState(Conversation(max_turns=self.config.llm.history_turns))
        return state

    @property
    def conversation(self) -> Conversation:
        """The conversation of the current turn's origin (the device's own outside a turn): a
        satellite in the kitchen has its own follow-ups, and the API caller its own."""
        return self._origin().conversation

    @property
    def pending(self) -> PendingQuestion | None:
        """The question the assistant asked the current origin and is waiting to hear answered."""
        return self._origin().pending

    @pending.setter
    def pending(self, question: PendingQuestion | None) -> None:
        self._origin().pending = question

    def _confirm(self) -> ConfirmHook | None:
        """Where to ask for confirmation: the origin's own channel, else the default hook."""
        return current_turn().confirm or self.confirm

    @property
    def expects_reply(self) -> bool:
        """The last reply asked the user something (the voice loop listens without the wake word)."""
        return self.pending is not None

    def forget_question(self) -> None:
        """Drop the question waiting for an answer."""
        self.pending = None

    def _route(self, route: str, reason: str, turn: int, intent: str = "") -> None:
        self.bus.emit(RouteDecided(route=route, reason=reason, intent=intent, turn=turn))

    def prepare(self, text: str) -> bool:
        """Start the local LLM on ``text`` before the request is final (preemptive generation).

        The voice loop calls this at a pause, as soon as the transcript so far is known and its
        words do not settle the turn (:class:`~assistant.engine.endofturn.EndOfTurn`): if nothing below the LLM
        understands it and the LLM would be asked (no question pending, not a request for the
        remote model), the first step's generation starts now (:meth:`LocalController.speculate`),
        and :meth:`respond` for the same text takes it over; nothing is acted on before that.
        Returns whether a generation was started. Off with ``llm.preemptive_generation = false``.
        """
        self.unprepare()
        if self.local is None or not self.config.llm.preemptive_generation or self.pending is not None:
            return False
        if _ASK_REMOTE.search(text) or _HELP.match(text.strip()):
            return False
        if self.fast_path is not None and (resolve_follow_up(text, self.conversation, self.registry.service("home")) is not None
                                           or self.fast_path.match_all(text)):
            return False
        if self.tolerant is not None and self.tolerant.match(text) is not None:
            return False
        if not self.local.speculate(text, self.conversation, self.config.tts.first_clause_words):
            return False
        self._prepared = (current_turn().origin, text)
        return True

    def prepared_reply(self) -> "asyncio.Future | None":
        """Done when the reply :meth:`prepare` started can begin: its first sentence (or first
        clause) is made (:meth:`prepared_sentence`), or its first step has ended (the whole tool
        call, a refusal); None when none is running."""
        if self._prepared is None or self.local is None:
            return None
        done, sentence = self.local.engine.speculation_done(), self.local.prepared_sentence
        if sentence is not None and sentence.done() and sentence.result() is not None:
            return sentence  # its first sentence is made already
        if done is None or sentence is None or done.done() or sentence.done():
            return done

        async def first() -> None:
            await asyncio.wait({done, sentence}, return_when=asyncio.FIRST_COMPLETED)

        return asyncio.ensure_future(first())

    def prepared_sentence(self) -> "asyncio.Future[str | None] | None":
        """Resolves to the first sentence (or first clause) the reply :meth:`prepare` started will
        say, as soon as it is made, or to None when it will say none (a tool call, a refusal);
        None when nothing is prepared (:meth:`LocalController.speculate`)."""
        if self._prepared is None or self.local is None:
            return None
        return self.local.prepared_sentence

    def unprepare(self) -> None:
        """Stop a generation :meth:`prepare` started (the user went on speaking); no-op without one."""
        if self._prepared is not None:
            self._prepared = None
            if self.local is not None:
                self.local.engine.cancel_speculation()

    async def respond(self, text: str, *, turn: int) -> AsyncIterator[str]:
        """Answer one request; yields reply text as it is produced."""
        if self._prepared is not None and self._prepared != (current_turn().origin, text):
            self.unprepare()  # the request is not the one prepared: free the CPU now
        self._prepared = None
        try:
            async for piece in self._respond(text, turn=turn):
                yield piece
        finally:
            if self.local is not None:
                self.local.engine.cancel_speculation()  # a tier below the LLM answered after all

    async def _respond(self, text: str, *, turn: int) -> AsyncIterator[str]:
        if self.pending is not None:
            async for piece in self._answer_question(text, turn):
                yield piece
            if self._answered:
                return
        wants_remote = bool(_ASK_REMOTE.search(text))
        if _HELP.match(text.strip()):
            self._route("help", "asked what the assistant can do", turn)
            reply = capabilities_reply(set(self.registry.tools))
            self.conversation.add(text, reply)
            yield reply
            return
        if self.fast_path is not None and not wants_remote:
            async for piece in self._fast(text, turn):
                yield piece
            if self._answered:
                return
            repaired = self.tolerant.repaired(text) if self.tolerant is not None else None
            if repaired is not None:  # a slip of the recogniser read as what was said: the templates' meaning ("basement light song")
                async for piece in self._fast(repaired, turn, heard=text):
                    yield piece
                if self._answered:
                    return
        if self.tolerant is not None and not wants_remote:
            async for piece in self._tolerant(text, turn):
                yield piece
            if self._answered:
                return
        if self.local is None and self.local_loading is not None and not wants_remote:
            if not self.local_loading.done():
                log.info("a request waits for the local LLM to finish loading")
                yield LOADING_NOTICE
            await self._take_loaded_llm()
        if self.local is not None and not wants_remote:
            reason = "no template or tolerant match" if self.fast_path is not None else "fast path off"
            self._route("local_llm", reason, turn)
            result = None
            async for piece in self.local.respond(text, turn=turn, conversation=self.conversation, confirm=self._confirm()):
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
            async for piece in self.remote.respond(text, turn=turn, reason=escalate_reason, conversation=self.conversation, confirm=self._confirm()):
                yield piece
            return
        why = escalate_reason if self.remote is None else f"{escalate_reason}; {self.remote.unavailable_reason()}"
        self._route("none", why, turn)
        reply = self._cannot_help(text, why)
        self.conversation.add(text, reply)
        yield reply

    async def _take_loaded_llm(self) -> None:
        """Wait for the background load (shielded: a cancelled request does not cancel it)."""
        task = self.local_loading
        if task is None:
            return
        try:
            local = await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the tier is left out, as when it cannot load at start
            log.error("the local LLM could not load: %r", exc)
            local = None
        if self.local_loading is task:
            self.local_loading = None
            self.local = local

    async def _fast(self, text: str, turn: int, heard: str | None = None) -> AsyncIterator[str]:
        """The fast path: a follow-up of the last command, or templates (one or several commands).
        ``heard``: what was heard, when ``text`` is its repaired reading (no follow-up is tried then)."""
        assert self.fast_path is not None
        self._answered = False
        t0 = time.perf_counter()
        follow = resolve_follow_up(text, self.conversation, self.registry.service("home")) if heard is None else None
        if follow is not None:
            tool, args, why = follow
            calls = [(tool, args)]
            self._route("fast_path", f"follow-up: {why}", turn)
        else:
            matches = self.fast_path.match_all(text)
            self.bus.emit(StageTiming(stage="fast_path", ms=round((time.perf_counter() - t0) * 1000, 3), turn=turn))
            if not matches:
                return
            intents = ", ".join(m.intent for m in matches)
            self._route("fast_path", f"template{'s' if len(matches) > 1 else ''} {intents} matched" + (f" by {text!r}, the repaired reading of {heard!r}" if heard else ""),
                        turn, matches[0].intent)
            if matches[0].tool is None:
                self._answered = True
                reply = "" if matches[0].intent == "HassNevermind" else "I'm here."
                self.conversation.add(text, reply)
                if reply:
                    yield reply
                return
            calls = [(m.tool, refine_home_arguments(m.text, m.tool, m.arguments)) for m in matches if m.tool]
        self._answered = True
        async for piece in self._run_calls(text, calls, turn):
            yield piece

    async def _tolerant(self, text: str, turn: int) -> AsyncIterator[str]:
        """The tolerant tier: requests as people say them, without templates or an LLM."""
        assert self.tolerant is not None
        self._answered = False
        t0 = time.perf_counter()
        match = self.tolerant.match(text)
        self.bus.emit(StageTiming(stage="tolerant", ms=round((time.perf_counter() - t0) * 1000, 3), turn=turn))
        if match is None:
            return
        self._answered = True
        self._route("tolerant", match.why, turn, match.intent)
        if match.reply is not None:  # understood, but nothing to do it to ("turn on the jacuzzi")
            self.conversation.add(text, match.reply)
            yield match.reply
            return
        async for piece in self._run_calls(text, match.calls, turn):
            yield piece

    async def _run_calls(self, text: str, calls: list[tuple[str, dict[str, Any]]], turn: int) -> AsyncIterator[str]:
        """Run tool calls one after the other and say what each did; a question back stops the rest."""
        said = []
        for tool, args in calls:
            outcome = await self.registry.call(tool, args, turn=turn, confirm=self._confirm())
            self.conversation.add_tool_call(tool, outcome.arguments, outcome.for_model())
            if outcome.clarification is not None:
                self._ask(tool, outcome, turn)
            if outcome.say:
                yield (" " if said else "") + outcome.say
                said.append(outcome.say)
            if outcome.clarification is not None:
                break
        self.conversation.add(text, " ".join(said))

    def _ask(self, tool: str, outcome: ToolOutcome, turn: int) -> None:
        c = outcome.clarification
        assert c is not None
        self.pending = PendingQuestion(tool=tool, arguments=dict(outcome.arguments), options=c.options, labels=c.labels, question=c.message, turn=turn)

    async def _answer_question(self, text: str, turn: int) -> AsyncIterator[str]:
        """Read a request as the answer to the pending question: complete the call, or drop it."""
        q = self.pending
        assert q is not None
        self._answered = False
        if is_cancel(text):
            self.pending = None
            self._answered = True
            self._route("fast_path", "the user dropped the question", turn)
            self.conversation.add(text, "OK.")
            yield "OK."
            return
        keys = [" ".join(str(v) for v in o.values()) for o in q.options]
        idx = choose(text, q.labels, keys)
        if idx is None:
            q.attempts += 1
            if q.attempts > 1 or len(text.split()) > 4:
                self.pending = None  # not an answer: a new request
                return
            self._answered = True
            self._route("fast_path", "no option matched the answer; asking again", turn)
            again = f"Sorry, {q.question[0].lower() + q.question[1:]}"
            self.conversation.add(text, again)
            yield again
            return
        self.pending = None
        self._answered = True
        self._route("fast_path", f"answer to a question: {q.labels[idx]}", turn)
        args = {**{k: v for k, v in q.arguments.items() if k not in ("name", "area", "floor", "domain", "device_class")}, **q.options[idx]}
        async for piece in self._run_calls(text, [(q.tool, args)], turn):
            yield piece

    def _cannot_help(self, text: str, why: str) -> str:
        if self.remote is not None and self.remote.policy == "never":
            return CANNOT_HELP
        if self.remote is not None and not self.remote.reachable():
            return "Sorry, I can't answer that on my own, and I can't reach the bigger model right now."
        return CANNOT_HELP
