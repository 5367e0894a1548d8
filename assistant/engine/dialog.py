"""The dialog: questions the assistant asks back by voice, and how their answers are read.

A risky tool ("unlock the front door") is confirmed with a spoken yes or no, asked on the device
the request came from (the local speaker, a Wyoming satellite). The answer is parsed by a small
grammar (:func:`~assistant.controller.yesno.parse_yes_no`): "yes please", "go ahead" are yes;
"no", "don't" are no; "I'm not sure", "are you sure?" are unclear and asked about once more.
Silence, or unclear twice, is no: nothing risky happens without a clear yes.

"Which one?" questions are the router's (:mod:`assistant.controller.clarify`): they are asked as
the reply and the next utterance answers them, which the voice loop allows without the wake word
because the reply ends with a question mark.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from ..controller.yesno import Answer, parse_yes_no
from .speaker import Speaker

__all__ = ["VoiceDialog"]


class VoiceDialog:
    """Asks by voice and listens for the answer.

    Args:
        speaker: Where the question is said.
        listen: Captures the user's next utterance and returns its transcript ("" if nothing was
            said within the timeout, in seconds).
    """

    def __init__(self, speaker: Speaker, listen: Callable[[float], Awaitable[str]]) -> None:
        self.speaker = speaker
        self.listen = listen

    async def ask_yes_no(self, question: str, *, turn: int | None, timeout_s: float = 5.0) -> bool:
        """Say ``question`` and listen for yes or no; True only for a clear yes.

        An unclear answer is asked about once more ("Sorry, was that a yes or a no? …"); no answer
        within ``timeout_s`` seconds of audio, or unclear twice, is no.
        """
        for attempt in range(2):
            asked = question if attempt == 0 else f"Sorry, was that a yes or a no? {question}"
            await self.speaker.say(asked, turn=turn)
            answer = await self.listen(timeout_s)
            parsed = parse_yes_no(answer)
            if parsed is not Answer.UNCLEAR or not answer.strip():
                return parsed is Answer.YES
        return False
