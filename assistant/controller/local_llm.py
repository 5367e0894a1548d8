"""The local LLM tier: plan → pick a tool → run it → observe → answer, with constrained JSON.

Each step the model writes exactly one JSON action, and a llama.cpp grammar built from a JSON
schema forces it to be valid: a tool that exists with arguments that fit its schema (device,
area and floor names restricted to the ones the home has), or ``answer`` (spoken text),
``done`` (the tool results already said it), or ``cannot_help`` (hand over to the remote tier).
A small model therefore cannot produce an unparseable or invented call.

The loop is bounded by ``llm.max_steps`` tool calls and ``llm.time_limit_s`` of wall time. Each
successful tool's own sentence is spoken as soon as it returns, and an ``answer`` streams to TTS
as it is generated (the text is pulled out of the JSON while it is being written).

Prompt layout, for prefix caching: [system rules + tool catalog + home names + few-shot examples]
is identical from turn to turn and evaluated once (:meth:`LocalController.warm`); only the
conversation history and the new request are evaluated per turn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from ..bus import EventBus
from ..config import LlmConfig
from ..events import StageTiming
from ..toolkit.api import Tool
from ..toolkit.registry import ConfirmHook, ToolRegistry
from .llm_engine import CompletionStats, LlmEngine
from .memory import Conversation

__all__ = ["AnswerStream", "LocalController", "LocalResult", "ToolSelector", "action_schema", "arguments_schema"]

log = logging.getLogger(__name__)

SYSTEM_RULES = """You are Jarvis, a voice assistant running on a small computer in the user's home.
Reply with ONE JSON action each time:
{"tool": "<tool name>", "arguments": {...}} runs a tool; you then see its result and choose the next action.
{"tool": "answer", "arguments": {"text": "..."}} says a short reply (one or two sentences) and ends the turn.
{"tool": "done", "arguments": {}} ends the turn when the tool results already told the user everything.
{"tool": "cannot_help", "arguments": {"reason": "..."}} when no tool fits and you do not know the answer.
Use a tool for anything that changes the home or needs current information. Never say you did
something unless a tool did it. Use device and area names exactly as listed. Several requests in
one sentence need several tool calls, one after the other."""


ANSWER_MAX_CHARS = 240
"""Longest spoken answer the grammar allows (a voice reply is a sentence or two)."""
ARGUMENT_MAX_CHARS = 80
"""Longest free-text tool argument the grammar allows: with no bound, a small model can run a
string to the token limit and leave the JSON unclosed."""
ACTIONABLE_SCORE = 3.5
"""BM25 score of the best tool above which a request counts as a command (tuned on
``benchmarks/data/tool_choice.yaml``: commands score 3.6-8.6, chit-chat 0-3.2)."""
COMMAND_TOOLS = 4
"""Tools offered for a request that is clearly a command."""

_CLAIM = re.compile(
    r"\b(i('| ha)ve|i('| wi)ll|i am|i'm) (now |just )?(turn(ed)?|switch(ed)?|set|add(ed)?|order(ed)?|book(ed)?|sen[dt]|start(ed)?|open(ed)?|close[d]?|lock(ed)?|unlock(ed)?|ma(de|ke)|brew(ed)?|call(ed)?|place[d]?|going to)\b"
    r"|\bhere('s| is) your\b|\byour \w+( \w+)? (is|are) (ready|on (its|the) way|coming|ordered|done|set)\b|^\s*(sure|of course|done|okay|ok)\b[,!. ]",
    re.I,
)
"""A reply that claims an action (the model must call a tool for that, never just say it)."""

_CLAUSE_END = re.compile(r"[,;:]\s")
"""The end of a clause inside a sentence being generated, with the space after it that
:class:`~assistant.speech.tts.SentenceSplitter` needs to see to split there."""

_REFUSAL = re.compile(r'^\s*\{\s*"tool"\s*:\s*"cannot_help"')
"""A first step that has chosen ``cannot_help``: its reason is only logged, so generation stops at
the name, in :meth:`LocalController.respond` and in a preemptive generation (the refusal's reason
took ~20 tokens, ~350 ms on this project's 2-core machine, before the next tier could start)."""

_ACTION_REQUEST = re.compile(
    r"^\s*(please\s+)?((can|could|would|will|may)\s+(i|we|you)\s+(please\s+)?(have|get|order|buy|book|make|bring|send|call|pay|reserve)\b"
    r"|(i|we)('d| would)\s+like\b|(i|we)\s+(want|need)\s+(a|an|some|to\s+(order|buy|book))\b"
    r"|(get|give|bring|make|order|buy|book|send|call|fetch|reserve|text|email|message|pay|transfer)\s+(me|us)\b)",
    re.I,
)
"""Requests for an action ("can I have …", "order me …", "I'd like …"): only a tool can serve them."""


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()


def _repeats(answer: str, said: list[str]) -> bool:
    """The answer only repeats sentences already spoken (a small model echoing the tool result)."""
    before = _norm(" ".join(said))
    return not _norm(answer) or _norm(answer) in before


def is_action_request(text: str) -> bool:
    """True for a request to *do* something (as opposed to a question or chit-chat)."""
    return bool(_ACTION_REQUEST.search(text))


@dataclass
class LocalResult:
    """How the local tier ended a request."""

    handled: bool
    """True when the request was answered here (even with "sorry"); False = try the remote tier."""
    reason: str = ""
    steps: int = 0
    tool_calls: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- schemas


def _simplify(prop: dict[str, Any]) -> dict[str, Any]:
    if "anyOf" in prop:
        branches = [b for b in prop["anyOf"] if b.get("type") != "null"]
        base = dict(branches[0]) if len(branches) == 1 else {"anyOf": branches}
    else:
        base = dict(prop)
    for k in ("default", "description", "title"):
        base.pop(k, None)
    if "items" in base:
        base["items"] = _simplify(base["items"])
    return base


def arguments_schema(tool: Tool, choices: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """A compact JSON schema of a tool's arguments for the grammar; ``choices`` pins string values."""
    props = {}
    for name, prop in tool.parameters.get("properties", {}).items():
        p = _simplify(prop)
        allowed = (choices or {}).get(name)
        if allowed:
            if p.get("type") == "array":
                p = {"type": "array", "items": {"enum": list(allowed)}}
            elif p.get("type") == "string" or "type" not in p:
                p = {"enum": list(allowed)}
        if p.get("type") == "string" and "enum" not in p and "maxLength" not in p:
            p["maxLength"] = ARGUMENT_MAX_CHARS
        props[name] = p
    required = [n for n in tool.parameters.get("required", []) if n in props]
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def _action(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"tool": {"const": name}, "arguments": args}, "required": ["tool", "arguments"], "additionalProperties": False}


def action_schema(tools: list[Tool], choices: dict[str, dict[str, list[str]]], *, after_tool: bool, allow_answer: bool = True) -> dict[str, Any]:
    """The schema of one action: a tool call, ``answer``, ``done`` (after a tool) or ``cannot_help``.

    ``allow_answer=False`` (a request that is clearly a command) leaves the model only the tools
    or ``cannot_help``: small models otherwise tend to *say* they did something instead of doing it.
    """
    options = [_action(t.name, arguments_schema(t, choices.get(t.name))) for t in tools]
    text = {"type": "object", "properties": {"text": {"type": "string", "maxLength": ANSWER_MAX_CHARS}}, "required": ["text"], "additionalProperties": False}
    if allow_answer or after_tool:
        options.append(_action("answer", text))
    if after_tool:
        options.append(_action("done", {"type": "object", "properties": {}, "additionalProperties": False}))
    else:
        reason = {"type": "object", "properties": {"reason": {"type": "string", "maxLength": ARGUMENT_MAX_CHARS}}, "required": ["reason"], "additionalProperties": False}
        options.append(_action("cannot_help", reason))
    return {"oneOf": options}


# ---------------------------------------------------------------------------- tool relevance

_WORD = re.compile(r"[a-z]+")
_STOP = set("the a an of to in on for and or is are be it this that my me i you your please can could would with at by from what".split())


def _stem(w: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def _terms(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP]


class ToolSelector:
    """Picks the tools most relevant to a request (BM25 over each tool's name, description,
    parameter docs and templates), so a small model chooses among few when there are many."""

    def __init__(self, tools: list[Tool], extra_terms: dict[str, str] | None = None) -> None:
        self.tools = tools
        docs = []
        for t in tools:
            text = " ".join([t.name.replace("_", " "), t.description, " ".join(t.param_docs.values()), " ".join(t.templates), (extra_terms or {}).get(t.name, "")])
            docs.append(Counter(_terms(text)))
        self.docs = docs
        n = len(docs)
        df = Counter(term for d in docs for term in d)
        self.idf = {term: math.log(1 + (n - c + 0.5) / (c + 0.5)) for term, c in df.items()}
        self.avg_len = sum(sum(d.values()) for d in docs) / max(1, n)

    def select(self, text: str, k: int) -> list[Tool]:
        """The ``k`` best tools for ``text``, best first."""
        return [t for t, _ in self.ranked(text)[:k]]

    def ranked(self, text: str) -> list[tuple[Tool, float]]:
        """Every tool with its BM25 score for ``text``, best first."""
        q = _terms(text)
        scores = []
        for t, d in zip(self.tools, self.docs):
            length = sum(d.values())
            s = 0.0
            for term in q:
                f = d.get(term, 0)
                if f:
                    s += self.idf.get(term, 0) * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * length / self.avg_len))
            scores.append(s)
        order = sorted(range(len(self.tools)), key=lambda i: -scores[i])
        return [(self.tools[i], scores[i]) for i in order]


