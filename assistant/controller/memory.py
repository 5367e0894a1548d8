"""Conversation memory within a session: bounded, with older turns summarised.

The last ``max_turns`` exchanges are kept verbatim (user text, tool calls with results, reply);
older ones are folded into a one-line-per-turn summary of what was asked and what was done, so
the prompt stays short on a small model while follow-ups ("and the kitchen too", "make it
warmer") can still refer back. The summary is extractive (built from the tool calls), not
generated, so it costs no LLM time and cannot invent anything.
"""

from __future__ import annotations

import collections
import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Conversation", "Exchange", "looks_elliptical"]

_FOLLOW_UP = re.compile(
    r"^\s*(and|also|plus|what about|how about|same for|now|then|ok(ay)?,? (and|now))\b|\b(too|as well|also|again)\s*[.?!]*\s*$"
    r"|^\s*(make|turn|set) (it|them|that|those)\b|^\s*(a (bit|little)|much) (more|less|warmer|cooler|brighter|dimmer|louder|quieter)\b"
    r"|^\s*(warmer|cooler|colder|brighter|dimmer|louder|quieter|more|less)\s*[.!]*\s*$",
    re.I,
)


def looks_elliptical(text: str) -> bool:
    """True for requests that only make sense with the previous turn ("and the kitchen too")."""
    return bool(_FOLLOW_UP.search(text))


@dataclass
class Exchange:
    user: str
    reply: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """``{"tool": name, "arguments": {...}, "result": {...}}`` in call order."""

    def summary(self) -> str:
        if self.tool_calls:
            done = "; ".join(
                f"{c['tool']}({', '.join(f'{k}={v!r}' for k, v in c['arguments'].items() if v not in (None, [], ''))})"
                f" -> {'ok' if c['result'].get('ok') else 'failed'}"
                for c in self.tool_calls
            )
            return f"user: {self.user!r}; did: {done}"
        return f"user: {self.user!r}; answered: {self.reply[:80]!r}"


class Conversation:
    """The session's recent exchanges.

    Args:
        max_turns: Exchanges kept verbatim; older ones are summarised.
        max_summary: Summary lines kept (oldest dropped first).
    """

    def __init__(self, max_turns: int = 6, max_summary: int = 10) -> None:
        self.max_turns = max_turns
        self.recent: collections.deque[Exchange] = collections.deque()
        self.summary: collections.deque[str] = collections.deque(maxlen=max_summary)
        self._pending: list[dict[str, Any]] = []

    def add_tool_call(self, tool: str, arguments: dict[str, Any], result: dict[str, Any]) -> None:
        """Record a tool call of the exchange in progress."""
        self._pending.append({"tool": tool, "arguments": dict(arguments), "result": result})

    def add(self, user: str, reply: str) -> None:
        """Close the exchange in progress."""
        self.recent.append(Exchange(user=user, reply=reply, tool_calls=self._pending))
        self._pending = []
        while len(self.recent) > self.max_turns:
            self.summary.append(self.recent.popleft().summary())

    def clear(self) -> None:
        self.recent.clear()
        self.summary.clear()
        self._pending = []

    @property
    def last(self) -> Exchange | None:
        return self.recent[-1] if self.recent else None

    def last_tool_call(self) -> dict[str, Any] | None:
        for ex in reversed(self.recent):
            if ex.tool_calls:
                return ex.tool_calls[-1]
        return None

    def to_dict(self) -> dict[str, Any]:
        """The conversation as JSON-able data (to survive a restart)."""
        return {"recent": [e.__dict__ for e in self.recent], "summary": list(self.summary)}

    def load_dict(self, data: dict[str, Any]) -> None:
        """Restore what :meth:`to_dict` saved."""
        self.clear()
        for e in data.get("recent", [])[-self.max_turns :]:
            self.recent.append(Exchange(user=e.get("user", ""), reply=e.get("reply", ""), tool_calls=list(e.get("tool_calls", []))))
        self.summary.extend(data.get("summary", []))

    def messages(self) -> list[dict[str, str]]:
        """The history as chat messages (summary first, then recent exchanges)."""
        out: list[dict[str, str]] = []
        if self.summary:
            out.append({"role": "system", "content": "Earlier in this conversation:\n" + "\n".join(self.summary)})
        for ex in self.recent:
            out.append({"role": "user", "content": ex.user})
            for c in ex.tool_calls:
                out.append({"role": "assistant", "content": json.dumps({"tool": c["tool"], "arguments": c["arguments"]})})
                out.append({"role": "user", "content": "Tool result: " + json.dumps(c["result"])[:400]})
            if ex.reply:
                out.append({"role": "assistant", "content": json.dumps({"tool": "answer", "arguments": {"text": ex.reply}})})
        return out
