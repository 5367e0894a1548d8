"""Barge-in policy: is a wake word heard while the assistant answers the user talking over it, or
the assistant's own voice coming back through the microphone?

The reply can contain the wake phrase ("My name is Jarvis") and the microphone hears the
speaker. While a reply that says a wake word is playing, and for :data:`ECHO_TAIL_S` after it,
detections are ignored (and counted); otherwise a detection needs ``wake.barge_in_threshold``,
higher than the ordinary threshold, since the user is talking over speech. ``wake.barge_in =
false`` turns barge-in off.
"""

from __future__ import annotations

import logging
import time

from ..config import WakeConfig
from ..speech.wake import WakeHit
from .speaker import Speaker

__all__ = ["ECHO_TAIL_S", "BargeInPolicy"]

log = logging.getLogger(__name__)

ECHO_TAIL_S = 1.0
"""Seconds after a reply that mentions a wake word during which detections still count as its echo
(room reverberation and the sink's buffer)."""


class BargeInPolicy:
    """Decides about wake words heard while a turn is answered.

    Args:
        config: ``barge_in`` and ``barge_in_threshold``.
        speaker: The speaker whose reply might be echoing.
    """

    def __init__(self, config: WakeConfig, speaker: Speaker) -> None:
        self.config = config
        self.speaker = speaker
        self.ignored = 0
        """Detections taken for the assistant's own voice."""

    def allows(self, hit: WakeHit, *, speaking: bool) -> bool:
        """True when ``hit`` should stop the reply and start a new turn.

        Args:
            hit: The detection.
            speaking: The reply is being played now.
        """
        log.info("wake word while answering (score %.2f, speaking %s)", hit.score, speaking)
        if not self.config.barge_in or hit.score < self.config.barge_in_threshold:
            return False
        if self.speaker.mentions_wake and (speaking or time.monotonic() - self.speaker.ended_at < ECHO_TAIL_S):
            log.info("ignoring a wake word while the reply mentions it (own voice)")
            self.ignored += 1
            return False
        return True
