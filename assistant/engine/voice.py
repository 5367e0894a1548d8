"""A voice loop: one microphone (the device's, or a Wyoming satellite's) and its speaker.

Frames from the source go through the synchronous :class:`~assistant.speech.listener.Listener`
(VAD gate, wake word, endpointing). A wake word starts a turn (verified by the second pass when
that is on); the utterance that follows is transcribed by the :class:`~.recognizer.Recognizer`
and submitted to the :class:`~.arbiter.TurnArbiter` with this loop's :class:`VoiceChannel`, so the
answer is spoken on this loop's speaker and questions are asked and answered here by voice.

With a **real-time** source (a microphone, a satellite, a file paced at speech speed) frames keep
flowing while a turn is answered, so the wake word can barge in. With a file read as fast as
possible, each turn is answered before more audio is read, as if answering took no time.

After a reply the loop listens for a follow-up without the wake word only when invited — the
reply asked something ("Which one: …?", "Do you want me to …?") — or when the user turned that on
(``endpoint.follow_up = "always"``); otherwise a TV or a second person after every command would
trigger it. Whether a wake word heard during a reply stops it is the
:class:`~.bargein.BargeInPolicy`'s call; questions asked back are the :class:`~.dialog.VoiceDialog`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable

import numpy as np

from ..audio.io import SAMPLE_RATE, AudioSource
from ..bus import EventBus
from ..config import Config
from ..events import (
    AssistantState,
    ErrorEvent,
    FinalTranscript,
    NoSpeech,
    SpeechEnded,
    SpeechStarted,
    StageTiming,
    StateChanged,
    TurnFinished,
    TurnStarted,
    WakeDetected,
    WakeRejected,
)
from ..speech.asr import FULL_WINDOW_S
from ..speech.endpoint import NoSpeechTimeout, Pause, SpeechStart, UtteranceEnd
from ..speech.listener import BargeIn, Listener, ListenerMode, ShortUtterance
from ..speech.turn import TurnDetector
from ..speech.wake import WakeHit, WakeVerifier, phrase_from_model_name, wake_window
from .arbiter import Request, TurnArbiter
from .bargein import BargeInPolicy
from .context import LOCAL, TurnContext, use
from .dialog import VoiceDialog
from .endofturn import EndOfTurn
from .recognizer import Recognizer
from .speaker import Speaker
from .stopword import StopSegmenter, is_echo, is_stop_phrase

__all__ = ["VoiceChannel", "VoiceLoop"]

log = logging.getLogger(__name__)



def _dbfs(frame: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(frame.astype(np.float32) ** 2))) if frame.size else 0.0
    return 20.0 * np.log10(max(rms, 1.0) / 32768.0)


@dataclass
class _Turn:
    id: int
    wake_hit: WakeHit | None = None
    verify: asyncio.Task | None = None
    started_position: int = 0
    follow_up: bool = False


class VoiceChannel:
    """A voice loop as a channel: spoken replies, questions asked and answered by voice."""

    def __init__(self, loop: "VoiceLoop") -> None:
        self.loop = loop
        self.confirm_hook = self.confirm

    async def deliver(self, pieces: AsyncIterator[str], *, turn: int, t_ref: float) -> str:
        return await self.loop.speaker.speak(pieces, turn=turn, t_ref=t_ref)

    async def confirm(self, request) -> bool:
        return await self.loop.dialog.ask_yes_no(request.prompt, turn=self.loop.current_turn)

    async def interrupt(self) -> None:
        await self.loop.speaker.interrupt()


class VoiceLoop:
    """Listens on one source and speaks on one speaker.

    Args:
        config: Endpointing, wake, TTS earcon and follow-up settings.
        listener: VAD gate + wake word + endpointing.
        recognizer: Speech → text (None: stop at wake detections and utterance ends).
        speaker: Where this loop's replies are spoken.
        arbiter: Runs the turns.
        bus: Event bus.
        verifier: Second-pass wake verification, or None.
        origin: Whose conversation this loop's turns belong to.
        area: The area of this loop's microphone, if it has its own (a satellite's room).
        announce_state: Emit StateChanged events (the device's own loop; a satellite's state is its own).
    """

    def __init__(self, config: Config, listener: Listener, *, recognizer: Recognizer | None, speaker: Speaker, arbiter: TurnArbiter,
                 bus: EventBus, verifier: WakeVerifier | None = None, origin: str = LOCAL, area: str | None = None,
                 announce_state: bool = True) -> None:
        self.config = config
        self.listener = listener
        self.recognizer = recognizer
        self.speaker = speaker
        self.arbiter = arbiter
        self.bus = bus
        self.verifier = verifier
        self.origin = origin
        self.area = area
        self.announce_state = announce_state
        self.answers = True
        """Answer requests (False: stop at the transcript, as a Wyoming run ending at ``asr``)."""
        self.channel = VoiceChannel(self)
        self.dialog = VoiceDialog(speaker, self.listen_for_reply)
        self.source_name = "voice"
        """What turns of this loop are called in TurnStarted events ("voice", "satellite")."""
        self.turn_ids: list[int] = []
        """Ids of the turns this loop started (a satellite connection reads its own turns' events)."""
        self.wake_phrases = [phrase_from_model_name(n) for n in config.wake.models]
        self.realtime = False
        self.state = AssistantState.IDLE
        self.muted = False
        self.level_dbfs = -100.0
        """Level of the last input frame, dBFS (for level meters)."""
        self.barge_in = BargeInPolicy(config.wake, speaker)
        if config.wake.stop_phrases and recognizer is not None and listener.short_utterances is None:
            listener.short_utterances = StopSegmenter()
        self.stop_echoes = 0
        """Stop phrases heard during a reply that were taken for its own voice (its words)."""
        self._stop_check: asyncio.Task | None = None
        self.end_of_turn: EndOfTurn | None = None
        """Asks the turn detector at pauses (None: the endpointer's fixed trailing silence ends turns)."""
        if listener.endpointer.detect_turns:
            rescorer = recognizer.rescorer if recognizer is not None else None
            detector = TurnDetector(listener.turn_model, config.endpoint.turn_threshold, rescorer.understands if rescorer is not None else None,
                                    text_model=listener.text_model, min_completeness=config.endpoint.min_completeness,
                                    end_completeness=config.endpoint.end_completeness,
                                    alternative_margin=config.endpoint.unfinished_alternative_margin,
                                    whole_command=rescorer.matches_template if rescorer is not None else None,
                                    bare_target=rescorer.bare_target if rescorer is not None else None,
                                    loose_ending=rescorer.loose_ending if rescorer is not None else None,
                                    unclear=rescorer.worth_hearing_again if rescorer is not None else None)
            self.end_of_turn = EndOfTurn(listener, detector, recognizer, bus, words_decide=config.endpoint.words_decide,
                                         template_pause_ms=config.endpoint.template_pause_ms, prepare=self._prepare, unprepare=self._unprepare,
                                         prepared_reply=self._prepared_reply)
        self._prefetch_task: asyncio.Task | None = None
        """Synthesising the prepared reply's first sentence ahead (:meth:`_prefetch`)."""
        self._turn: _Turn | None = None
        self._turn_task: asyncio.Task | None = None
        self._answering: _Turn | None = None
        self._frames: AsyncIterator[np.ndarray] | None = None
        self._reply_waiter: asyncio.Future | None = None
        self._watched: asyncio.Future | None = None
        """The speculation whose completion :meth:`_early_when_heard` is called on."""
        self._early_task: asyncio.Task | None = None

    # ------------------------------------------------------------------ state

    def set_state(self, state: AssistantState, turn: int | None = None) -> None:
        if state is not self.state:
            self.state = state
            if self.announce_state:
                self.bus.emit(StateChanged(state=state, turn=turn))

    @property
    def idle(self) -> bool:
        """No turn of this loop is under way (the announcer waits for this)."""
        return self._turn is None and self._answering is None and self.state not in (
            AssistantState.SPEAKING, AssistantState.THINKING, AssistantState.TRANSCRIBING)

    def _timing(self, stage: str, ms: float, turn: int | None, detail: str = "") -> None:
        self.bus.emit(StageTiming(stage=stage, ms=round(ms, 2), turn=turn, detail=detail))

    @property
    def ignored_barge_ins(self) -> int:
        """Wake detections during a reply that were taken for the assistant's own voice."""
        return self.barge_in.ignored

    @property
    def listening(self) -> bool:
        """The loop is running over a source (it can hear an answer to a question)."""
        return self._frames is not None

    @property
    def current_turn(self) -> int | None:
        """The id of this loop's turn in progress, if any."""
        return self._turn.id if self._turn else None

    @property
    def waiting_for_wake(self) -> bool:
        """Nothing under way: no turn, no follow-up capture, listening for the wake word only."""
        task = self._turn_task
        return (self.idle and self.listener.mode is ListenerMode.WAKE and (task is None or task.done())
                and self.state is AssistantState.IDLE)

    def _new_turn(self, **kw) -> _Turn:
        self._turn = _Turn(id=self.arbiter.new_turn(), **kw)
        self.turn_ids.append(self._turn.id)
        return self._turn

    def start_listening(self) -> int:
        """Start a turn without the wake word (a satellite that detected it itself, a push-to-talk
        button): the next utterance is the request. Returns the turn id."""
        turn = self._new_turn(started_position=self.listener.position)
        self.bus.emit(TurnStarted(source=self.source_name, turn=turn.id))
        self.listener.capture()
        if self.recognizer is not None:
            self.recognizer.reset()
        self.set_state(AssistantState.LISTENING, turn.id)
        return turn.id

    # ------------------------------------------------------------------ the frame loop

    async def run(self, source: AudioSource, *, listen_now: bool = False) -> None:
        """Listen to ``source`` until it ends (a file) or the task is cancelled (a microphone).

        Args:
            source: 20 ms frames of 16 kHz mono int16 audio.
            listen_now: The request starts at once, without the wake word (see :meth:`start_listening`).
        """
        self.realtime = bool(getattr(source, "realtime", False))
        self.set_state(AssistantState.IDLE)
        if listen_now:
            self.start_listening()
        self._frames = source.frames()
        try:
            async for frame in self._frames:
                if self.muted:
                    continue
                self.level_dbfs = _dbfs(frame)
                out = self.listener.process(frame)
                if self.recognizer is not None and self.listener.mode is ListenerMode.CAPTURE:
                    turn_id = self._turn.id if self._turn else None
                    self.recognizer.on_frame(self.listener.endpointer, realtime=self.realtime, turn=turn_id)
                    if out is None and self.end_of_turn is not None and self.realtime:
                        out = self.end_of_turn.early(turn_id)  # words the templates match: the turn ends before pause_ms
                        self._watch_speculation(turn_id)
                    if out is None and self.end_of_turn is not None:
                        self.end_of_turn.on_frame()  # speech again after a prepared pause: stop what was prepared
                if out is not None:
                    await self._on_listener(out)
            out = self.listener.finish()
            if out is not None:
                await self._on_listener(out)
            if self._turn_task is not None:
                await self._turn_task
        finally:
            await self.cancel_turn()
            await self.speaker.drain()
            self._frames = None

    def _watch_speculation(self, turn_id: int | None) -> None:
        """Have a new speculative transcript read by :meth:`EndOfTurn.early` the moment it is made,
        not at the next frame: recognition ends between frames, and the loop then waits for the
        next 20 ms frame and its processing (20-30 ms, seen in turn timelines on 2 cores)."""
        spec = self.recognizer.speculation() if self.recognizer is not None else None
        if spec is None or spec is self._watched or spec.done():
            return
        self._watched = spec
        spec.add_done_callback(lambda _done: self._early_when_heard(turn_id))

    def _early_when_heard(self, turn_id: int | None) -> None:
        if self.end_of_turn is None or self.listener.mode is not ListenerMode.CAPTURE or (self._turn.id if self._turn else None) != turn_id:
            return
        out = self.end_of_turn.early(turn_id)
        if out is not None:
            self._early_task = asyncio.create_task(self._on_listener(out), name=f"early-end-{turn_id}")

    async def _on_listener(self, out) -> None:
        if isinstance(out, Pause):
            await self._on_pause(out)
            return
        if isinstance(out, (UtteranceEnd, NoSpeechTimeout)) and self.end_of_turn is not None:
            self.end_of_turn.cancel()
            self.end_of_turn.hand_over(out)
        waiter = self._reply_waiter
        if waiter is not None and not waiter.done() and isinstance(out, (UtteranceEnd, NoSpeechTimeout)):
            waiter.set_result(out)  # the answer to a question the assistant asked (real-time mode)
            return
        if isinstance(out, WakeHit):
            await self._on_wake(out)
        elif isinstance(out, BargeIn):
            if not self.barge_in.allows(out.hit, speaking=self.state is AssistantState.SPEAKING):
                return
            await self.arbiter.interrupt("barge_in")
            await self.cancel_turn()
            self.listener.capture()
            await self._on_wake(out.hit)
        elif isinstance(out, ShortUtterance):
            if self.state is AssistantState.SPEAKING and self.recognizer is not None and (self._stop_check is None or self._stop_check.done()):
                self._stop_check = asyncio.create_task(self._check_stop(out.audio), name="stop-phrase")
        elif isinstance(out, SpeechStart):
            turn = self._turn or self._new_turn(follow_up=True, started_position=self.listener.position)
            self.bus.emit(SpeechStarted(audio_time_s=round(out.audio_time_s, 3), turn=turn.id))
        elif isinstance(out, UtteranceEnd):
            turn = self._turn or self._new_turn()
            self.bus.emit(SpeechEnded(audio_time_s=round(out.audio_time_s, 3), duration_s=round(out.duration_s, 3), reason=out.reason, turn=turn.id))
            self._timing("endpoint", out.trailing_silence_ms, turn.id, detail="trailing silence, ms of audio")
            if self.realtime:
                self._turn_task = asyncio.create_task(self._answer(turn, out, time.perf_counter()), name=f"voice-turn-{turn.id}")
            else:
                await self._answer(turn, out, time.perf_counter())
        elif isinstance(out, NoSpeechTimeout):
            turn = self._turn
            self.bus.emit(NoSpeech(audio_time_s=round(out.audio_time_s, 3), turn=turn.id if turn else None))
            if turn is not None and not turn.follow_up:
                self.bus.emit(TurnFinished(ok=False, turn=turn.id))
            self._turn = None
            self.set_state(AssistantState.IDLE)

    async def _check_stop(self, audio: np.ndarray) -> None:
        """A short utterance during a reply: stop the reply if it says "stop" (see :mod:`.stopword`)."""
        assert self.recognizer is not None
        t0 = time.perf_counter()
        # the full window: a short one hears Piper's "Stop talking." as "Start talking."
        text = (await asyncio.to_thread(self.recognizer.asr.transcribe, audio, window_s=FULL_WINDOW_S)).text
        self._timing("stop_phrase_asr", (time.perf_counter() - t0) * 1000.0, self._answering.id if self._answering else None, detail=text[:60])
        if not is_stop_phrase(text, self.wake_phrases) or self.state is not AssistantState.SPEAKING:
            return
        if is_echo(text, self.speaker.reply_words):
            self.stop_echoes += 1
            log.info("ignoring %r during a reply that says it (own voice)", text)
            return
        log.info("spoken stop during the reply: %r", text)
        await self.arbiter.interrupt("stop")
        await self.cancel_turn()

    def _prepare(self, text: str) -> bool:
        """The turn will probably end with ``text``: let the responder start on it (see
        :meth:`~assistant.controller.router.Router.prepare`), in this loop's turn context."""
        prepare = getattr(self.arbiter.responder, "prepare", None)
        if prepare is None or not self.answers or self.arbiter.busy:
            return False
        with use(TurnContext(origin=self.origin, area=self.area, turn=self.current_turn)):
            if not prepare(text):
                return False
        sentence = getattr(self.arbiter.responder, "prepared_sentence", lambda: None)()
        if sentence is not None and self.speaker.can_speak and self.config.tts.prefetch:
            self._prefetch_task = asyncio.create_task(self._prefetch(sentence, self.current_turn), name="tts-prefetch")
        return True

    async def _prefetch(self, sentence: Awaitable[str | None], turn: int | None) -> None:
        """Speculative synthesis: once the prepared reply's first sentence is made, synthesise it
        into the voice's cache (:meth:`~assistant.speech.tts.SpeechSynthesizer.prefetch`), so that
        when the turn ends and the reply is taken over, its first sound needs no synthesis. Its
        generation and the unsure pause's wait overlap this; a user who goes on cancels it (a
        synthesis already running finishes into the cache, ~0.1 s of one core)."""
        text = await sentence
        if not text or self.speaker.tts is None:
            return
        t0 = time.perf_counter()
        try:
            made = await asyncio.to_thread(self.speaker.tts.prefetch, text)
        except Exception as exc:  # noqa: BLE001 - the reply's own synthesis will try again and report it
            log.warning("synthesising the prepared reply ahead failed: %s: %s", type(exc).__name__, exc)
            return
        if made:
            self.bus.emit(StageTiming(stage="tts_prefetch", ms=round((time.perf_counter() - t0) * 1000.0, 2), turn=turn,
                                      detail=f"the prepared reply's first words synthesised ahead: {text[:60]!r}"))

    def _prepared_reply(self) -> Awaitable | None:
        """The prepared generation's completion (:meth:`~assistant.controller.router.Router.prepared_reply`), or None."""
        prepared = getattr(self.arbiter.responder, "prepared_reply", None)
        return prepared() if prepared is not None else None

    def _unprepare(self) -> None:
        if self._prefetch_task is not None:
            self._prefetch_task.cancel()
            self._prefetch_task = None
        unprepare = getattr(self.arbiter.responder, "unprepare", None)
        if unprepare is not None:
            unprepare()

    async def _on_pause(self, pause: Pause) -> None:
        """A short pause mid-utterance: ask the turn detector (in the background for a real-time
        source, whose frames keep coming; in order for a file read as fast as possible)."""
        if self.end_of_turn is None:
            return
        turn = self._turn.id if self._turn else None
        if self.realtime:
            self.end_of_turn.start(pause, turn, self._on_listener)
            return
        out = await self.end_of_turn.at_pause(pause, turn)
        if out is not None:
            await self._on_listener(out)

    async def _on_wake(self, hit: WakeHit) -> None:
        turn = self._new_turn(wake_hit=hit, started_position=self.listener.position)
        self.bus.emit(TurnStarted(source=self.source_name, turn=turn.id))
        self._timing("wake", hit.compute_ms, turn.id, detail=hit.model)
        if self.recognizer is not None:
            self.recognizer.reset()
        if self.verifier is None:
            self.bus.emit(WakeDetected(model=hit.model, score=round(hit.score, 4), audio_time_s=round(hit.audio_time_s, 3), turn=turn.id))
            self.set_state(AssistantState.LISTENING, turn.id)
            return
        window = wake_window(self.listener.ring, self.verifier.config.window_s)
        turn.verify = asyncio.create_task(self._verify(turn, hit, window))
        if not self.realtime:
            await turn.verify

    async def _verify(self, turn: _Turn, hit: WakeHit, window: np.ndarray) -> bool:
        assert self.verifier is not None
        ok, heard, ms = await asyncio.to_thread(self.verifier.verify, window)
        self._timing("verify", ms, turn.id, detail=heard)
        if ok:
            self.bus.emit(WakeDetected(model=hit.model, score=round(hit.score, 4), audio_time_s=round(hit.audio_time_s, 3), verified=True,
                                       verify_text=heard, turn=turn.id))
            self.set_state(AssistantState.LISTENING, turn.id)
            return True
        self.bus.emit(WakeRejected(model=hit.model, score=round(hit.score, 4), audio_time_s=round(hit.audio_time_s, 3), verify_text=heard, turn=turn.id))
        if self._turn is turn:
            self._turn = None
            if self.listener.mode is ListenerMode.CAPTURE:
                self.listener.idle()
        self.set_state(AssistantState.IDLE)
        return False

    # ------------------------------------------------------------------ a turn

    async def _answer(self, turn: _Turn, utt: UtteranceEnd, t_end: float) -> None:
        self._answering = turn
        finished = False
        ack: asyncio.Task | None = None
        try:
            if turn.verify is not None and not await turn.verify:
                finished = True
                return
            if self.speaker.can_speak and self.config.tts.earcon:
                if self.realtime and self.config.tts.earcon_after_ms:
                    ack = asyncio.create_task(self.speaker.earcon(self.config.tts.earcon_after_ms / 1000.0))  # only if the reply is slow
                else:
                    await self.speaker.earcon()
            self.set_state(AssistantState.TRANSCRIBING, turn.id)
            if self.recognizer is None:
                self._finish_turn(turn, ok=True)
                finished = True
                return
            try:
                text, raw = await self.recognizer.final(utt, turn.id)
            except Exception as exc:  # noqa: BLE001 - reported, and the loop goes on
                self.bus.emit(ErrorEvent(stage="asr", message=str(exc), turn=turn.id))
                self._finish_turn(turn, ok=False)
                finished = True
                return
            self.bus.emit(FinalTranscript(text=text, turn=turn.id))
            if not text:
                finished = await self._nothing_said(turn, utt, raw.text)
                return
            if self.arbiter.responder is None or not self.answers:
                self._finish_turn(turn, ok=True)
                finished = True
                return
            self.set_state(AssistantState.THINKING, turn.id)
            reply = await self.arbiter.submit(Request(text=text, channel=self.channel, origin=self.origin, area=self.area, source="voice",
                                                      turn=turn.id, t_ref=t_end, heard=self.recognizer.heard(utt.audio, text, raw)))
            end_reply = getattr(self.speaker.sink, "end_reply", None)
            if end_reply is not None:
                await end_reply()
            self._finish_turn(turn, ok=True, follow_up=self._invites_follow_up(reply), announce=False)
            finished = True
        finally:
            if ack is not None and not ack.done():
                ack.cancel()
            if not finished and self._answering is turn:
                # interrupted, or an error escaped: the listener must never stay busy
                self._answering = None
                if self._turn is turn:
                    self._turn = None
                if self.listener.mode is ListenerMode.BUSY:
                    self.listener.idle()
                    self.set_state(AssistantState.IDLE)

    async def _nothing_said(self, turn: _Turn, utt: UtteranceEnd, raw: str) -> bool:
        """A cough, a click, or just the wake phrase: keep listening for the request if time is left."""
        if raw.strip():
            turn.started_position = int(utt.audio_time_s * SAMPLE_RATE)  # "hey jarvis" alone: a fresh wait
        elapsed = (self.listener.position - turn.started_position) / SAMPLE_RATE
        left = self.config.endpoint.no_speech_timeout_s - elapsed
        if left > 0.3:
            self._answering = None
            self.set_state(AssistantState.LISTENING, turn.id)
            out = self.listener.rearm(int(utt.audio_time_s * SAMPLE_RATE), left)
            if out is not None and not isinstance(out, SpeechStart):
                await self._on_listener(out)
            return True
        self._finish_turn(turn, ok=False)
        return True

    def _invites_follow_up(self, reply: str) -> bool:
        """Listen again without the wake word? Only when the reply asked something, or the user
        turned follow-ups on for every reply."""
        mode = self.config.endpoint.follow_up
        if mode == "never" or self.config.endpoint.follow_up_s <= 0:
            return False
        return mode == "always" or reply.rstrip().endswith("?")

    def _finish_turn(self, turn: _Turn, *, ok: bool, follow_up: bool = False, announce: bool = True) -> None:
        if self._answering is turn:
            self._answering = None
        if announce:
            self.bus.emit(TurnFinished(ok=ok, turn=turn.id))
        if self._turn is turn:
            self._turn = None
        if follow_up:
            self.listener.capture(self.config.endpoint.follow_up_s)
            self.set_state(AssistantState.LISTENING, None)
        else:
            self.listener.idle()
            self.set_state(AssistantState.IDLE)

    async def cancel_turn(self) -> None:
        """Stop this loop's turn in progress (after an interrupt) and listen for the wake word again."""
        task = self._turn_task
        self._turn_task = None
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        answering, self._answering = self._answering, None
        if answering is not None and self._turn is answering:
            self._turn = None
        if self.listener.mode is ListenerMode.BUSY:
            self.listener.idle()
        if answering is not None:
            self.set_state(AssistantState.IDLE)

    # ------------------------------------------------------------------ asking

    async def listen_for_reply(self, timeout_s: float = 5.0) -> str:
        """Capture the user's next utterance (after a question) and return its transcript ("" if none).

        With a real-time source the frame loop keeps running and hands the utterance over; with a
        file read as fast as possible, the following audio is read here, in order.
        """
        if self.recognizer is None or self._frames is None:
            return ""
        self.listener.capture(timeout_s)
        self.set_state(AssistantState.LISTENING)
        out = None
        if self.realtime:
            self._reply_waiter = asyncio.get_running_loop().create_future()
            try:
                out = await asyncio.wait_for(self._reply_waiter, timeout_s + self.config.endpoint.max_utterance_s)
            except asyncio.TimeoutError:
                out = None
            finally:
                self._reply_waiter = None
        else:
            async for frame in self._frames:
                res = self.listener.process(frame)
                if isinstance(res, Pause) and self.end_of_turn is not None:
                    res = await self.end_of_turn.at_pause(res, self.current_turn)
                if isinstance(res, (UtteranceEnd, NoSpeechTimeout)):
                    out = res
                    break
            else:
                out = self.listener.finish()
        self.listener.busy()
        if not isinstance(out, UtteranceEnd):
            return ""
        text = await self.recognizer.transcribe(out.audio)
        self.bus.emit(FinalTranscript(text=text, turn=self._turn.id if self._turn else None))
        return text
