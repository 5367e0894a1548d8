"""Who a turn is for: its origin, its area, and how to ask its user something.

The turn arbiter sets a :class:`TurnContext` for the duration of each turn (a ``contextvars``
variable, so it follows the turn into the router, the tools and their worker threads). Whatever
needs to know where a request came from reads :func:`current` instead of taking more arguments:
the router keeps one conversation per origin, the home tools prefer the origin's area ("turn on
the lights" from the kitchen satellite means the kitchen), and confirmations are asked through
the origin's own channel (the speaker it came from, the TUI dialog, the API caller).
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Awaitable, Callable

__all__ = ["LOCAL", "TurnContext", "current", "use"]

LOCAL = "local"
"""The device itself: its microphone and speaker, the TUI and the CLI (one user, one conversation)."""


@dataclass(frozen=True)
class TurnContext:
    """Where the current turn came from.

    Attributes:
        origin: ``"local"``, ``"api"``, ``"satellite:<address>"``, ``"timer"``, ``"mcp"`` …; the key
            of the conversation (and pending question) the turn belongs to.
        area: The area of the origin (a satellite's room), or None for the configured ``home.area``.
        confirm: Asks the origin's user a yes/no question (None: the router's default hook).
        turn: The turn id.
        heard: For a spoken request: how sure the recogniser is of its words, Whisper's mean
            log-probability per token of the transcript given the utterance's audio (natural log;
            0 is certain, about -0.1 to -0.3 for clearly heard words), computed when first awaited
            (9 ms median with the utterance's encoding reused, 42 ms with it
            made afresh: Whisper tiny.en, 5 espeak-ng requests, 2 cores). None: typed, or not known.
    """

    origin: str = LOCAL
    area: str | None = None
    confirm: Callable[..., Awaitable[bool]] | None = None
    turn: int = 0
    heard: Callable[[], Awaitable[float]] | None = None


_CURRENT: contextvars.ContextVar[TurnContext] = contextvars.ContextVar("assistant_turn", default=TurnContext())


def current() -> TurnContext:
    """The context of the turn being answered (the local default outside a turn)."""
    return _CURRENT.get()


class use:  # noqa: N801 - a context manager, named like the verb it is
    """``with use(ctx): ...`` runs a turn in ``ctx``."""

    def __init__(self, ctx: TurnContext) -> None:
        self.ctx = ctx
        self._token: contextvars.Token | None = None

    def __enter__(self) -> TurnContext:
        self._token = _CURRENT.set(self.ctx)
        return self.ctx

    def __exit__(self, *exc) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