# ---------------------------------------------------------------------------- streaming the answer out of JSON


class AnswerStream:
    """Pulls the ``text`` of an ``answer`` action out of JSON while it is being generated."""

    _START = re.compile(r'"tool"\s*:\s*"answer"\s*,\s*"arguments"\s*:\s*\{\s*"text"\s*:\s*"')

    def __init__(self) -> None:
        self.raw = ""
        self._pos: int | None = None
        self._done = False

    def feed(self, piece: str) -> str:
        """Add generated text; returns any new answer text (unescaped)."""
        self.raw += piece
        if self._done:
            return ""
        if self._pos is None:
            m = self._START.search(self.raw)
            if not m:
                return ""
            self._pos = m.end()
        out = []
        i = self._pos
        while i < len(self.raw):
            c = self.raw[i]
            if c == "\\":
                if i + 1 >= len(self.raw):
                    break
                nxt = self.raw[i + 1]
                if nxt == "u":
                    if i + 6 > len(self.raw):
                        break
                    try:
                        out.append(chr(int(self.raw[i + 2 : i + 6], 16)))
                    except ValueError:
                        pass
                    i += 6
                    continue
                out.append({"n": " ", "t": " ", '"': '"', "\\": "\\", "/": "/"}.get(nxt, nxt))
                i += 2
                continue
            if c == '"':
                self._done = True
                i += 1
                break
            out.append(c)
            i += 1
        self._pos = i
        return "".join(out)

    @property
    def done(self) -> bool:
        """The answer's text has ended (its closing quote was read)."""
        return self._done


