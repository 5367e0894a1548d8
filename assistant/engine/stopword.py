"""A spoken "stop" while the assistant speaks, without the wake word.

While a reply plays (the listener is busy), :class:`StopSegmenter` — webrtcvad, the always-on
wake gate's cheap VAD — collects short voiced stretches. One that ends with
:data:`END_SILENCE_MS` of silence after :data:`MIN_VOICED_S`–:data:`MAX_SPAN_S` is handed to
the voice loop, which transcribes it with its Whisper and stops the reply when
:func:`is_stop_phrase` accepts the text ("stop", "cancel", "never mind", "be quiet", "that's
enough", with "please" or the wake name around it). Longer speech — the user talking on, a TV,
the assistant's own voice coming back through the microphone — is never transcribed, so the
cost is bounded: at most one transcription at a time of ≤ 1.6 s of audio (~0.1–0.2 s of Whisper
tiny.en on 2 cores).

Own-voice protection, as barge-in has for the wake word (:mod:`.bargein`): a stop phrase whose
words the reply itself is saying is taken for its echo and ignored (counted in
:attr:`StopPolicy.ignored`). ``wake.stop_phrases = false`` turns it off.
"""

from __future__ import annotations

import re

import numpy as np

from ..audio import FRAME_MS
from ..speech.vad import Vad

__all__ = ["END_SILENCE_MS", "MAX_SPAN_S", "MIN_VOICED_S", "StopSegmenter", "is_stop_phrase", "is_echo"]

MIN_VOICED_S = 0.2
"""Shorter voiced stretches (a click, a cough) are not transcribed."""
MAX_SPAN_S = 1.6
"""Longer stretches are not a stop command ("never mind, please" said slowly is ~1.3 s)."""
END_SILENCE_MS = 300
"""Silence that ends a stretch: short, so the reply stops ~0.3 s + one transcription after the word."""

_STOP = (
    r"stop|stop it|stop that|stop talking|stop now|cancel|cancel(?:l?ed)?(?: that| it)?|never ?mind|nevermind|"
    r"be quiet|quiet|shut up|enough|that's enough|that is enough|silence|shh+|hush|ok that's enough|okay that's enough"
)
_POLITE = r"(?:please|now|thanks|thank you)"


def _normalize(text: str) -> str:
    text = text.lower().replace("’", "'")
    text = re.sub(r"[^a-z' ]+", " ", text)
    return " ".join(text.split())


def is_stop_phrase(text: str, names: list[str] | tuple[str, ...] = ()) -> bool:
    """Whether a transcript is a request to stop talking, and nothing else.

    Args:
        text: What Whisper heard (any case and punctuation).
        names: Wake phrases ("hey jarvis"); they and their last word ("jarvis") may come before or after.

    >>> is_stop_phrase("Stop!"), is_stop_phrase("Jarvis, stop it please."), is_stop_phrase("Stop the music.")
    (True, True, False)
    """
    t = _normalize(text)
    if not t:
        return False
    calls = {n for phrase in names for n in (_normalize(phrase), _normalize(phrase).split()[-1] if phrase.strip() else "") if n}
    calls |= {"hey", "ok", "okay"}
    call = "|".join(sorted((re.escape(c) for c in calls), key=len, reverse=True))
    pattern = rf"^(?:(?:{call}) )*(?:{_POLITE} )?(?:{_STOP})(?: (?:{_STOP}))*(?: {_POLITE})*(?: (?:{call}))?$"
    return re.match(pattern, t) is not None


def is_echo(text: str, reply_words: set[str]) -> bool:
    """The stop phrase is the reply's own voice: every word of it is in what the reply is saying."""
    words = set(_normalize(text).split())
    return bool(words) and words <= reply_words


def reply_words(sentence: str) -> set[str]:
    """The words of a sentence the assistant speaks, normalised as :func:`is_echo` compares them."""
    return set(_normalize(sentence).split())


class StopSegmenter:
    """Cuts short voiced stretches out of 20 ms frames of 16 kHz int16 audio.

    Args:
        aggressiveness: webrtcvad's 0–3; 3 (the strictest) since the reply is playing in the room.
    """

    def __init__(self, aggressiveness: int = 3) -> None:
        self.vad = Vad(aggressiveness)
        self.reset()

    def reset(self) -> None:
        self._frames: list[np.ndarray] = []
        self._voiced = 0
        self._silence = 0
        self._too_long = False

    def process(self, frame: np.ndarray) -> np.ndarray | None:
        """Feed one frame; returns a finished short stretch (int16, 16 kHz) or None."""
        speech = self.vad.is_speech(frame)
        if not self._frames and not self._too_long and not speech:
            return None
        if speech:
            self._voiced += 1
            self._silence = 0
        else:
            self._silence += 1
        if not self._too_long:
            self._frames.append(frame)
            if len(self._frames) * FRAME_MS > MAX_SPAN_S * 1000 + END_SILENCE_MS:
                self._too_long = True  # not a stop command: wait for its end without keeping it
                self._frames = []
        if self._silence * FRAME_MS < END_SILENCE_MS:
            return None
        keep = not self._too_long and self._voiced * FRAME_MS >= MIN_VOICED_S * 1000
        audio = np.concatenate(self._frames) if keep else None
        self.reset()
        return audio
