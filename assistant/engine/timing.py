"""One per-turn timing aggregator: what the API, the logs, the metrics and the TUI all read.

Every stage emits :class:`~assistant.events.StageTiming` events (and every tool call a
:class:`~assistant.events.ToolCallFinished` with its duration, counted as stage ``tool``);
:class:`TurnTimings` sums them per turn (a stage can run more than once in a turn, e.g. two LLM
steps) and keeps the finished turns' totals.
"""

from __future__ import annotations

import collections
from typing import Any, Callable

from ..events import Event, StageTiming, ToolCallFinished, TurnFinished

__all__ = ["STAGE_ORDER", "TurnTimings"]

STAGE_ORDER = ("wake", "verify", "endpoint", "turn_detect", "asr", "asr_full_window", "asr_second_pass", "asr_n_best", "fast_path", "tolerant", "llm_first_token", "llm",
               "remote", "tool", "tts_first_audio", "tts", "first_audio")
"""The order stages are shown in (the order a turn goes through them)."""


class TurnTimings:
    """Sums :class:`StageTiming` per turn; subscribe it to the bus.

    Args:
        keep: How many finished turns to remember.
    """

    def __init__(self, keep: int = 50) -> None:
        self.open: dict[int | None, dict[str, float]] = {}
        self.finished: collections.OrderedDict[int | None, dict[str, float]] = collections.OrderedDict()
        self.keep = keep
        self._listeners: list[Callable[[int | None, bool, dict[str, float]], None]] = []
        self.last: dict[str, Any] = {}
        """The last finished turn: ``{"turn", "ok", "timings_ms"}``."""
        self.turns = 0
        """Turns finished."""

    def __call__(self, e: Event) -> None:
        if isinstance(e, StageTiming):
            t = self.open.setdefault(e.turn, {})
            t[e.stage] = round(t.get(e.stage, 0.0) + e.ms, 2)
        elif isinstance(e, ToolCallFinished):
            t = self.open.setdefault(e.turn, {})
            t["tool"] = round(t.get("tool", 0.0) + e.duration_ms, 2)
        elif isinstance(e, TurnFinished):
            t = self.open.pop(e.turn, {})
            self.turns += 1
            self.finished[e.turn] = t
            while len(self.finished) > self.keep:
                self.finished.popitem(last=False)
            self.last = {"turn": e.turn, "ok": e.ok, "timings_ms": {k: round(v, 1) for k, v in t.items()}}
            for fn in list(self._listeners):
                fn(e.turn, e.ok, dict(t))

    def on_finished(self, fn: Callable[[int | None, bool, dict[str, float]], None]) -> None:
        """Call ``fn(turn, ok, {stage: ms})`` whenever a turn finishes (logs, metrics)."""
        self._listeners.append(fn)

    def of(self, turn: int | None) -> dict[str, float]:
        """A turn's stage totals so far (open or finished), ms."""
        return dict(self.open.get(turn) or self.finished.get(turn) or {})

    @staticmethod
    def ordered(timings: dict[str, float]) -> list[tuple[str, float]]:
        """(stage, ms) in the order a turn goes through them, unknown stages last."""
        known = [(k, timings[k]) for k in STAGE_ORDER if k in timings]
        return known + sorted((k, v) for k, v in timings.items() if k not in STAGE_ORDER)
