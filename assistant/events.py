"""The assistant's event vocabulary: every stage speaks in these frozen dataclasses.

The pipeline, the TUI, the headless service's logs and metrics, ``--events`` files and the tests
all read the same stream. Events are grouped as:

* **system events** (:class:`StateChanged`, :class:`Interrupt`, :class:`ErrorEvent`) that steer or
  report on the pipeline itself;
* **speech events** (wake, speech start/end, transcripts, speak, audio out);
* **controller events** (route chosen, tool calls and results, remote calls, replies);
* **timings** (:class:`StageTiming`), one per stage per turn, in milliseconds.

Times: ``timestamp`` is wall-clock seconds since the epoch (``time.time()``) when the event was
made; ``audio_time_s`` is the position in the input audio stream in seconds (16 kHz samples /
16000), which is what a recording's events are compared against.

Every event serialises to one JSON object with :func:`to_dict` (``{"type": "wake_detected", ...}``);
audio payloads are summarised (sample count and rate), never written out.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "from_dict",
    "AssistantState",
    "AudioOut",
    "ConfirmationRequested",
    "ErrorEvent",
    "Event",
    "FinalTranscript",
    "Interrupt",
    "NoSpeech",
    "PartialTranscript",
    "RemoteCall",
    "Reply",
    "RouteDecided",
    "Speak",
    "SpeechEnded",
    "SpeechStarted",
    "StageTiming",
    "StateChanged",
    "TimerFired",
    "ToolCallFinished",
    "ToolCallStarted",
    "TurnFinished",
    "TurnStarted",
    "WakeDetected",
    "WakeRejected",
    "event_type",
    "to_dict",
]


def _now() -> float:
    return time.time()


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of all events."""

    timestamp: float = field(default_factory=_now)
    """Wall-clock time the event was made, seconds since the epoch."""

    turn: int | None = None
    """The turn (one wake → reply exchange, or one typed request) this belongs to, if any."""

    system: ClassVar[bool] = False
    """True for system events that steer the pipeline rather than carry data."""


# --------------------------------------------------------------------------- system events


class AssistantState(str, enum.Enum):
    """What the assistant is doing, as shown to the user."""

    IDLE = "idle"
    LISTENING = "listening"
    WAKE_DETECTED = "wake_detected"
    TRANSCRIBING = "transcribing"
    THINKING = "thinking"
    CALLING_TOOL = "calling_tool"
    SPEAKING = "speaking"


@dataclass(frozen=True, kw_only=True)
class StateChanged(Event):
    """The assistant moved to a new state."""

    system: ClassVar[bool] = True
    state: AssistantState
    """The new state."""


@dataclass(frozen=True, kw_only=True)
class Interrupt(Event):
    """Stop speaking now (barge-in, the stop phrase, or a key in the TUI)."""

    system: ClassVar[bool] = True
    reason: str
    """Why: ``"barge_in"``, ``"stop_phrase"``, ``"user"``, ``"shutdown"``."""


@dataclass(frozen=True, kw_only=True)
class ErrorEvent(Event):
    """A stage failed; the pipeline carries on where it can."""

    system: ClassVar[bool] = True
    stage: str
    """The stage that failed (``"asr"``, ``"tts"``, ``"tool:timer_set"``, ...)."""
    message: str
    """What went wrong."""
    hint: str = ""
    """What the user can do about it."""


# --------------------------------------------------------------------------- speech events


@dataclass(frozen=True, kw_only=True)
class WakeDetected(Event):
    """A wake word was detected (and, with the second pass on, verified)."""

    model: str
    """Wake model name, e.g. ``"hey_jarvis_v0.1"``."""
    score: float
    """Peak score of the wake model over the detection, 0..1."""
    audio_time_s: float
    """Input position at detection, seconds."""
    verified: bool | None = None
    """Result of the second pass, or None when it is off."""
    verify_text: str = ""
    """What the second pass heard in the wake window."""


@dataclass(frozen=True, kw_only=True)
class WakeRejected(Event):
    """The second pass heard no wake phrase in a first-stage detection."""

    model: str
    score: float
    audio_time_s: float
    verify_text: str
    """What the second pass heard instead."""


@dataclass(frozen=True, kw_only=True)
class SpeechStarted(Event):
    """The user started speaking after the wake word (or in a follow-up window)."""

    audio_time_s: float


@dataclass(frozen=True, kw_only=True)
class SpeechEnded(Event):
    """End of utterance (endpointing)."""

    audio_time_s: float
    """Input position where the utterance was declared over, seconds."""
    duration_s: float
    """Length of the captured utterance including pre-roll, seconds."""
    reason: str
    """``"silence"`` (trailing silence, or the turn detector's ceiling, reached), ``"unsure_pause"``
    (``endpoint.unsure_ceiling_ms`` reached after a pause the turn detector could not judge),
    ``"end_of_turn"``, ``"max_length"`` or ``"end_of_input"``."""


