"""The recogniser: an utterance → its transcript, as early as possible.

* **Speculative recognition**: at the first pause of ``asr.speculative_after_ms`` the utterance so
  far is transcribed in a worker thread while endpointing still waits; if the user does not go on,
  the transcript is ready when the utterance ends (real-time sources only: a file read as fast as
  possible has no pause to hide recognition in).
* **Partial transcripts** every ``asr.partial_interval_ms`` of speech, for live captions.
* **The final transcript**, the wake phrase stripped from its start.
* **Hearing it again** only when it may be a misheard home or tool request (no tier below the LLM
  understood it, and it has a device or tool word or something like a device name,
  :meth:`~assistant.controller.rescore.TranscriptRescorer.worth_hearing_again`): the first pass
  reads a short encoder window (``asr.window_s``, :mod:`assistant.speech.asr`; ~3× faster, a
  little less accurate), then Whisper's full 30 s window, then the full window biased with a few
  names (:mod:`assistant.controller.rescore`). A question for the LLM goes on as first heard.
  When none of those is understood, the first understood hypothesis of the short window's beam
  search within ``asr.n_best_margin`` is taken (:meth:`Recognizer.choose_hypothesis`); failing
  that, the utterance is recognised with only the home's grammar's words allowed, and an
  understood result is taken if Whisper, unconstrained, scores it within ``asr.grammar_margin`` of
  its own transcript (:meth:`Recognizer.within_grammar`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from typing import TYPE_CHECKING, Awaitable, Callable, Protocol, Sequence

import numpy as np

from ..audio.io import SAMPLE_RATE
from ..bus import EventBus
from ..config import AsrConfig
from ..events import PartialTranscript, StageTiming
from ..home import normalize
from ..speech.asr import FULL_WINDOW_S, AsrResult, SpeechRecognizer, strip_wake_phrase
from ..speech.endpoint import UtteranceEnd
from ..speech.turn import ends_unfinished

if TYPE_CHECKING:
    from ..speech.endpoint import Endpointer

__all__ = ["BiasedPass", "Recognizer", "Rescorer"]

log = logging.getLogger(__name__)


def _numbers(text: str) -> list[str]:
    """The numbers in ``text``, in order, number words as digits."""
    return re.findall(r"\d+(?:\.\d+)?", normalize(text))


class Rescorer(Protocol):
    """Decides whether a transcript is understood and which names a second pass should favour."""

    def names_for(self, text: str) -> Sequence[str]: ...

    def choose(self, first: str, second: str) -> str: ...

    def understands(self, text: str) -> bool: ...

    def worth_hearing_again(self, text: str) -> bool: ...

    def vocabulary(self) -> frozenset[str]: ...

    def repairs(self, heard: str, candidate: str) -> bool: ...


@dataclasses.dataclass(frozen=True)
class BiasedPass:
    """The name-biased pass (:meth:`Recognizer.second_pass`) as run in a pause, after the full window."""

    spec: asyncio.Future
    """The speculation whose full-window words it was run on."""
    words: str
    """Those words (wake phrase stripped)."""
    chosen: str
    """What it chose: its own transcript, or ``words`` when that was not understood."""
    ms: float
    """Its compute time."""
    detail: str
    """What it heard and whether it was kept."""


class Recognizer:
    """Whisper for one voice loop.

    Args:
        asr: The loaded model (shared by every loop).
        config: Speculation, partials, second pass.
        bus: Where timings and partial transcripts go.
        wake_phrases: Stripped from the start of transcripts.
        rescorer: For the second pass (None: no second pass).
    """

    def __init__(self, asr: SpeechRecognizer, config: AsrConfig, bus: EventBus, wake_phrases: list[str], rescorer: Rescorer | None = None) -> None:
        self.asr = asr
        self.config = config
        self.bus = bus
        self.wake_phrases = wake_phrases
        self.rescorer = rescorer
        self._spec: tuple[int, asyncio.Task] | None = None
        self._spec_busy: asyncio.Future | None = None
        self._full: tuple[asyncio.Future, asyncio.Future] | None = None
        """(speculation, its full-window recognition), started as soon as nothing understood it."""
        self._paused_bias: BiasedPass | None = None
        """The name-biased pass last run in a pause (written by the full window's thread before its future resolves)."""
        self._partial_task: asyncio.Task | None = None
        self._partial_at = 0

    # ------------------------------------------------------------------ while the user speaks

    def on_frame(self, ep: "Endpointer", *, realtime: bool, turn: int | None) -> None:
        """Called after every captured frame: start a speculation at a pause, or a partial."""
        self._speculate(ep, realtime)
        self._maybe_partial(ep, turn)

    def _speculate(self, ep: "Endpointer", realtime: bool) -> None:
        n = ep.captured_samples
        silence = ep.silence_ms
        if n == 0 or silence == 0:
            self._spec = None  # speech goes on: a speculation made before is stale
            return
        after = self.config.speculative_after_ms
        if not after or not realtime:
            return
        if silence < after or self._spec is not None:
            return
        if self._spec_busy is not None and not self._spec_busy.done():
            return  # a stale speculation still holds the CPU; the end of the utterance will transcribe
        task = self._recognise(ep.current_audio())
        self._spec = (n, task)

    def speculate_now(self, ep: "Endpointer") -> asyncio.Task:
        """The transcription of the utterance so far, started now unless one for this pause runs
        already (the turn detector reads it; the final transcript reuses it if the user stops here).
        Works for every source: a file read as fast as possible transcribes at its pauses too."""
        n = ep.captured_samples
        if self._spec is not None and not self._spec[1].cancelled():
            return self._spec[1]  # started in this same pause: only silence came after it
        task = self._recognise(ep.current_audio())
        self._spec = (n, task)
        return task

    def _recognise(self, audio: np.ndarray) -> asyncio.Future:
        """Recognise ``audio`` (short window) in a thread; if the text is worth hearing again (not
        understood below the LLM, and about the home or a tool), go straight on with the full
        window while the turn detector and the endpointer are still waiting (the final transcript
        takes it, :meth:`final`)."""
        task = asyncio.ensure_future(asyncio.to_thread(self.asr.transcribe, audio))
        self._spec_busy = task

        def chain(done: asyncio.Future) -> None:
            if done.cancelled() or done.exception() is not None or self.rescorer is None or done.result().window_s >= FULL_WINDOW_S:
                return
            full = asyncio.ensure_future(asyncio.to_thread(self._full_if_worth_it, audio, done.result(), done))
            self._full = (done, full)  # only the latest speculation's can be used
            self._spec_busy = full

        task.add_done_callback(chain)
        return task

    def choose_hypothesis(self, result: AsrResult) -> AsrResult:
        """Blocking: ``result``, or, when nothing below the LLM understands it, a copy holding the first
        of its alternatives within ``asr.n_best_margin`` that is understood: Whisper's candidates
        rescored against the home's grammar."""
        margin = self.config.n_best_margin
        if self.rescorer is None or not margin or not result.alternatives or self.rescorer.understands(self.text_of(result)):
            return result
        for text, gap in result.alternatives:
            if gap <= margin and self.rescorer.understands(strip_wake_phrase(text, self.wake_phrases)):
                return dataclasses.replace(result, text=text)
        return result

    def full_window(self, spec: asyncio.Future) -> asyncio.Future | None:
        """The full-window recognition chained to the speculation ``spec`` (it resolves to None
        when it was not worth it), or None when none was started. Call after ``spec`` is done and
        the loop has run its callbacks."""
        return self._full[1] if self._full is not None and self._full[0] is spec else None

    def _spec_task(self) -> asyncio.Future | None:
        return self._spec[1] if self._spec is not None else None

    def _full_if_worth_it(self, audio: np.ndarray, first: AsrResult, spec: asyncio.Future) -> AsrResult | None:
        """Blocking: the full-window recognition of ``audio``, or None when it is not worth it
        (:meth:`_worth_hearing_again`), ``first`` ends mid-sentence ("turn on the": the user goes on),
        or the user spoke again.

        When the full window's words are still not understood, the name-biased pass
        (:meth:`second_pass`) runs next, still in the pause, and the result carries its choice:
        the turn detector can end the turn on the repaired words at once ("Turn off the best
        land." → "turn off the best lamp" → "Turn off the desk lamp."), instead of the turn
        waiting for a ceiling and then for the pass (:meth:`final` reuses it)."""
        text = self.text_of(first)
        if not text or ends_unfinished(text) or self._spec_task() is not spec or not self._worth_hearing_again(first):
            return None
        again = self.asr.transcribe(audio, window_s=FULL_WINDOW_S)
        words = self.text_of(again)
        if self._spec_task() is not spec or not words:
            return again
        t0 = time.perf_counter()
        biased = self._biased(words, audio)
        if biased is None:
            return again
        self._paused_bias = BiasedPass(spec, words, biased[0], round((time.perf_counter() - t0) * 1000.0, 2), biased[1])
        return again if biased[0] == words else dataclasses.replace(again, text=biased[0])

    def _worth_hearing_again(self, first: AsrResult) -> bool:
        """Blocking: whether a short-window result may be a misheard request the full window would fix."""
        return self.rescorer is not None and first.window_s < FULL_WINDOW_S and self.rescorer.worth_hearing_again(self.text_of(first))

    def text_of(self, result: AsrResult) -> str:
        """A result's text with the wake phrase stripped."""
        return strip_wake_phrase(result.text, self.wake_phrases)

    def speculation(self) -> asyncio.Task | None:
        """The transcription started at the current pause, if any (the turn detector reads it)."""
        return self._spec[1] if self._spec is not None else None

    def _maybe_partial(self, ep: "Endpointer", turn: int | None) -> None:
        interval = self.config.partial_interval_ms
        if not interval:
            return
        n = ep.captured_samples
        if n == 0:
            self._partial_at = 0
            return
        if n - self._partial_at < interval * SAMPLE_RATE // 1000 or (self._partial_task is not None and not self._partial_task.done()):
            return
        if self._spec is not None or ep.silence_ms > 0:
            return  # in a pause: the speculative recognition has the CPU
        self._partial_at = n
        audio = ep.current_audio()

        async def transcribe() -> None:
            result = await asyncio.to_thread(self.asr.transcribe, audio)
            text = strip_wake_phrase(result.text, self.wake_phrases)
            if text:
                self.bus.emit(PartialTranscript(text=text, turn=turn))

        self._partial_task = asyncio.create_task(transcribe())

    def reset(self) -> None:
        """Forget speculation and partials (a new utterance)."""
        self._spec = None
        self._full = None
        self._paused_bias = None
        self._partial_at = 0

    # ------------------------------------------------------------------ the end of the utterance

    async def final(self, utt: UtteranceEnd, turn: int) -> tuple[str, AsrResult]:
        """The utterance's transcript (wake phrase stripped, second pass applied) and the raw result.

        Raises:
            Exception: Whatever the ASR engine raised (the caller reports it).
        """
        spec, self._spec = self._spec, None
        t0 = time.perf_counter()
        if spec is not None and spec[1].cancelled():
            spec = None
        full: asyncio.Future | None = None
        if spec is not None and spec[0] <= utt.audio.shape[0]:
            result = await spec[1]  # recognition started at the pause: often done already
            await asyncio.sleep(0)  # its done-callback has run: a full-window pass is chained, or not needed
            full = self._full[1] if self._full is not None and self._full[0] is spec[1] else None
        else:
            spec = None
            result = await asyncio.to_thread(self.asr.transcribe, utt.audio)
        self._full = None
        waited_ms = (time.perf_counter() - t0) * 1000.0
        self.bus.emit(StageTiming(stage="asr", ms=round(waited_ms, 2), turn=turn, detail=(
            f"{'speculative, ' if spec is not None else ''}compute {result.compute_ms:.0f} ms, rtf {result.real_time_factor:.3f}, "
            f"{result.audio_s:.2f} s audio, {result.window_s:g} s window")))
        first = result
        result = await self._hear_again(result, utt.audio, turn, full, spec[1] if spec is not None else None)
        paused = self._paused_for(spec[1]) if spec is not None and full is not None else None
        self._paused_bias = None
        text = await self.second_pass(strip_wake_phrase(result.text, self.wake_phrases), utt.audio, turn, paused)
        if self.rescorer is not None and text and not await asyncio.to_thread(self.rescorer.understands, text):
            chosen = await asyncio.to_thread(self.choose_hypothesis, first)
            if chosen is not first:
                self.bus.emit(StageTiming(stage="asr_n_best", ms=0.0, turn=turn, detail=f"{self.text_of(chosen)!r} (beam hypothesis) instead of {text!r}"))
                return self.text_of(chosen), chosen
            t1 = time.perf_counter()
            if await asyncio.to_thread(self._grammar_pass_applies, first, text):
                within = await asyncio.to_thread(self._within_grammar, utt.audio, first, text)
                ms = round((time.perf_counter() - t1) * 1000.0, 2)
                if within is not None:
                    self.bus.emit(StageTiming(stage="asr_grammar", ms=ms, turn=turn,
                                              detail=f"{within[0]!r} (recognised within the home's words, {within[1]:.2f} below) instead of {text!r}"))
                    return within[0], dataclasses.replace(first, text=within[0])
                self.bus.emit(StageTiming(stage="asr_grammar", ms=ms, turn=turn,
                                          detail=f"kept {text!r}: no hypothesis within the home's words repairs it within the margin"))
        return text, result

    def within_grammar(self, audio: np.ndarray, first: AsrResult, text: str) -> tuple[str, float] | None:
        """Blocking: when ``text`` (what was heard, after hearing again) is not understood but may be
        a misheard home or tool request, recognise ``audio`` again allowing only the words of the
        home's grammar (:meth:`Rescorer.vocabulary`, :meth:`SpeechRecognizer.transcribe_within`),
        and return (the hypothesis Whisper scores best among those a tier below the LLM understands
        that have the same numbers as ``text`` (the constraint must not turn "30v" into "3") and
        only repair it (:meth:`Rescorer.repairs`: no words added, no name heard right replaced), how
        far its log-probability per token is below the free transcript ``first``'s) if that gap is
        at most ``asr.grammar_margin``; else None. Both are scored by Whisper itself, unconstrained
        (:meth:`SpeechRecognizer.score`), so the home's words are taken only where the audio
        supports them about as well as what Whisper wrote freely: "But the chandelier on." → "Put
        the chandelier on.", "Lock the Mac door." → "Lock the back door."."""
        return self._within_grammar(audio, first, text) if self._grammar_pass_applies(first, text) else None

    def _grammar_pass_applies(self, first: AsrResult, text: str) -> bool:
        """Blocking: whether :meth:`within_grammar` runs for ``text`` (on, and words that may be a misheard home or tool request)."""
        return (self.rescorer is not None and bool(self.config.grammar_margin) and bool(text) and bool(first.text)
                and self.rescorer.worth_hearing_again(text))

    def _within_grammar(self, audio: np.ndarray, first: AsrResult, text: str) -> tuple[str, float] | None:
        """:meth:`within_grammar` once :meth:`_grammar_pass_applies` said yes."""
        margin = self.config.grammar_margin
        rescorer = self.rescorer
        assert rescorer is not None
        seen: set[str] = set()
        numbers = _numbers(text)  # a number Whisper heard is kept: "Set the volume to 30." is not "… to 3 day."
        candidates: list[tuple[str, str]] = []  # (as written, wake phrase stripped)
        for hyp in self.asr.transcribe_within(audio, rescorer.vocabulary()):
            stripped = strip_wake_phrase(hyp, self.wake_phrases)
            key = stripped.lower().strip(" .,!?")
            if key and key not in seen:
                seen.add(key)
                if _numbers(stripped) == numbers and rescorer.repairs(text, stripped) and rescorer.understands(stripped):
                    candidates.append((hyp, stripped))
        if not candidates:
            log.debug("within the home's words: %r -> nothing understood that repairs %r among %s", first.text, text, sorted(seen))
            return None
        scores = self.asr.score(audio, [first.text] + [hyp for hyp, _ in candidates])
        log.debug("within the home's words: %r (%.3f) -> %s", first.text, scores[0], [(h, round(scores[0] - s, 3)) for (h, _), s in zip(candidates, scores[1:])])
        gap, stripped = min((scores[0] - score, stripped) for (_, stripped), score in zip(candidates, scores[1:]))
        return (stripped, gap) if gap <= margin else None

    def _paused_for(self, spec: asyncio.Future | None) -> BiasedPass | None:
        """The name-biased pass run in the pause of the speculation ``spec``, if one was (read it
        after that speculation's full-window future has resolved)."""
        bias = self._paused_bias
        return bias if bias is not None and spec is not None and bias.spec is spec else None

    async def _hear_again(self, result: AsrResult, audio: np.ndarray, turn: int | None, started: asyncio.Future | None = None,
                          spec: asyncio.Future | None = None) -> AsrResult:
        """``result``, or the full-window recognition of ``audio`` when ``result`` came from the short
        window and is worth hearing again: ``started`` if the pause already began it, else now.

        Measured on spoken development requests (2 voices, room noise, 120 turns through the voice
        loop): short window alone 102 right, short then full window then biased 112, full window
        then biased (no short window) 110: the short window's slips are what nothing understands,
        and hearing those again recovers them."""
        t0 = time.perf_counter()
        first = self.text_of(result)
        again = await started if started is not None else None  # None: skipped (not worth it, mid-sentence, or the turn went on)
        how = "started at the pause, waited for"
        if again is None and await asyncio.to_thread(self._worth_hearing_again, result):
            again = await asyncio.to_thread(self.asr.transcribe, audio, window_s=FULL_WINDOW_S)
            how = "after the pause"
        if again is None:
            return result
        heard = self.text_of(again)
        bias = self._paused_for(spec) if started is not None else None
        if bias is not None and bias.chosen == heard:
            heard = bias.words  # the full window's own words (the name-biased pass in the pause chose ``again``'s)
        self.bus.emit(StageTiming(stage="asr_full_window", ms=round((time.perf_counter() - t0) * 1000.0, 2), turn=turn,
                                  detail=f"{how}: {first!r} not understood -> {heard!r}"))
        return again

    def heard(self, audio: np.ndarray, text: str, result: AsrResult) -> Callable[[], Awaitable[float]]:
        """How sure Whisper is of ``text`` (the final transcript of ``audio``, 16 kHz mono int16):
        an awaitable that scores it once, when first awaited (:meth:`SpeechRecognizer.score`: the
        mean log-probability per token, natural log, given the audio; the encoding is reused: 9 ms
        median on 2 cores), for
        :attr:`~assistant.engine.context.TurnContext.heard`. The raw transcript (with the wake
        phrase, if Whisper wrote it) is scored when it is the same words, as it is what the audio says."""
        said = result.text if result.text and strip_wake_phrase(result.text, self.wake_phrases) == text else text
        memo: list[float] = []

        async def score() -> float:
            if not memo:
                memo.append((await asyncio.to_thread(self.asr.score, audio, [said]))[0])
            return memo[0]

        return score

    async def transcribe(self, audio: np.ndarray) -> str:
        """A short answer (to a question the assistant asked), wake phrase stripped."""
        result = await asyncio.to_thread(self.asr.transcribe, audio)
        return strip_wake_phrase(result.text, self.wake_phrases)

    async def second_pass(self, text: str, audio: np.ndarray, turn: int | None,
                          at_pause: BiasedPass | None = None) -> str:
        """Nobody understood ``text`` (recognised with the full window) and it is worth hearing again:
        recognise it biased with the few names it may have meant, keeping the new transcript only
        if it is understood (:mod:`assistant.controller.rescore`).

        ``at_pause``: the pass when it ran already in the pause (:meth:`_full_if_worth_it`): if it ran on ``text`` or chose ``text``,
        its choice is taken without running it again (its timing is reported with "at the pause")."""
        if at_pause is not None and text in (at_pause.words, at_pause.chosen):
            self.bus.emit(StageTiming(stage="asr_second_pass", ms=0.0, turn=turn, detail=f"at the pause ({at_pause.ms:.0f} ms), {at_pause.detail}"))
            return at_pause.chosen
        t0 = time.perf_counter()
        biased = await asyncio.to_thread(self._biased, text, audio)
        if biased is None:
            return text
        self.bus.emit(StageTiming(stage="asr_second_pass", ms=round((time.perf_counter() - t0) * 1000.0, 2), turn=turn, detail=biased[1]))
        return biased[0]

    def _biased(self, text: str, audio: np.ndarray) -> tuple[str, str] | None:
        """Blocking: the name-biased recognition of ``audio`` for ``text`` (:meth:`second_pass`):
        (the transcript chosen, what the pass heard and whether it was kept), or None when it does
        not run (off, no words, or no names worth favouring: ``text`` is understood or not worth
        hearing again)."""
        if self.rescorer is None or not self.config.bias_to_tools or not text:
            return None
        names = self.rescorer.names_for(text)
        if not names:
            return None
        result = self.asr.transcribe(audio, hotwords=list(names))
        second = strip_wake_phrase(result.text, self.wake_phrases)
        chosen = self.rescorer.choose(text, second)
        return chosen, f"{'kept' if chosen == second else 'dropped'}: {second!r} (biased with {len(names)} names)"
