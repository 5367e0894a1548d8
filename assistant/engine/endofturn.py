"""End of turn: at every pause, ask the turn detector whether the user has finished.

The endpointer (:mod:`assistant.speech.endpoint`) reports a :class:`~assistant.speech.endpoint.Pause`
after ``endpoint.pause_ms`` of silence. This processor then, at once and in parallel, has the
recogniser transcribe the utterance so far (the speculative transcript, which the final transcript
reuses when the user does not go on) and Smart Turn read its audio, scores how complete the words
are as a sentence (:class:`~assistant.speech.turn.TextCompleteness`), and hands all three to the
:class:`~assistant.speech.turn.TurnDetector`. If the user has finished and has not spoken again
meanwhile, the utterance ends now; otherwise the endpointer keeps listening, up to
``endpoint.turn_ceiling_ms`` of silence when the words say the speaker goes on, and up to
``endpoint.unsure_ceiling_ms`` when nothing could tell.

Words that may be the whole request and that only the local LLM can answer are handed to the
router as soon as they are known (``prepare``: preemptive generation, docs/turn-taking.md), and so
are words nothing below the LLM understands even when heard again with the full window; speech in
the pause, or a verdict that the speaker goes on, stops that generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Awaitable, Callable

from ..bus import EventBus
from ..events import ErrorEvent, StageTiming
from ..speech.asr import strip_wake_phrase
from ..speech.endpoint import NoSpeechTimeout, Pause, UtteranceEnd
from ..speech.listener import Listener, ListenerMode
from ..speech.turn import UNSURE_REASONS, TurnDetector, TurnVerdict, ends_unfinished
from .recognizer import Recognizer

log = logging.getLogger(__name__)

__all__ = ["EndOfTurn"]


class EndOfTurn:
    """Runs the turn detector at pauses and ends the utterance when it says so.

    Args:
        listener: Whose endpointer reports the pauses.
        detector: The turn detector.
        recognizer: For the transcript so far (None: Smart Turn alone decides).
        bus: Where the detector's timing goes.
        words_decide: Give the verdict from the transcript alone when it settles the question
            (:meth:`~assistant.speech.turn.TurnDetector.by_words`); False: always ask Smart Turn
            and the text model too.
        template_pause_ms: Silence after words the exact templates match that ends the turn (:meth:`early`; 0: off).
        prepare: Called with the transcript at a pause as soon as it is known, when the words alone
            do not settle the verdict (they may well be the whole request): the router starts the
            local LLM on it (:meth:`~assistant.controller.router.Router.prepare`), so generation
            overlaps Smart Turn, the text model and an unsure pause's wait. None: nothing is prepared.
        unprepare: Called when the verdict holds the turn open on the words' evidence, or the user
            speaks again in that pause.
        prepared_reply: What a prepared generation's completion can be awaited with (None: no
            generation is running). When the words of a prepared pause are judged finished, a
            real-time turn ends as soon as the reply can begin (its first sentence or the whole
            tool call is made), or at the unsure ceiling if that comes first (:meth:`start`).
    """

    def __init__(self, listener: Listener, detector: TurnDetector, recognizer: Recognizer | None, bus: EventBus, words_decide: bool = True,
                 template_pause_ms: int = 0, prepare: Callable[[str], bool] | None = None, unprepare: Callable[[], None] | None = None,
                 prepared_reply: Callable[[], Awaitable | None] | None = None) -> None:
        self.listener = listener
        self.prepare = prepare
        self.unprepare = unprepare
        self.prepared_reply = prepared_reply
        self._finished_prepared: int | None = None
        """The prepared pause whose words were judged finished (its turn may end once the reply can begin)."""
        self._prepared_pause: int | None = None
        """The pause whose transcript :attr:`prepare` was called with (None: nothing prepared)."""

        self.words_decide = words_decide
        self.template_pause_ms = template_pause_ms if words_decide and template_pause_ms < listener.endpointer.config.pause_ms else 0
        self._early_read: object | None = None
        """The speculation :meth:`early` last read (each is read once)."""
        self.detector = detector
        self.recognizer = recognizer
        self.bus = bus
        self._task: asyncio.Task | None = None
        self.verdicts: list[TurnVerdict] = []
        """Every verdict, in order (for benchmarks and tests)."""

    async def judge(self, pause: Pause, turn: int | None) -> TurnVerdict:
        """The verdict for ``pause``.

        The words come first: the speculative transcript (started at ``asr.speculative_after_ms``
        of silence) is usually ready when the pause is reported. When the words decide alone — no
        words, words that end where a request cannot, or words a tier below the LLM understands
        (``endpoint.words_decide``) and the text model does not find the sentence unfinished — the
        verdict is given without Smart Turn (~100 ms on one core). Words the exact templates match
        are a whole command by the grammar: the text model is not asked either (~40 ms; of the
        turn benchmark's development sentences, 4 proper prefixes match a template and the text
        model held one, "Set the thermostat to twenty" before "degrees", the same command).
        Otherwise Smart Turn scores the pause too (started at once, alongside recognition, when
        the transcript is not ready)."""
        t0 = time.perf_counter()
        ep = self.listener.endpointer
        audio = ep.current_audio()
        model = self.detector.model
        spec = self.recognizer.speculate_now(ep) if self.recognizer is not None else None

        def prosody_task() -> asyncio.Future | None:
            return asyncio.ensure_future(asyncio.to_thread(model.probability, audio)) if model is not None else None

        prosody = prosody_task() if spec is None or not spec.done() else None  # no words yet: score the prosody meanwhile
        text = None
        alternatives: tuple[tuple[str, float], ...] = ()
        if spec is not None:
            with contextlib.suppress(Exception):  # no transcript: prosody alone decides
                heard = await asyncio.shield(spec)  # the final transcript may reuse it
                text = self.recognizer.text_of(heard)
                alternatives = self._alternatives(heard)
        open_question = text is not None and self.detector.by_words(text, alternatives) is None
        if open_question and text and self.current(pause):
            self._prepare(pause.index, text)  # words that may well be the whole request: the LLM can start on them now
        if prosody is None and (not self.words_decide or open_question):
            prosody = prosody_task()  # the words will not settle it: Smart Turn alongside the text model
        completeness = -1.0
        whole = self.words_decide and bool(text) and self.detector.whole_command is not None and self.detector.whole_command(text)
        if text and not whole and self.detector.text_model is not None and re.search(r"[^\W\d_]", text) and not ends_unfinished(text):
            with contextlib.suppress(Exception):  # no score: the other signals decide
                completeness, _ = await asyncio.to_thread(self.detector.text_model.score, text)
        verdict = self.detector.by_words(text, alternatives, completeness) if self.words_decide else None  # (a Smart Turn call started meanwhile is not waited for)
        if verdict is None:
            prosody = prosody or prosody_task()
            p, ms = await prosody if prosody is not None else (-1.0, 0.0)
            verdict = self.detector.verdict(text, p, ms, completeness, alternatives)
        if verdict.reason == "unclear_request" and spec is not None:
            verdict, text, settled = await self._heard_again(pause, spec, verdict, text)
            if verdict.reason == "unclear_request" and text and self.current(pause) and (settled is None or settled.reason == "unclear_request"):
                # still nothing below the LLM understands the words, heard again, and they do not
                # end mid-sentence: they are what the request will be if the user stops here ("What
                # is the boiling point of water?"), so the LLM starts on them while the unsure
                # ceiling and the final passes run
                self._prepare(pause.index, text)
        self.verdicts.append(verdict)
        self.bus.emit(StageTiming(stage="end_of_turn", ms=round((time.perf_counter() - t0) * 1000.0, 2), turn=turn,
                                  detail=f"{'finished' if verdict.finished else 'goes on'}: {verdict.reason}, p={verdict.probability:.2f}, "
                                         f"{'text model not asked (a template matches)' if whole else f'text {completeness:.3f}'}, smart turn {verdict.compute_ms:.0f} ms, pause {pause.index}, words {text!r}"))
        return verdict

    async def _heard_again(self, pause: Pause, spec: asyncio.Future, verdict: TurnVerdict,
                           text: str | None) -> tuple[TurnVerdict, str | None, TurnVerdict | None]:
        """Words nothing understands that may be a misheard home request are being recognised again
        with the full window (:meth:`Recognizer.full_window`, started when the short-window
        transcript came): wait for it while the user is silent, and if a tier below the LLM
        understands the new words, the turn is over (the final transcript is that one). A garbled
        fragment heard again stays unclear, or ends where a request cannot: the first verdict stands.

        Returns (the verdict, the words the final transcript starts from, what the words heard
        again settle by themselves — :meth:`TurnDetector.by_words` — or None when they settle
        nothing or were not heard again)."""
        await asyncio.sleep(0)  # the speculation's done-callback has chained the full window, or not
        full = self.recognizer.full_window(spec) if self.recognizer is not None else None
        if full is None:
            return verdict, text, None
        try:
            again = await asyncio.shield(full)
        except Exception:  # noqa: BLE001 - no second transcript: the first verdict stands
            return verdict, text, None
        if again is None or not self.current(pause):
            return verdict, text, None
        words = self.recognizer.text_of(again)
        if not words:
            return verdict, text, None
        second = self.detector.by_words(words, self._alternatives(again))
        if second is not None and second.reason == "understood":
            return TurnVerdict(True, verdict.probability, "understood_heard_again", verdict.compute_ms), words, second
        return verdict, words, second  # (Recognizer.final starts from the words heard again too)

    def _alternatives(self, heard) -> tuple[tuple[str, float], ...]:
        """Whisper's other beam hypotheses for ``heard``, wake phrase stripped, with their
        log-probability gap per token behind the transcript."""
        return tuple((strip_wake_phrase(alt, self.recognizer.wake_phrases), gap) for alt, gap in heard.alternatives)

    def early(self, turn: int | None) -> UtteranceEnd | None:
        """Called after every captured frame of a real-time source: the utterance, ended now, when
        at least ``endpoint.template_pause_ms`` of silence follows words the exact templates match
        and no rule holds them (:meth:`~assistant.speech.turn.TurnDetector.by_words`: a beam
        hypothesis ending unfinished, a bare target); else None. Reads the speculative transcript
        only once it is ready (never waits), each speculation once; ``endpoint.pause_ms`` and
        :meth:`judge` take every other case."""
        ep = self.listener.endpointer
        if not self.template_pause_ms or self.recognizer is None or self.detector.whole_command is None:
            return None
        silence = ep.silence_ms
        if silence < self.template_pause_ms or ep.in_pause:
            return None
        spec = self.recognizer.speculation()
        if spec is None or spec is self._early_read or not spec.done():
            return None
        self._early_read = spec
        if spec.cancelled() or spec.exception() is not None:
            return None
        t0 = time.perf_counter()
        heard = spec.result()
        text = self.recognizer.text_of(heard)
        if not text or not self.detector.whole_command(text):
            return None
        alternatives = self._alternatives(heard)
        verdict = self.detector.by_words(text, alternatives)
        if verdict is None or not verdict.finished:
            return None
        self.verdicts.append(verdict)
        self.bus.emit(StageTiming(stage="end_of_turn", ms=round((time.perf_counter() - t0) * 1000.0, 2), turn=turn,
                                  detail=f"finished at {silence} ms of silence: {verdict.reason} (a template matches), words {text!r}"))
        return self.listener.end_turn()

    def current(self, pause: Pause) -> bool:
        """The user is still silent in ``pause`` (a verdict about it still applies)."""
        return self.current_index(pause.index)

    async def at_pause(self, pause: Pause, turn: int | None) -> UtteranceEnd | None:
        """Judge ``pause`` and, if the user has finished and is still silent, end the utterance.

        A judge that fails (a bug in a tier it asks, a model that raises) is reported as an
        :class:`ErrorEvent` and the pause is left to silence endpointing: the turn still ends,
        at ``endpoint.turn_ceiling_ms``, and what was said is not lost."""
        self._finished_prepared = None
        try:
            verdict = await self.judge(pause, turn)
        except Exception as exc:  # noqa: BLE001 - reported; the silence endpointer takes the turn
            log.exception("end-of-turn judge failed at pause %d", pause.index)
            self.bus.emit(ErrorEvent(stage="end_of_turn", message=f"judging the pause failed: {type(exc).__name__}: {exc}",
                                     hint="the turn ends at the silence timeout instead; please report this with the log", turn=turn))
            return None
        if not self.current(pause):
            return None
        cfg = self.listener.endpointer.config
        unsure_ceiling = 0 < cfg.unsure_ceiling_ms < cfg.turn_ceiling_ms
        if verdict.finished:
            if self._prepared_pause == pause.index and unsure_ceiling:
                # the local LLM is generating the reply to these words already: ending the turn
                # before it can speak gains nothing, and would cut off a speaker who goes on; it
                # ends when the reply can begin (start) or at the unsure ceiling
                self._finished_prepared = pause.index
                return self.listener.shorten_pause(cfg.unsure_ceiling_ms)
            return self.listener.end_turn()
        if verdict.reason in UNSURE_REASONS and unsure_ceiling:
            return self.listener.shorten_pause(cfg.unsure_ceiling_ms)  # no word says the speaker goes on
        self.release()  # the words say the speaker goes on: what was started on them is wasted
        return None

    def _prepare(self, index: int, text: str) -> None:
        if self.prepare is None or self._prepared_pause == index:
            return
        self.release()
        if self.prepare(text):
            self._prepared_pause = index

    def on_frame(self) -> None:
        """Called after every captured frame: the user spoke again (or a new pause began) after a
        pause whose words were prepared, so what was prepared is stopped."""
        if self._prepared_pause is not None and not self.current_index(self._prepared_pause):
            self.release()

    def hand_over(self, out: UtteranceEnd | NoSpeechTimeout) -> None:
        """The utterance ended: what was prepared is the responder's now (an :class:`UtteranceEnd`
        that will be answered), or stopped (no speech)."""
        if isinstance(out, UtteranceEnd):
            self._prepared_pause = None
        else:
            self.release()

    def release(self) -> None:
        """Stop what :attr:`prepare` started, if anything (the utterance ended another way, or the user went on)."""
        if self._prepared_pause is not None:
            self._prepared_pause = None
            if self.unprepare is not None:
                self.unprepare()

    def current_index(self, index: int) -> bool:
        """The user is still silent in the pause numbered ``index``."""
        ep = self.listener.endpointer
        return self.listener.mode is ListenerMode.CAPTURE and ep.pause_index == index and ep.in_pause

    def start(self, pause: Pause, turn: int | None, on_end: Callable[[UtteranceEnd], Awaitable[None]]) -> None:
        """Judge ``pause`` in the background (real-time sources: frames keep coming meanwhile) and
        call ``on_end`` with the utterance if the turn ends."""
        self.cancel()

        async def run() -> None:
            out = await self.at_pause(pause, turn)
            if out is None and self._finished_prepared == pause.index:
                out = await self._when_reply_made(pause, turn)
            if out is not None:
                await on_end(out)

        self._task = asyncio.create_task(run(), name=f"end-of-turn-{pause.index}")

    async def _when_reply_made(self, pause: Pause, turn: int | None) -> UtteranceEnd | None:
        """Finished words whose reply the local LLM is making: the turn ends when the reply can begin
        (its first sentence is made, or the whole tool call),
        if the user is still silent in ``pause`` and the unsure ceiling has not ended it already.
        The verdict alone would have ended it at the pause (what every other finished turn does);
        waiting for the reply keeps the chance that the user goes on, for no cost."""
        made = self.prepared_reply() if self.prepared_reply is not None else None
        if made is None:
            return None
        with contextlib.suppress(Exception):  # a failed generation: the ceiling ends the turn
            await asyncio.shield(made)
        if not self.current(pause):
            return None
        silence = self.listener.endpointer.silence_ms
        out = self.listener.end_turn()
        if out is not None:
            self.bus.emit(StageTiming(stage="end_of_turn", ms=0.0, turn=turn,
                                      detail=f"finished at {silence} ms of silence: the prepared reply can begin, pause {pause.index}"))
        return out

    def cancel(self) -> None:
        """Forget a verdict in progress (the utterance ended another way)."""
        if self._task is not None and not self._task.done() and self._task is not asyncio.current_task():
            self._task.cancel()
        self._task = None