@dataclass(frozen=True, kw_only=True)
class NoSpeech(Event):
    """Nobody spoke within the no-speech timeout after the wake word or follow-up prompt."""

    audio_time_s: float


@dataclass(frozen=True, kw_only=True)
class PartialTranscript(Event):
    """An interim transcript while the user is still speaking."""

    text: str


@dataclass(frozen=True, kw_only=True)
class FinalTranscript(Event):
    """The transcript of a whole utterance (or a typed request)."""

    text: str
    source: str = "voice"
    """``"voice"`` or ``"text"``."""


@dataclass(frozen=True, kw_only=True)
class Speak(Event):
    """One sentence of the reply, about to be synthesised."""

    text: str


@dataclass(frozen=True, kw_only=True)
class AudioOut(Event):
    """A chunk of synthesised audio for the sink (mono int16)."""

    samples: np.ndarray = field(repr=False, compare=False)
    """Mono int16 samples."""
    sample_rate: int
    """Samples per second of ``samples``."""


# --------------------------------------------------------------------------- controller events


@dataclass(frozen=True, kw_only=True)
class TurnStarted(Event):
    """A request started (after the wake word, a follow-up, or a typed request)."""

    source: str = "voice"


@dataclass(frozen=True, kw_only=True)
class RouteDecided(Event):
    """The router chose a tier for a request."""

    route: str
    """``"fast_path"``, ``"local_llm"``, ``"remote"`` or ``"none"``."""
    reason: str
    """Why, in words (e.g. ``"template HassTurnOn matched"``)."""
    intent: str = ""
    """The fast-path intent, if one matched."""


@dataclass(frozen=True, kw_only=True)
class ToolCallStarted(Event):
    """A tool is about to run."""

    call_id: str
    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ToolCallFinished(Event):
    """A tool returned, failed, timed out or was refused."""

    call_id: str
    tool: str
    ok: bool
    result: Any = None
    """The tool's JSON-able result when ``ok``."""
    error: str = ""
    """What went wrong when not ``ok``."""
    duration_ms: float = 0.0


@dataclass(frozen=True, kw_only=True)
class ConfirmationRequested(Event):
    """A risky tool call waits for the user's yes or no."""

    call_id: str
    tool: str
    arguments: dict[str, Any]
    prompt: str
    """The question put to the user."""


@dataclass(frozen=True, kw_only=True)
class RemoteCall(Event):
    """A request left the device (see the audit log for the full payload)."""

    endpoint: str
    """The endpoint's name from the config."""
    url: str
    ok: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str = ""


@dataclass(frozen=True, kw_only=True)
class Reply(Event):
    """The whole reply text of a turn."""

    text: str
    route: str = ""


@dataclass(frozen=True, kw_only=True)
class TimerFired(Event):
    """A timer or alarm is due."""

    timer_id: str
    name: str


@dataclass(frozen=True, kw_only=True)
class TurnFinished(Event):
    """A turn is over (reply spoken, or abandoned)."""

    ok: bool = True


# --------------------------------------------------------------------------- timings


@dataclass(frozen=True, kw_only=True)
class StageTiming(Event):
    """How long one stage took in one turn.

    Stage names: ``wake`` (wake model compute for the detecting frame), ``verify`` (second pass),
    ``endpoint`` (trailing silence waited, audio ms), ``asr``, ``route``, ``fast_path``,
    ``llm_first_token``, ``llm``, ``remote``, ``tool``, ``tts_first_audio``, ``tts``,
    ``first_audio`` (end of utterance → first reply audio out).
    """

    stage: str
    ms: float
    """Milliseconds."""
    detail: str = ""


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def event_type(event: Event | type[Event]) -> str:
    """The snake_case type name of an event, e.g. ``"wake_detected"``."""
    cls = event if isinstance(event, type) else type(event)
    name = cls.__name__
    if name == "ErrorEvent":
        return "error"
    return _CAMEL.sub("_", name).lower()


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, (np.floating, np.integer)):
        return _jsonable(value.item())
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def to_dict(event: Event) -> dict[str, Any]:
    """One JSON-able dict for an event, with its ``type`` first; audio is summarised."""
    out: dict[str, Any] = {"type": event_type(event)}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, np.ndarray):
            out["num_samples"] = int(value.shape[0])
            continue
        out[f.name] = _jsonable(value)
    return out


def from_dict(data: dict[str, Any]) -> Event | None:
    """The event a :func:`to_dict` dict describes (an API client's view of the event stream).

    Unknown fields are ignored and audio (summarised by :func:`to_dict`) is not restored, so
    :class:`AudioOut` and unknown types give None.
    """
    cls = _BY_TYPE.get(str(data.get("type", "")))
    if cls is None or cls is AudioOut:
        return None
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = data[f.name]
    if cls is StateChanged:
        try:
            kwargs["state"] = AssistantState(kwargs.get("state"))
        except ValueError:
            return None
    try:
        return cls(**kwargs)
    except TypeError:
        return None


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


_BY_TYPE: dict[str, type[Event]] = {event_type(c): c for c in _subclasses(Event)}
