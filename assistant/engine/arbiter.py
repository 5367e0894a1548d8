"""The turn arbiter: every request, from any source, becomes one turn at a time.

The microphone, a Wyoming satellite, the control API, the TUI, the CLI, an MCP client and the
timers' announcements all submit a :class:`Request` naming their **origin** and the
:class:`~assistant.engine.channels.Channel` the answer (and any question back) goes to. The
arbiter runs one turn at a time — they share the home, the tools and often the speaker — and
queues the rest (at most ``max_waiting``; more are refused with :class:`Busy`). While a turn runs,
its :class:`~assistant.engine.context.TurnContext` tells the router whose conversation it is,
the tools which area "here" is, and the confirmation hook where to ask.

:meth:`TurnArbiter.interrupt` is the one way to stop: barge-in, the Esc key, a spoken "stop" and
an API cancel all cancel the running turn — its speech, the generation feeding it, and tool
waits that can be cancelled — and the turn ends with what was said so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable, Protocol

from ..bus import EventBus
from ..errors import AssistantError
from ..events import FinalTranscript, Interrupt, TurnFinished, TurnStarted
from .context import LOCAL, TurnContext, use

__all__ = ["Busy", "Request", "Responder", "TurnArbiter"]

log = logging.getLogger(__name__)


class Responder(Protocol):
    """What answers a request: the router. Yields reply text as it is generated."""

    def respond(self, text: str, *, turn: int) -> AsyncIterator[str]: ...


class Busy(AssistantError):
    """Too many requests are waiting for their turn."""


@dataclass
class Request:
    """A request for a turn.

    Attributes:
        text: What was said or typed.
        channel: Where the answer and questions back go.
        origin: Whose conversation it is (see :class:`~assistant.engine.context.TurnContext`).
        area: The origin's area, if it has its own (a satellite's room).
        source: ``"voice"`` or ``"text"`` (for the events).
        turn: A turn id the source already gave out (a voice turn starts at the wake word); None =
            a new one.
        t_ref: ``time.perf_counter()`` the turn's ``first_audio`` timing is measured from.
        say: Not a request but something to say (an announcement): said as it is, no router.
        heard: How sure the recogniser is of a spoken request's words (see
            :attr:`~assistant.engine.context.TurnContext.heard`).
    """

    text: str
    channel: "Channel"
    origin: str = LOCAL
    area: str | None = None
    source: str = "text"
    turn: int | None = None
    t_ref: float = field(default_factory=time.perf_counter)
    say: str | None = None
    heard: Callable[[], Awaitable[float]] | None = None


class Channel(Protocol):
    """Where a turn's answer goes, and how its user is asked something (see :mod:`.channels`).

    ``confirm_hook`` asks the channel's user for confirmation, or is None to leave it to the
    router's default hook.
    """

    confirm_hook: Callable[..., Awaitable[bool]] | None

    async def deliver(self, pieces: AsyncIterator[str], *, turn: int, t_ref: float) -> str: ...

    async def confirm(self, request) -> bool: ...

    async def interrupt(self) -> None: ...


async def _once(text: str) -> AsyncIterator[str]:
    yield text


class TurnArbiter:
    """Runs turns one at a time.

    Args:
        responder: The router (or anything with ``respond(text, turn=...)``).
        bus: Where turn events go.
        max_waiting: Requests that may wait for their turn; more raise :class:`Busy`.
    """

    def __init__(self, responder: Responder | None, bus: EventBus, *, max_waiting: int = 8) -> None:
        self.responder = responder
        self.bus = bus
        self.max_waiting = max_waiting
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._current: tuple[asyncio.Task, Request, int] | None = None
        self.turns = 0
        """Turns run."""

    def new_turn(self) -> int:
        """A fresh turn id (voice turns take one at the wake word, before there is a request)."""
        return next(self._ids)

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def current(self) -> Request | None:
        return self._current[1] if self._current else None

    async def submit(self, request: Request) -> str:
        """Run ``request`` when it is its turn; returns the reply text (what was said before an
        interrupt, if one came).

        Raises:
            Busy: ``max_waiting`` requests are already waiting.
        """
        if self.responder is None and request.say is None:
            raise AssistantError("this assistant has no router to answer requests")
        if self._waiting >= self.max_waiting:
            raise Busy(f"busy: {self._waiting} requests are waiting", hint="try again in a moment")
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        try:
            turn = request.turn if request.turn is not None else self.new_turn()
            request.turn = turn  # the caller can find its turn's events
            holder: dict[str, str] = {"reply": ""}
            task = asyncio.create_task(self._run(request, turn, holder), name=f"turn-{turn}")
            self._current = (task, request, turn)
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:  # the submitter went away (an API client hung up): the turn stops too
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                raise
            if not task.cancelled() and task.exception() is not None:
                log.error("turn %s failed: %r", turn, task.exception())
            return holder["reply"]
        finally:
            self._current = None
            self.turns += 1
            self._lock.release()

    async def _run(self, request: Request, turn: int, holder: dict[str, str]) -> None:
        ok = False
        if request.say is not None:
            pieces = _once(request.say)
        else:
            if request.source != "voice":
                self.bus.emit(TurnStarted(source=request.source, turn=turn))
                self.bus.emit(FinalTranscript(text=request.text, source=request.source, turn=turn))
            assert self.responder is not None
            pieces = None
        ctx = TurnContext(origin=request.origin, area=request.area, confirm=getattr(request.channel, "confirm_hook", None), turn=turn,
                          heard=request.heard)
        try:
            with use(ctx):
                if pieces is None:
                    pieces = self.responder.respond(request.text, turn=turn)
                holder["reply"] = await request.channel.deliver(pieces, turn=turn, t_ref=request.t_ref)
            ok = True
        finally:
            if request.say is None:
                self.bus.emit(TurnFinished(ok=ok, turn=turn))

    async def interrupt(self, reason: str = "user") -> bool:
        """Stop the running turn now (its speech, its generation, its tool waits). Returns whether
        there was one."""
        current = self._current
        self.bus.emit(Interrupt(reason=reason, turn=current[2] if current else None))
        if current is None:
            return False
        task, request, _turn = current
        with contextlib.suppress(Exception):
            await request.channel.interrupt()
        if not task.done():
            task.cancel()
        return True
