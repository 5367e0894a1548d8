"""The event bus: every stage emits typed events here; front ends, logs and tests read them."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Callable, TextIO

from .errors import AssistantError
from .events import Event, to_dict

__all__ = ["EventBus", "JsonlWriter"]

log = logging.getLogger(__name__)


class EventBus:
    """Fan-out of events to callbacks (called at once, must be quick) and asyncio queues."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Event], None]] = []
        self._queues: list[asyncio.Queue[Event]] = []
        self.history: list[Event] | None = None

    def record(self) -> list[Event]:
        """Keep every event from now on in :attr:`history` (tests, ``--events``)."""
        self.history = []
        return self.history

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` for every event; returns a function that unsubscribes."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    def queue(self, maxsize: int = 0) -> asyncio.Queue[Event]:
        """A queue that receives every event (for async consumers such as the TUI)."""
        q: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self._queues.append(q)
        return q

    def unqueue(self, q: asyncio.Queue[Event]) -> None:
        if q in self._queues:
            self._queues.remove(q)

    def emit(self, event: Event) -> None:
        if self.history is not None:
            self.history.append(event)
        for cb in list(self._callbacks):
            try:
                cb(event)
            except AssistantError:
                raise
            except Exception:  # a broken observer must not break the pipeline
                log.exception("event callback failed for %s", type(event).__name__)
        for q in self._queues:
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:
                pass


class JsonlWriter:
    """Writes every event as one JSON line (``--events FILE``), flushed per line.

    Raises:
        AssistantError: The file cannot be opened.
    """

    def __init__(self, path: Path | str | TextIO) -> None:
        if isinstance(path, (str, Path)):
            try:
                self._f: TextIO = open(path, "w", encoding="utf-8")
            except OSError as exc:
                raise AssistantError(f"cannot write events to {path}: {exc}", hint="check the folder exists and is writable") from None
            self._own = True
        else:
            self._f = path
            self._own = False

    def __call__(self, event: Event) -> None:
        try:
            self._f.write(json.dumps(to_dict(event), ensure_ascii=False) + "\n")
            self._f.flush()
        except OSError as exc:
            raise AssistantError(f"cannot write events: {exc}", hint="free some disk space") from None

    def close(self) -> None:
        if self._own:
            self._f.close()
