"""A scripted stand-in for the local LLM, for tests of plans and plugins without a model.

It plays back a list of actions (the JSON the real model would write under its grammar) and
checks each against the schema the controller asked for, so a script that the real grammar
would forbid fails loudly. It records every prompt it was given.

    llm = ScriptedLLM([
        {"tool": "home_turn_off", "arguments": {"floor": "Ground Floor", "domain": ["light"]}},
        {"tool": "timer_start", "arguments": {"minutes": 10}},
        {"tool": "done", "arguments": {}},
    ])
    controller = LocalController(llm, registry, bus, config.llm)
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

from ..controller.llm_engine import CompletionStats

__all__ = ["ScriptedLLM"]


class ScriptedLLM:
    """Plays back actions one per generation.

    Args:
        actions: The actions, in order.
        chunk: Characters per streamed piece (to exercise streaming).
    """

    name = "scripted"

    def __init__(self, actions: list[dict[str, Any]], chunk: int = 7) -> None:
        self.actions = list(actions)
        self.chunk = chunk
        self.prompts: list[str] = []
        self.schemas: list[dict[str, Any]] = []
        self.streamed: list[str] = []
        """What each generation handed out before its consumer stopped reading (or all of it)."""

    def render(self, messages: list[dict[str, str]], generation_prompt: bool = True) -> str:
        return "\n".join(f"<{m['role']}> {m['content']}" for m in messages) + ("\n<assistant>" if generation_prompt else "")

    def warm(self, prompt: str) -> CompletionStats:
        return CompletionStats(prompt_tokens=len(prompt.split()))

    def close(self) -> None:
        pass

    def speculate(self, prompt: str, *, schema: dict[str, Any] | None = None, max_tokens: int | None = None, stop_when=None) -> None:
        """Generation ahead of time changes nothing in a script (the next :meth:`stream` plays the next action)."""

    def cancel_speculation(self) -> None:
        pass

    async def stream(self, prompt: str, *, schema: dict[str, Any] | None = None, max_tokens: int | None = None) -> AsyncIterator[str | CompletionStats]:
        import jsonschema  # noqa: PLC0415

        self.prompts.append(prompt)
        self.schemas.append(schema or {})
        if not self.actions:
            raise AssertionError("the scripted LLM ran out of actions")
        action = self.actions.pop(0)
        if schema is not None:
            jsonschema.validate(action, schema)  # the real grammar would not allow anything else
        text = json.dumps(action)
        self.streamed.append("")
        for i in range(0, len(text), self.chunk):
            self.streamed[-1] += text[i : i + self.chunk]
            yield text[i : i + self.chunk]
        yield CompletionStats(prompt_tokens=len(prompt.split()), completion_tokens=len(text) // 4 + 1, first_token_ms=1.0, total_ms=2.0)