# ---------------------------------------------------------------------------- the controller


class LocalController:
    """The plan–act–observe loop over a local model.

    Args:
        engine: The loaded model.
        registry: The tools.
        bus: Event bus (timings).
        config: Steps, time limit, tools in the prompt.
    """

    def __init__(self, engine: LlmEngine, registry: ToolRegistry, bus: EventBus, config: LlmConfig) -> None:
        self.engine = engine
        self.registry = registry
        self.bus = bus
        self.config = config
        self._selector: ToolSelector | None = None
        self._selector_key: tuple[str, ...] = ()
        self.vocabulary: dict[str, str] = {}
        """Extra words per tool for ranking (the fast path's template words, set by the assembly)."""
        self.prepared_sentence: asyncio.Future[str | None] | None = None
        """The first words the last :meth:`speculate` will have the speaker say (see there)."""

    def close(self) -> None:
        self.engine.close()

    # ------------------------------------------------------------------ prompt parts

    def _tools(self) -> list[Tool]:
        return sorted(self.registry.tools.values(), key=lambda t: t.name)

    def _choices(self) -> dict[str, dict[str, list[str]]]:
        out: dict[str, dict[str, list[str]]] = {}
        for t in self._tools():
            owner = getattr(t.func, "__self__", None)
            provider = getattr(owner, "argument_choices", None)
            if callable(provider):
                out[t.name] = provider(t.name)
        return out

    def _catalog(self) -> str:
        lines = []
        for t in self._tools():
            params = []
            required = set(t.parameters.get("required", []))
            for name, prop in t.parameters.get("properties", {}).items():
                p = _simplify(prop)
                kind = p.get("type", "value")
                if "enum" in p:
                    kind = "|".join(map(str, p["enum"]))
                elif kind == "array":
                    kind = "list"
                params.append(f"{name}{'' if name in required else '?'}: {kind}")
            lines.append(f"{t.name}({', '.join(params)}): {t.description}")
        return "\n".join(lines)

    def _home_names(self) -> str:
        home = self.registry.service("home")
        if home is None:
            return ""
        snap = home.snapshot()
        areas = {a.id: a.name for a in snap.areas}
        devices = [f"{e.name} ({e.domain}{', ' + areas[e.area_id] if e.area_id in areas else ''})" for e in snap.entities[:80]]
        return "Areas: " + ", ".join(areas.values()) + "\nDevices: " + "; ".join(devices)

    def _examples(self) -> list[dict[str, str]]:
        """Few-shot examples, built from tools and devices that exist here (so names are real)."""
        ex: list[dict[str, str]] = []

        def call(user: str, tool: str, args: dict[str, Any], say: str) -> None:
            if tool not in self.registry.tools:
                return
            ex.extend([
                {"role": "user", "content": user},
                {"role": "assistant", "content": json.dumps({"tool": tool, "arguments": args})},
                {"role": "user", "content": "Tool result: " + json.dumps({"ok": True, "result": {"say": say}})},
                {"role": "assistant", "content": json.dumps({"tool": "done", "arguments": {}})},
            ])

        home = self.registry.service("home")
        light = next((e for e in home.snapshot().entities if e.domain == "light"), None) if home is not None else None
        if light is not None:
            call(f"could you switch off the {light.name.lower()}", "home_turn_off", {"name": light.name}, f"Turned off the {light.name.lower()}.")
        call("I need a reminder in 5 minutes", "timer_start", {"minutes": 5}, "Timer set for 5 minutes.")
        call("how much is 7 times 8 plus 2", "calculate", {"expression": "7 * 8 + 2"}, "7 * 8 + 2 is 58.")
        ex += [
            {"role": "user", "content": "what is the capital of peru"},
            {"role": "assistant", "content": json.dumps({"tool": "answer", "arguments": {"text": "The capital of Peru is Lima."}})},
        ]
        return ex

    def prefix_messages(self) -> list[dict[str, str]]:
        """The stable part of every prompt (system rules, tools, home names, examples)."""
        system = SYSTEM_RULES + "\n\nTools:\n" + self._catalog()
        names = self._home_names()
        if names:
            system += "\n\n" + names
        return [{"role": "system", "content": system}, *self._examples()]

    def warm(self, stop: "threading.Event | None" = None) -> CompletionStats:
        """Evaluate the stable prefix into the KV cache (call once after loading; blocking; ``stop``
        ends it early, see :meth:`LlmEngine.warm`)."""
        prompt = self.engine.render(self.prefix_messages(), generation_prompt=False)
        return self.engine.warm(prompt, stop)

    def _candidates(self, text: str) -> tuple[list[Tool], bool]:
        """The tools offered for a request, and whether it is clearly a command.

        Each part of a compound request ("... and ...") brings its own best tools, so the second
        step of a plan can use a tool the first part would not have ranked.
        """
        from .fastpath import split_commands  # noqa: PLC0415

        parts = [text, *split_commands(text)] if len(split_commands(text)) > 1 else [text]
        selector = self.selector()
        best = [selector.ranked(p) for p in parts]
        names_device = self._names_a_device(text)
        command = best[0][0][1] >= ACTIONABLE_SCORE or names_device
        k = min(COMMAND_TOOLS, self.config.max_tools_in_prompt) if command else self.config.max_tools_in_prompt
        chosen: list[Tool] = []
        for ranking in best:
            for t, _ in ranking[:k]:
                if t not in chosen:
                    chosen.append(t)
        chosen = chosen[: max(k, self.config.max_tools_in_prompt if len(parts) > 1 else k)]
        if names_device:  # a named device can always be switched or asked about
            for name in ("home_turn_on", "home_turn_off", "home_get_state"):
                t = self.registry.tools.get(name)
                if t is not None and t not in chosen:
                    chosen.append(t)
        return chosen, command

    _GENERIC = set(_terms(
        "have get want like need please could would can make give bring order buy book send call me us some little bit "
        "one two three four five six seven eight nine ten a an the right now today tonight quick quickly"
    ))

    def _mostly_unknown(self, text: str) -> bool:
        """Most of what the request is about is in no tool's vocabulary (nor a device or area name):
        "a medium double shot americano" — no tool here knows what that is."""
        selector = self.selector()
        known = set(selector.idf)
        home = self.registry.service("home")
        if home is not None:
            snap = home.snapshot()
            known |= set(_terms(" ".join(n for e in snap.entities for n in e.names())))
            known |= set(_terms(" ".join(a.name for a in snap.areas)))
        words = [w for w in _terms(text) if w not in self._GENERIC]
        if not words:
            return False
        unknown = [w for w in words if w not in known]
        return len(unknown) * 2 > len(words)

    def _names_a_device(self, text: str) -> bool:
        home = self.registry.service("home")
        if home is None:
            return False
        low = " " + re.sub(r"[^\w\s]", " ", text.lower()) + " "
        snap = home.snapshot()
        return any(f" {n.lower()} " in low for e in snap.entities for n in e.names())

    def selector(self) -> ToolSelector:
        key = tuple(self.registry.tools)
        if self._selector is None or key != self._selector_key:
            self._selector = ToolSelector(self._tools(), self.vocabulary)
            self._selector_key = key
        return self._selector

    # ------------------------------------------------------------------ the loop

    def _opening(self, text: str, conversation: Conversation) -> tuple[list[Tool], bool, list[dict[str, str]]] | None:
        """The tools offered for ``text``, whether it must be answered by a tool (a command or an
        action request), and the messages of the first step; None for an action request no tool
        matches (:meth:`_mostly_unknown`), which the model is not asked about."""
        tools, command = self._candidates(text)
        action = is_action_request(text)
        if action and self._mostly_unknown(text):
            return None
        messages = [*self.prefix_messages(), *conversation.messages(), {"role": "user", "content": text}]
        return tools, command or action, messages

    def speculate(self, text: str, conversation: Conversation, first_clause_words: int = 0) -> bool:
        """Start the first step of :meth:`respond` for ``text`` now (:meth:`LlmEngine.speculate`):
        the voice loop calls this (through :meth:`Router.prepare`) at a pause whose words may be the whole request. Nothing is
        acted on; a :meth:`respond` for the same text and conversation takes the generation over.
        Returns whether a generation was started.

        :attr:`prepared_sentence` then resolves to the first piece the speaker will say if this
        generation is taken over — the answer's first sentence, or its first clause of at least
        ``first_clause_words`` words (``tts.first_clause_words``, cut as
        :class:`~assistant.speech.tts.SentenceSplitter` cuts it) — as soon as it is made, or to
        None when the generation ends without one (a tool call, a refusal, a claimed action,
        stopped): the voice loop synthesises it meanwhile."""
        from ..speech.tts import SentenceSplitter  # noqa: PLC0415

        opening = self._opening(text, conversation)
        if opening is None:
            return False
        tools, command, messages = opening
        schema = action_schema(tools, self._choices(), after_tool=False, allow_answer=not command)
        loop = asyncio.get_running_loop()
        sentence: asyncio.Future[str | None] = loop.create_future()
        answer, splitter, found = AnswerStream(), SentenceSplitter(first_clause_words), False

        def settle(value: str | None) -> None:
            if not sentence.done():
                sentence.set_result(value)

        def watch(raw: str) -> bool:  # on the engine's worker thread, after each piece
            nonlocal found
            if _REFUSAL.match(raw):
                return True  # its reason is never used: stop there
            if not found:
                out = splitter.feed(answer.feed(raw[len(answer.raw):]))
                if not out and answer.done:
                    out = splitter.flush()
                if out:
                    found = True
                    loop.call_soon_threadsafe(settle, None if _CLAIM.search(out[0]) else out[0])
            return False

        self.engine.speculate(self.engine.render(messages), schema=schema, stop_when=watch)
        done = self.engine.speculation_done()
        if done is not None:
            done.add_done_callback(lambda _: settle(None))
        self.prepared_sentence = sentence
        return True

    async def respond(
        self,
        text: str,
        *,
        turn: int,
        conversation: Conversation,
        confirm: ConfirmHook | None = None,
    ) -> AsyncIterator[str | LocalResult]:
        """Answer a request; yields spoken text pieces and finally a :class:`LocalResult`."""
        deadline = time.monotonic() + self.config.time_limit_s
        opening = self._opening(text, conversation)
        if opening is None:
            # "can I have a double shot americano": an action no tool here matches. Saying so is
            # the honest answer; letting a small model improvise one is how assistants lie.
            self.engine.cancel_speculation()
            self.bus.emit(StageTiming(stage="llm", ms=0.0, turn=turn, detail="skipped: an action request no tool matches"))
            yield LocalResult(handled=False, reason="no tool can do that (an action request that matches no tool)")
            return
        tools, command, messages = opening
        allowed = {t.name for t in tools}
        choices = self._choices()
        result = LocalResult(handled=True)
        said: list[str] = []
        failures = 0
        last_error = ""
        last_call: tuple[str, str] | None = None
        for step in range(self.config.max_steps + 1):
            after_tool = step > 0
            schema = action_schema([t for t in tools if t.name in allowed], choices, after_tool=after_tool, allow_answer=not command)
            prompt = self.engine.render(messages)
            answer = AnswerStream()
            stats = CompletionStats()
            try:
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    held = ""
                    # no tool called yet: the first sentence is checked for false claims before it
                    # is spoken; after tools ran, the answer is held back whole and dropped if it
                    # only repeats what the tools already said
                    checking = not result.tool_calls
                    holding = bool(result.tool_calls)
                    claimed = refused = False
                    answer_started = False
                    t_step = time.perf_counter()
                    async for piece in self.engine.stream(prompt, schema=schema):
                        if isinstance(piece, CompletionStats):
                            stats = piece
                            break
                        spoken = answer.feed(piece)
                        if not after_tool and _REFUSAL.match(answer.raw):
                            refused = True  # leaving the stream stops generation at the next token
                            break
                        if not spoken:
                            continue
                        if holding:
                            held += spoken
                            continue
                        if checking:
                            held += spoken
                            if not re.search(r"[.!?](\s|$)", held):
                                # a clause ("The largest planet is Jupiter,") that claims nothing goes
                                # out now, so the speaker can start on it (tts.first_clause_words)
                                # while the rest of the sentence is generated; the rest is checked too
                                cut = max((m.end() for m in _CLAUSE_END.finditer(held)), default=0)
                                if not cut:
                                    continue
                                if _CLAIM.search(held[:cut]):
                                    claimed = True
                                    break
                                spoken, held = held[:cut], held[cut:]
                            else:
                                checking = False
                                if _CLAIM.search(held):
                                    claimed = True
                                    break
                                spoken, held = held, ""
                        if not answer_started:
                            answer_started = True
                            if said:  # after earlier sentences of this turn
                                spoken = " " + spoken.lstrip()
                        said.append(spoken)
                        yield spoken
                    if held and not claimed:
                        if checking and _CLAIM.search(held):
                            claimed = True
                        elif not (holding and _repeats(held, said)):
                            piece_out = (" " if said else "") + held.strip()
                            said.append(piece_out)
                            yield piece_out
                    if refused:
                        self.bus.emit(StageTiming(stage="llm", ms=round((time.perf_counter() - t_step) * 1000.0, 2), turn=turn,
                                                  detail=f"step {step + 1}: cannot_help chosen, stopped before its reason"))
                        conversation.add(text, "")
                        yield LocalResult(handled=False, reason="the local model cannot help", steps=step + 1)
                        return
                    if claimed:
                        log.info("the local model claimed an action without a tool: %r", answer.raw[:120])
                        conversation.add(text, "")
                        yield LocalResult(handled=False, reason="the local model claimed an action it has no tool for", steps=step + 1)
                        return
            except TimeoutError:
                reply = "Sorry, that took me too long."
                yield (" " if said else "") + reply
                conversation.add(text, " ".join(said + [reply]))
                result.reason = "time limit"
                yield result
                return
            ahead = f", started {stats.preemptive_ms:.0f} ms before the request was final (preemptive)" if stats.preemptive_ms else ""
            if stats.preemptive_ms:
                self.bus.emit(StageTiming(stage="llm_preemptive", ms=round(stats.preemptive_ms, 2), turn=turn,
                                          detail="generation started at a pause, this long before the request was final"))
            self.bus.emit(StageTiming(stage="llm_first_token", ms=round(stats.first_token_ms, 2), turn=turn,
                                      detail=f"step {step + 1}: {stats.prompt_tokens} prompt tokens, {stats.cached_tokens} cached{ahead}"))
            self.bus.emit(StageTiming(stage="llm", ms=round(stats.total_ms, 2), turn=turn,
                                      detail=f"step {step + 1}: {stats.completion_tokens} tokens, {stats.tokens_per_s:.1f} tok/s"))
            result.steps = step + 1
            try:
                action = json.loads(answer.raw, strict=False)  # the grammar lets strings hold raw newlines
                name, args = action["tool"], action.get("arguments") or {}
            except (ValueError, KeyError, TypeError):
                # the grammar makes this rare (it can happen when max_tokens cuts the JSON short)
                log.warning("unparseable action from the model: %r", answer.raw[:200])
                failures += 1
                if failures >= 2:
                    yield LocalResult(handled=False, reason="the local model kept producing invalid plans", steps=step + 1)
                    return
                continue
            messages.append({"role": "assistant", "content": json.dumps(action)})
            if name in ("answer", "done"):
                if not said and last_error:
                    said.append(last_error)
                    yield last_error
                conversation.add(text, " ".join(said))
                yield result
                return
            if name == "cannot_help":
                conversation.add(text, "")
                yield LocalResult(handled=False, reason=f"the local model cannot help: {args.get('reason', '')}".strip(), steps=step + 1)
                return
            if step >= self.config.max_steps:
                break
            signature = (name, json.dumps(args, sort_keys=True))
            if signature == last_call:
                break  # the same call again: the plan is done
            last_call = signature
            outcome = await self.registry.call(name, args, turn=turn, confirm=confirm)
            result.tool_calls.append(name)
            conversation.add_tool_call(name, outcome.arguments, outcome.for_model())
            messages.append({"role": "user", "content": "Tool result: " + json.dumps(outcome.for_model(), ensure_ascii=False)[:600]})
            if outcome.ok or outcome.refused:
                sentence = outcome.say.strip()
                if sentence:
                    piece = (" " if said else "") + sentence
                    said.append(sentence)
                    yield piece
                failures = 0
            else:
                failures += 1
                last_error = outcome.error
                if failures >= 2:
                    yield LocalResult(handled=False, reason="the local model's plans failed twice: " + outcome.error, steps=step + 1, tool_calls=result.tool_calls)
                    return
            if time.monotonic() > deadline:
                break
        if not said:
            said.append(last_error or "I couldn't finish that.")
            yield said[0]
        conversation.add(text, " ".join(said))
        result.reason = "step limit"
        yield result
