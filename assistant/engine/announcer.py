"""The announcer: things the assistant says unprompted (a timer going off), in turn with the rest.

An announcement waits until no turn is being answered and the device's voice loop is not in the
middle of one (never over a request being spoken), then goes through the
:class:`~.arbiter.TurnArbiter` like any request, so it cannot talk over a reply and an interrupt
stops it the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Awaitable, Callable

__all__ = ["Announcer"]

log = logging.getLogger(__name__)

POLL_S = 0.05
"""How often a waiting announcement checks whether the assistant is free, seconds."""


class Announcer:
    """Queues announcements and says each when the assistant is free.

    Args:
        say: Says a text through the arbiter (waits for its turn).
        busy: True while the assistant is busy (a turn being answered, or a user mid-request).
    """

    def __init__(self, say: Callable[[str], Awaitable[None]], busy: Callable[[], bool]) -> None:
        self._say = say
        self._busy = busy
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    def announce(self, text: str) -> None:
        """Say ``text`` when the assistant is next free (needs a running event loop)."""
        self._queue.put_nowait(text)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="announcer")

    async def _run(self) -> None:
        while not self._queue.empty():
            text = await self._queue.get()
            while self._busy():
                await asyncio.sleep(POLL_S)
            try:
                await self._say(text)
            except Exception:  # noqa: BLE001 - an announcement must never take the announcer down
                log.exception("announcement failed")

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
