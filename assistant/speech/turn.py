"""Semantic end-of-turn detection: has the user finished, or only paused?

A fixed silence timeout either cuts slow speakers off ("turn on the … kitchen light") or makes
everyone wait; people answer each other about 200 ms after a turn ends. The endpointer therefore
asks at every short pause (``endpoint.pause_ms`` of silence) whether the turn is over, from two
kinds of evidence (:class:`TurnDetector`):

* **prosody** — Smart Turn v3.2 (pipecat-ai, BSD-2-Clause): a Whisper-tiny encoder with a
  classifier head, int8 ONNX, 8.7 MB. It reads the last 8 s of 16 kHz audio as Whisper log-mel
  features (80 × 800, computed by faster-whisper's own feature extractor after zero-mean
  unit-variance normalisation of the waveform, as the model was trained; this matches
  ``transformers.WhisperFeatureExtractor`` to 1e-5) and returns the probability that the speaker
  has finished. About 30 ms per call on one core of a 2-core x86 machine.
* **words** — the speculative transcript of the utterance so far: a request that ends on a word
  that cannot end an English request ("turn on the", "set it to", "and") is not finished whatever
  the prosody says (Smart Turn calls some cut-off commands finished with p ≥ 0.95), and a request
  the assistant fully understands is strong evidence that it is.
* **text completeness** — Whisper "completes" a fragment it hears cut off ("turn on the" →
  "Turn on that.", "set a timer for" → "Set a timer for it."), and puts a full stop after
  everything. So the transcript, its final punctuation stripped, is scored by a small language
  model: the probability that the sentence ends there (the next token is ".", "?", "!" or the end
  of the user's message) — the idea behind LiveKit's end-of-utterance model, which is SmolLM2-135M
  fine-tuned for it; the instruct model alone separates "Who wrote" (0.002) from "Tell me a joke"
  (0.11) well enough to veto a cut (:class:`TextCompleteness`, ~40 ms on one core). The last word
  is known to be whole, so tokens that would only lengthen it ("Juliet" → "Juliette") are left out
  of the normalisation.

The model is a catalog entry like the others (``smart-turn-v3.2``), verified by SHA-256 before it is
loaded; without it, endpointing falls back to the fixed trailing silence.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..audio.io import SAMPLE_RATE
from ..errors import ModelError

__all__ = ["DANGLING_WORDS", "PARTICLES", "STAND_INS", "UNSURE_REASONS", "SmartTurn", "TextCompleteness", "TurnDetector", "TurnVerdict", "ends_unfinished", "lacks_particle", "opening"]

log = logging.getLogger(__name__)

WINDOW_S = 8
"""Seconds of audio Smart Turn reads (the end of the utterance, zero-padded in front)."""

DANGLING_WORDS = frozenset("""
a an the my your our his her its their every each
and or but nor because if when while until unless than
to of at by for with from into onto about under through between after before during without
um uh er erm hmm
turn switch set put make dim brighten
what's whats
""".split())
"""Words an English request does not end on: articles, possessives, conjunctions, prepositions
(not "on", "off", "in", "up", "down": "turn it on"), fillers, and verbs that need an object
("turn", "set"). A transcript ending on one of them is a speaker mid-sentence. Words that *can* end
a request or an answer ("please", "it", "no", "I do") are left out: a wrong "unfinished" only
waits for the ceiling, a wrong "finished" cuts the speaker off."""


STAND_INS = frozenset("that them then there this these those".split())
"""What Whisper writes for a dangling "the" at a pause ("Turn on that.", "Open them.", "Switch off
then.", "close there"): a transcript ending on one is taken as unfinished. None of the 358
development requests ends on one (a wrong "unfinished" only waits for the ceiling); "it" counts
only after a preposition ("Set a timer for it.", "turn on the lights in it"; "what time is it" ends),
and "there" not after a form of "be" ("How many planets are there?" ends)."""
_BE = frozenset("is are was were isn't aren't wasn't weren't".split())
_BEFORE_IT = frozenset("to of at by for with from into onto about in on".split())
_VERBS = frozenset("turn switch set put make dim brighten".split())
_WH_QUESTION = re.compile(r"^\W*(?:what|which|who|whom|how|where|when)\b", re.IGNORECASE)


PARTICLES = frozenset("on off up down to into over around back".split())
"""What "turn" and "switch" need after them ("turn the fan off", "switch to the radio", "turn it up");
"set" needs one of them, "for" or "at", or a number ("set the thermostat to 20", "set a timer for
5 minutes", "set the lamp 50%")."""
_SET_COMPLEMENTS = PARTICLES | {"for", "at"}
_LEAD = frozenset("please hey ok okay so and now".split())
_ASKING = frozenset({("could", "you"), ("can", "you"), ("would", "you"), ("will", "you")})


def opening(words: Sequence[str]) -> tuple[str, list[str]]:
    """(the request's first word, the words after it), lower-cased words in, with leading fillers
    ("please", "ok", "so" …) and "could/can/would/will you" skipped; ("", []) when nothing is left."""
    words = [w.lower() for w in words]
    while words and words[0] in _LEAD:
        words = words[1:]
    if tuple(words[:2]) in _ASKING:
        words = words[2:]
    return (words[0], words[1:]) if words else ("", [])


def lacks_particle(text: str) -> bool:
    """True when ``text`` opens with "turn", "switch" or "set" and what that verb needs after it
    (:data:`PARTICLES`) does not follow ("Switch the desk lamp.", "Turn the heating", Whisper's
    garbled "Switch for that slump." for "switch the desk lamp" and "Set the firmest tattoo." for
    "set the thermostat to" at a pause). Only for words nothing understands: "turn the kitchen
    light blue" is a command."""
    verb, rest = opening(re.findall(r"[a-z0-9%]+", text.lower()))
    if verb == "set":
        return not (set(rest) & _SET_COMPLEMENTS or any(any(c.isdigit() for c in w) for w in rest))
    return verb in ("turn", "switch") and not set(rest) & PARTICLES


def ends_unfinished(text: str) -> bool:
    """True when ``text`` stops where a request cannot end ("turn on the", "set the heat to").

    Numbers are words ("set it to 50%" ends on "50%", Whisper's digits), a question that fronts
    its object may end on its verb ("what do bees make?"), and Whisper's stand-ins for a dangling
    "the" (:data:`STAND_INS`) end nothing."""
    words = re.findall(r"[a-z0-9'%]+", text.lower())
    if not words:
        return True
    last = words[-1]
    if last in DANGLING_WORDS and not (last in _VERBS and _WH_QUESTION.match(text)):
        return True
    if last == "there" and len(words) > 1 and words[-2] in _BE:
        return False  # "How many planets are there?": the word itself, not a stand-in for "the"
    if last in STAND_INS or (last == "it" and len(words) > 1 and words[-2] in _BEFORE_IT):
        return True
    return bool(text.rstrip().endswith(("-", ",", "...", "…")))


UNSURE_REASONS = frozenset({"prosody_unsure", "incomplete_sentence", "loose_ending", "unclear_request"})
"""Verdicts "not finished" that rest on no word-level evidence: Smart Turn below its threshold with
words that decide nothing, the 135M text model's low completeness score, which calls whole
questions unfinished ("What is the largest planet?" 0.002, "Name a famous scientist." 0.010 in the
turn benchmark), an understood request whose last word nothing knows or uses (``loose_ending``),
or a home or tool request nothing understands (``unclear_request``: more often a fragment Whisper
garbled, "Turn off, man." for "turn off the", than a request for a device the home lacks). Such a pause ends after ``endpoint.unsure_ceiling_ms``, not ``turn_ceiling_ms``;
words that stop mid-sentence, a beam hypothesis that does, a bare target or a verb without its
particle wait the whole ceiling."""


@dataclass(frozen=True)
class TurnVerdict:
    """What the turn detector made of a pause."""

    finished: bool
    """End the turn now."""
    probability: float
    """Smart Turn's probability that the speaker has finished (-1 when it did not run)."""
    reason: str
    """``"understood"``, ``"complete_sentence"``, ``"prosody"``, ``"no_words"``, ``"unfinished_words"``,
    ``"unfinished_alternative"``, ``"incomplete_sentence"``, ``"prosody_unsure"``."""
    compute_ms: float
    """Smart Turn's compute time."""


class SmartTurn:
    """The Smart Turn v3.x ONNX model.

    Args:
        path: The ``.onnx`` file (or the model's folder holding one).
        threads: onnxruntime intra-op threads.

    Raises:
        ModelError: The file is missing or is not a Smart Turn model.
    """

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort  # noqa: PLC0415
        from faster_whisper.feature_extractor import FeatureExtractor  # noqa: PLC0415

        p = Path(path)
        if p.is_dir():
            found = sorted(p.glob("*.onnx"))
            if not found:
                raise ModelError(f"no .onnx file in {p}", hint="assistant models pull smart-turn-v3.2")
            p = found[0]
        if not p.is_file():
            raise ModelError(f"Smart Turn model {p} does not exist", hint="assistant models pull smart-turn-v3.2")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self.session = ort.InferenceSession(str(p), sess_options=so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise ModelError(f"Smart Turn model {p} cannot be loaded: {exc}", hint="assistant models verify; assistant models pull smart-turn-v3.2") from None
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        if "input_features" not in inputs:
            raise ModelError(f"{p} is not a Smart Turn model (its inputs are {list(inputs)})", hint="set endpoint.turn_model to a Smart Turn v3 model")
        self.path = p
        self.features = FeatureExtractor(feature_size=80, sampling_rate=SAMPLE_RATE, hop_length=160, chunk_length=WINDOW_S, n_fft=400)

    def probability(self, audio: np.ndarray) -> tuple[float, float]:
        """The probability that the speaker has finished at the end of ``audio``.

        Args:
            audio: The utterance so far, 16 kHz mono int16 (only the last 8 s are read).

        Returns:
            (probability 0..1, compute time in ms).
        """
        t0 = time.perf_counter()
        n = WINDOW_S * SAMPLE_RATE
        x = audio[-n:].astype(np.float32) / 32768.0
        if x.shape[0] < n:
            x = np.pad(x, (n - x.shape[0], 0))
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        mel = self.features(x, padding=0)[:, : WINDOW_S * 100].astype(np.float32)
        out = self.session.run(None, {"input_features": mel[None]})[0]
        return float(np.asarray(out).ravel()[0]), (time.perf_counter() - t0) * 1000.0


class TextCompleteness:
    """How likely a transcript is a whole sentence, from a small ChatML instruct model (llama.cpp).

    Args:
        path: A GGUF chat model using ChatML (SmolLM2, Qwen2.5); SmolLM2-135M-Instruct is enough.
        threads: CPU threads.

    Raises:
        ModelError: The file cannot be loaded.
    """

    ENDINGS = (".", "?", "!")

    def __init__(self, path: str | Path, threads: int = 2) -> None:
        import threading  # noqa: PLC0415

        try:
            import llama_cpp  # noqa: PLC0415

            from ..controller.llm_engine import LOAD_LOCK  # noqa: PLC0415

            with LOAD_LOCK:
                self.llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, n_batch=128, n_threads=threads, logits_all=True, verbose=False)
        except Exception as exc:  # noqa: BLE001 - llama.cpp raises ValueError/RuntimeError, a missing package ImportError
            raise ModelError(f"text completeness model {path} cannot be loaded: {exc}", hint="set endpoint.turn_text_model = \"\" to turn it off") from None
        ids = {t for e in self.ENDINGS for t in self.llm.tokenize(e.encode(), add_bos=False, special=True)[:1]}
        ids |= set(self.llm.tokenize(b"<|im_end|>", add_bos=False, special=True)[:1])
        self._ends = np.array(sorted(ids))
        self._boundary = ~self._continues_word(self.llm)
        self._prefix = self.llm.tokenize(b"<|im_start|>user\n", add_bos=False, special=True)
        self._lock = threading.Lock()

    @staticmethod
    def _continues_word(llm) -> np.ndarray:
        """Per vocabulary token: True when it would continue the word before it (it starts with a
        letter, a digit, an apostrophe or a hyphen: "te" after "Juliet", "'s")."""
        out = np.zeros(llm.n_vocab(), dtype=bool)
        for t in range(out.size):
            piece = llm.detokenize([t]).decode("utf-8", errors="ignore")
            out[t] = bool(piece) and (piece[0].isalnum() or piece[0] in "'’-")
        return out

    def score(self, text: str) -> tuple[float, float]:
        """(probability that ``text`` ends a sentence 0..1, compute ms). Blocking; thread-safe.

        The probability is conditioned on the last word being whole (the recogniser wrote a word
        boundary after it): tokens that would continue it are left out of the normalisation.
        Without this a name that is a prefix of another scores as a fragment: "Who wrote Romeo and
        Juliet" put 91 % on "te" (Juliette) and scored 0.003; conditioned, 0.24. The same
        problem as token healing in constrained generation."""
        t0 = time.perf_counter()
        body = re.sub(r"[\s.?!,;:…-]+$", "", text.strip())
        body = re.sub(r"(\d)\s*%", r"\1 percent", body)  # Whisper writes "50%": the model finds "to 50%" unfinished (0.003; "50 percent" 0.06)
        toks = self._prefix + self.llm.tokenize(body.encode(), add_bos=False, special=False)[-100:]
        with self._lock:
            self.llm.reset()
            self.llm.eval(toks)
            logits = np.asarray(self.llm.scores[self.llm.n_tokens - 1], dtype=np.float64)
        z = np.exp(logits - logits.max())
        return float(z[self._ends].sum() / z[self._boundary].sum()), (time.perf_counter() - t0) * 1000.0


class TurnDetector:
    """Decides at a pause whether the turn is over, from Smart Turn and the words so far.

    The rule, in order (measured in ``benchmarks`` section ``turn``):

    1. no words yet (only the wake phrase, a cough) → not finished: the request is still to come;
    2. the words end where a request cannot (:func:`ends_unfinished`), or one of the recogniser's
       other hypotheses within ``alternative_margin`` does (Whisper "completes" a fragment: "Remind
       me too." for "remind me to", with "Remind me to..." 0.11 behind it), or they are an opening
       that needs more and only a target of the home (``bare_target``: "Switch the desk lamp."), or the text model finds
       the sentence unlikely to end there (completeness < ``min_completeness``) → not finished;
    3. a tier below the LLM understands the words (``understands``: the templates, the tolerant
       matcher, an answer to the question asked), or the text model finds them a whole sentence
       (completeness ≥ ``end_completeness``) → finished, unless Smart Turn is nearly sure the
       speaker goes on (p < ``threshold`` / 5);
    4. words nothing understands that open with "turn", "switch" or "set" without what the verb
       needs after it (:func:`lacks_particle`: "Switch for that slump.") → not finished;
    5. words nothing understands that may be a misheard home or tool request (``unclear``), or
       understood words ending on a word nothing uses (``loose_ending``) → not finished, for
       ``unsure_ceiling_ms`` only;
    6. otherwise Smart Turn decides: p ≥ ``threshold`` → finished.

    Args:
        model: Smart Turn, or None (then only the words decide, and an unsure verdict waits for the ceiling).
        threshold: Smart Turn probability that ends a turn.
        understands: Whether the router would act on a transcript without the LLM (None: unknown).
        text_model: Scores how complete the transcript is as a sentence (None: not used).
        min_completeness: Below this completeness the turn goes on.
        end_completeness: At or above this completeness the words say the turn is over (0: never).
        alternative_margin: How far (log-probability per token) behind the transcript an
            alternative hypothesis ending unfinished still holds the turn open (0: never).
        whole_command: Whether the exact templates match a transcript: a whole command by the
            grammar, for which the caller need not ask the text model (None: always ask it).
        bare_target: Whether a transcript is an opening that needs more and only a target ("Switch
            the desk lamp.", "is the back door"): not finished (None: not checked).
        loose_ending: Whether an understood transcript ends on a word nothing below the LLM knows
            or uses ("Turn off the fan end."): not finished, but only ``unsure_ceiling_ms`` is
            waited (reason ``loose_ending``; None: not checked).
        unclear: Whether a transcript nothing below the LLM understands may be a misheard home or
            tool request: not finished whatever Smart Turn says, ``unsure_ceiling_ms`` is waited
            (reason ``unclear_request``; the recogniser hears such words again meanwhile; None: not checked).
    """

    def __init__(self, model: SmartTurn | None, threshold: float = 0.5, understands=None, text_model: TextCompleteness | None = None,
                 min_completeness: float = 0.03, end_completeness: float = 0.0, alternative_margin: float = 0.0,
                 whole_command: Callable[[str], bool] | None = None, bare_target: Callable[[str], bool] | None = None,
                 loose_ending: Callable[[str], bool] | None = None, unclear: Callable[[str], bool] | None = None) -> None:
        self.model = model
        self.unclear = unclear
        self.loose_ending = loose_ending
        self.bare_target = bare_target
        self.whole_command = whole_command
        self.threshold = threshold
        self.understands = understands
        self.text_model = text_model
        self.min_completeness = min_completeness
        self.end_completeness = end_completeness
        self.alternative_margin = alternative_margin

    def by_words(self, text: str | None, alternatives: Sequence[tuple[str, float]] = (), completeness: float = -1.0) -> TurnVerdict | None:
        """The verdict when the words settle it without Smart Turn, else None (ask Smart Turn).

        Settled: no words yet, words that end where a request cannot (in the transcript or a close
        beam hypothesis), a sentence the text model finds unfinished — not finished; words a tier
        below the LLM understands — finished. The last skips one veto :meth:`verdict` applies
        (Smart Turn nearly sure the speaker goes on, p < ``threshold`` / 5): on the development
        two-part requests it never held a turn whose first part was understood, and it costs a
        Smart Turn call (~100 ms) at every pause. The text model's veto stays: without it, "Play
        some music in." and "What's the temperature in?" ended turns (``benchmarks`` section ``turn``)."""
        if text is None:
            return None
        v = self.verdict(text, -1.0, 0.0, completeness, alternatives)
        return v if v.reason in ("no_words", "unfinished_words", "unfinished_alternative", "bare_target", "incomplete_sentence", "understood", "no_particle", "loose_ending", "unclear_request") else None

    def verdict(self, text: str | None, probability: float = -1.0, compute_ms: float = 0.0, completeness: float = -1.0,
                alternatives: Sequence[tuple[str, float]] = ()) -> TurnVerdict:
        """The verdict for a pause, from its transcript, Smart Turn's probability and the text's completeness.

        Args:
            text: The utterance's transcript so far, wake phrase stripped (None: not available).
            probability: Smart Turn's probability that the speaker finished (-1: not computed).
            compute_ms: Smart Turn's compute time, reported in the verdict.
            completeness: :class:`TextCompleteness` score of ``text`` (-1: not computed).
            alternatives: The recogniser's other hypotheses for the same audio, each with its
                log-probability gap to ``text`` (:attr:`~assistant.speech.asr.AsrResult.alternatives`).
        """
        if text is not None:
            if not re.search(r"[^\W\d_]", text):  # no word at all (only the wake phrase, a cough)
                return TurnVerdict(False, probability, "no_words", compute_ms)
            if ends_unfinished(text):
                return TurnVerdict(False, probability, "unfinished_words", compute_ms)
            if any(gap <= self.alternative_margin and ends_unfinished(alt) for alt, gap in alternatives):
                return TurnVerdict(False, probability, "unfinished_alternative", compute_ms)
            if self.bare_target is not None and self.bare_target(text):
                return TurnVerdict(False, probability, "bare_target", compute_ms)
            if 0 <= completeness < self.min_completeness:
                return TurnVerdict(False, probability, "incomplete_sentence", compute_ms)
            if self.understands is not None and self.understands(text) and (probability < 0 or probability >= self.threshold / 5):
                if self.loose_ending is not None and self.loose_ending(text):
                    return TurnVerdict(False, probability, "loose_ending", compute_ms)
                return TurnVerdict(True, probability, "understood", compute_ms)
            if lacks_particle(text):
                return TurnVerdict(False, probability, "no_particle", compute_ms)
            if self.unclear is not None and self.unclear(text):
                return TurnVerdict(False, probability, "unclear_request", compute_ms)
            if self.end_completeness and completeness >= self.end_completeness and (probability < 0 or probability >= self.threshold / 5):
                return TurnVerdict(True, probability, "complete_sentence", compute_ms)
        if probability >= self.threshold:
            return TurnVerdict(True, probability, "prosody", compute_ms)
        return TurnVerdict(False, probability, "prosody_unsure", compute_ms)
