"""The assistant's pipeline: wires the processors of :mod:`assistant.engine` together.

::

    source ─▶ VoiceLoop (Listener: VAD gate · wake · endpointing; WakeVerifier)
                 └─▶ Recognizer (speculative · final · second pass) ─▶ Request(origin, VoiceChannel)
    TUI / CLI / API / MCP ─▶ Request(origin, TextChannel | ApiChannel) ┐
    timers ─▶ Announcer ─▶ Request(say=…) ─────────────────────────────┤
                                                                       ▼
                                              TurnArbiter (one turn at a time; TurnContext)
                                                 └─▶ Router (responder) ─▶ Channel.deliver ─▶ Speaker (TTS · sink)
    interrupt (barge-in · Esc · "stop" · API cancel) ─▶ TurnArbiter.interrupt ─▶ cancels the turn and its speech

This module holds no behaviour of its own: see ``docs/architecture.md`` for the picture, and each
processor's module for what it does. A :class:`Pipeline` is one device's set: a speaker, a voice
loop over its microphone (when it has a listener) and the arbiter every source shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable

from .audio.io import AudioSink, AudioSource
from .bus import EventBus
from .config import Config
from .controller.yesno import Answer, parse_yes_no
from .engine.announcer import Announcer
from .engine.arbiter import Request, Responder, TurnArbiter
from .engine.channels import TextChannel
from .engine.context import LOCAL
from .engine.recognizer import Recognizer, Rescorer
from .engine.speaker import Speaker
from .engine.voice import VoiceLoop
from .errors import AssistantError
from .events import AssistantState, StateChanged
from .speech.asr import SpeechRecognizer
from .speech.listener import Listener
from .speech.tts import SpeechSynthesizer
from .speech.wake import WakeVerifier, phrase_from_model_name

__all__ = ["Pipeline", "Responder", "is_yes"]


def is_yes(text: str) -> bool:
    """The whole answer is a yes ("yes please", "go ahead"; not "absolutely not", "are you sure?")."""
    return parse_yes_no(text) is Answer.YES


@dataclass
class Pipeline:
    """One device's processors, wired.

    Args:
        config: The configuration.
        listener: Wake word + endpointing state machine (None: typed requests only).
        asr: Speech recognizer, or None to stop at wake detections.
        tts: Speech synthesizer, or None for text-only replies.
        responder: Answers requests (the router), or None to only transcribe.
        sink: Where reply audio goes, or None.
        bus: Event bus (a new one by default).
        verifier: Second-pass wake verification, or None.
        rescorer: Second-pass recognition for transcripts nobody understood
            (:class:`~assistant.controller.rescore.TranscriptRescorer`), or None.
        arbiter: The turn arbiter to share (a new one by default).
        reopen_sink: Opens the speaker again when it stops playing.
    """

    config: Config
    listener: Listener | None
    asr: SpeechRecognizer | None = None
    tts: SpeechSynthesizer | None = None
    responder: Responder | None = None
    sink: AudioSink | None = None
    bus: EventBus = field(default_factory=EventBus)
    verifier: WakeVerifier | None = None
    rescorer: Rescorer | None = None
    arbiter: TurnArbiter | None = None
    reopen_sink: Callable[[], Awaitable[AudioSink | None]] | None = None

    def __post_init__(self) -> None:
        self.wake_phrases = [phrase_from_model_name(n) for n in self.config.wake.models]
        self.arbiter = self.arbiter or TurnArbiter(self.responder, self.bus)
        self.speaker = Speaker(self.tts, self.sink, self.bus, self.config.tts, self.wake_phrases, set_state=self._set_state,
                               reopen=self.reopen_sink)
        self.recognizer = Recognizer(self.asr, self.config.asr, self.bus, self.wake_phrases, self.rescorer) if self.asr is not None else None
        self.voice = (VoiceLoop(self.config, self.listener, recognizer=self.recognizer, speaker=self.speaker, arbiter=self.arbiter, bus=self.bus,
                                verifier=self.verifier) if self.listener is not None else None)
        self.announcer = Announcer(self.say, self._busy)
        self._state = AssistantState.IDLE
        self._muted = False

    # ------------------------------------------------------------------ what front ends read

    @property
    def state(self) -> AssistantState:
        return self.voice.state if self.voice is not None else self._state

    def _set_state(self, state: AssistantState, turn: int | None = None) -> None:
        if self.voice is not None:
            self.voice.set_state(state, turn)
        elif state is not self._state:
            self._state = state
            self.bus.emit(StateChanged(state=state, turn=turn))

    @property
    def muted(self) -> bool:
        return self.voice.muted if self.voice is not None else self._muted

    @muted.setter
    def muted(self, value: bool) -> None:
        if self.voice is not None:
            self.voice.muted = value
        self._muted = value

    @property
    def level_dbfs(self) -> float:
        return self.voice.level_dbfs if self.voice is not None else -100.0

    @property
    def ignored_barge_ins(self) -> int:
        return self.voice.ignored_barge_ins if self.voice is not None else 0

    @property
    def realtime(self) -> bool:
        return self.voice.realtime if self.voice is not None else False

    def set_sink(self, sink: AudioSink | None) -> None:
        """Play replies on another sink from now on."""
        self.sink = sink
        self.speaker.sink = sink

    # ------------------------------------------------------------------ sources

    def satellite(self, listener: Listener, sink: AudioSink | None, *, origin: str, area: str | None = None, answer: bool = True,
                  speak: bool = True) -> VoiceLoop:
        """A voice loop for another device's microphone and speaker (a Wyoming satellite).

        It shares this device's speech models, wake verification, router and arbiter — so a
        satellite gets the same endpointing, speculative recognition, barge-in and questions back,
        asked on the satellite — with its own conversation (``origin``) and room (``area``).

        Args:
            listener: The satellite's own wake stage and endpointer (wake models keep per-stream state).
            sink: The satellite's speaker, or None.
            origin: The satellite's conversation (e.g. ``"satellite:192.168.1.40"``).
            area: The satellite's room: "turn on the light" means the light there.
            answer: Answer requests (False: stop at the transcript).
            speak: Speak replies (False: text only).
        """
        speaker = Speaker(self.tts if speak else None, sink, self.bus, self.config.tts, self.wake_phrases)
        recognizer = Recognizer(self.asr, self.config.asr, self.bus, self.wake_phrases, self.rescorer) if self.asr is not None else None
        loop = VoiceLoop(self.config, listener, recognizer=recognizer, speaker=speaker, arbiter=self.arbiter, bus=self.bus,
                         verifier=self.verifier, origin=origin, area=area, announce_state=False)
        speaker.set_state = loop.set_state
        loop.answers = answer
        loop.source_name = "satellite"
        return loop

    async def run(self, source: AudioSource) -> None:
        """Listen to ``source`` until it ends (a file) or the task is cancelled (a microphone)."""
        if self.voice is None:
            raise AssistantError("this pipeline has no listener (wake word and endpointing)")
        await self.voice.run(source)

    async def handle_text(self, text: str, *, speak: bool = True, origin: str = LOCAL, confirm: Callable[..., Awaitable[bool]] | None = None,
                          source: str = "text") -> str:
        """Answer a typed request through the arbiter (spoken too, if ``speak``).

        Args:
            text: The request.
            speak: Speak the reply on this device's speaker.
            origin: Whose conversation it is.
            confirm: How to ask for confirmation (a TUI dialog, a CLI prompt); default: by voice
                when this device listens, else refuse.

        Returns:
            The whole reply text.

        Raises:
            Busy: Too many requests are waiting.
        """
        channel = TextChannel(self.speaker, confirm or (self._voice_confirm if self.voice is not None else None), voice=speak)
        reply = await self.arbiter.submit(Request(text=text, channel=channel, origin=origin, source=source))
        self._set_state(AssistantState.IDLE)
        return reply

    async def _voice_confirm(self, request) -> bool:
        return await self.ask_yes_no(request.prompt)

    async def say(self, text: str) -> None:
        """Speak ``text`` (no router involved), in turn with everything else."""
        await self.arbiter.submit(Request(text="", channel=TextChannel(self.speaker), say=text))
        self._set_state(AssistantState.IDLE)

    async def ask_yes_no(self, question: str, *, turn: int | None = None, timeout_s: float = 5.0) -> bool:
        """Ask by voice (see :meth:`~assistant.engine.dialog.VoiceDialog.ask_yes_no`); False when this
        device does not listen."""
        if self.voice is None or self.voice.recognizer is None or not self.voice.listening:
            return False
        return await self.voice.dialog.ask_yes_no(question, turn=turn if turn is not None else self.voice.current_turn, timeout_s=timeout_s)

    async def listen_for_reply(self, timeout_s: float = 5.0) -> str:
        return await self.voice.listen_for_reply(timeout_s) if self.voice is not None else ""

    # ------------------------------------------------------------------ announcements and stopping

    def announce(self, text: str) -> None:
        """Speak ``text`` when the assistant is next free (a timer going off)."""
        self.announcer.announce(text)

    def _busy(self) -> bool:
        return (self.voice is not None and not self.voice.idle) or self.arbiter.busy

    async def interrupt(self, reason: str = "user") -> bool:
        """Stop speaking at once and drop the turn in progress (barge-in, stop key, API cancel).
        Returns whether a turn was under way."""
        stopped = await self.arbiter.interrupt(reason)
        if self.voice is not None:
            await self.voice.cancel_turn()
        self._set_state(AssistantState.IDLE)
        return stopped

    async def close(self) -> None:
        await self.announcer.close()

