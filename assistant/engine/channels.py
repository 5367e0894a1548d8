"""Channels: where a turn's answer goes and how its user is asked something.

* :class:`TextChannel` — the TUI, the CLI, MCP: the reply as text (and spoken on a speaker when
  the front end has one); confirmations through the front end's own hook (a dialog, a prompt).
* :class:`VoiceChannel` (in :mod:`.voice`) — a microphone and a speaker, the device's own or a
  Wyoming satellite's: spoken replies, questions asked and answered by voice.
* :class:`ApiChannel` — an HTTP caller: the reply as text; a question (a confirmation) is returned
  to the caller as the reply, and the caller's next request answers it.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, Callable

from ..controller.yesno import Answer, parse_yes_no
from .speaker import Speaker

__all__ = ["ApiChannel", "TextChannel"]

ConfirmFn = Callable[..., Awaitable[bool]]


async def _refuse(_request) -> bool:
    return False


class TextChannel:
    """Replies as text, optionally spoken; confirmations through a hook.

    Args:
        speaker: Speaks the reply (and emits the Speak/Reply events); its voice may be absent.
        confirm: Answers confirmations (None: refuse them — nobody can be asked).
        voice: Speak the reply when the speaker can.
    """

    def __init__(self, speaker: Speaker, confirm: ConfirmFn | None = None, *, voice: bool = True) -> None:
        self.speaker = speaker
        self._confirm = confirm or _refuse
        self.confirm_hook: ConfirmFn | None = confirm
        """None: the router's default hook answers confirmations."""
        self.voice = voice

    async def deliver(self, pieces: AsyncIterator[str], *, turn: int, t_ref: float) -> str:
        return await self.speaker.speak(pieces, turn=turn, t_ref=t_ref, voice=self.voice)

    async def confirm(self, request) -> bool:
        return await self._confirm(request)

    async def interrupt(self) -> None:
        await self.speaker.interrupt()


class ApiChannel(TextChannel):
    """An HTTP caller. A confirmation cannot wait inside one HTTP request, so it is *returned*: the
    reply so far ends with the question, :attr:`question` is set, and the turn waits (at most
    ``answer_timeout_s``) for :meth:`answer` — the caller's next request.

    Args:
        speaker: Emits the reply events (text only).
        answer_timeout_s: How long a question waits for the caller's answer before it counts as no.
    """

    def __init__(self, speaker: Speaker, *, answer_timeout_s: float = 30.0) -> None:
        super().__init__(speaker, voice=False)
        self.confirm_hook = self.confirm
        self.answer_timeout_s = answer_timeout_s
        self.question: str | None = None
        self.asked = asyncio.Event()
        self._answer: asyncio.Future[str] | None = None

    async def confirm(self, request) -> bool:
        loop = asyncio.get_running_loop()
        for attempt in range(2):
            self._answer = loop.create_future()
            self.question = request.prompt if attempt == 0 else f"Sorry, was that a yes or a no? {request.prompt}"
            self.asked.set()
            try:
                text = await asyncio.wait_for(self._answer, self.answer_timeout_s)
            except asyncio.TimeoutError:
                return False
            finally:
                self.question = None
                self._answer = None
            parsed = parse_yes_no(text)
            if parsed is not Answer.UNCLEAR:
                return parsed is Answer.YES
        return False

    @property
    def waiting_for_answer(self) -> bool:
        return self._answer is not None and not self._answer.done()

    def answer(self, text: str) -> bool:
        """The caller's answer to the question asked; False when no question is waiting."""
        if not self.waiting_for_answer:
            return False
        assert self._answer is not None
        self.asked.clear()
        self._answer.set_result(text)
        return True
