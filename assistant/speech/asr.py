"""Speech recognition with faster-whisper (CTranslate2 Whisper, int8 on the CPU).

**The encoder window.** Whisper was trained on 30 s windows, and faster-whisper pads every input to
30 s (3,000 mel frames): for a 2-second command the encoder spends ~80 % of its time on padding
(tiny.en int8 on 2 x86 cores: 480 ms of encoder for a 3,000-frame window, 123 ms for 1,000 frames).
An utterance that fits in ``asr.window_s`` (10 s) is therefore recognised with a shorter window —
the waveform padded with silence to that length, as whisper.cpp's ``audio_ctx`` does — by calling
CTranslate2 directly. The model, surprised by the short window, tends to say the sentence twice
(FUTO's "ACFT" notes describe the same); the decoder is capped at a token budget from the audio's
length, repeated runs are collapsed and a transcript that starts saying itself again is cut there.
Measured (``scripts/bench`` section ``asr``; 60 development requests, 2 voices, pink room noise at
20 dB SNR; AMD EPYC, 2 cores): word error rate 17.2 % vs 17.4 % with the full window, exact
transcripts 64 vs 70 of 120, recognition p50 201 vs 628 ms. Its slips are more often ones nothing
understands ("lights often here"), so the engine (:mod:`assistant.engine.recognizer`) hears a
transcript again with the full window whenever nothing below the LLM understood it.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..audio.io import SAMPLE_RATE
from ..config import AsrConfig
from ..errors import ModelError, require

__all__ = ["FULL_WINDOW_S", "AsrResult", "SpeechRecognizer", "collapse_loops", "compression_ratio", "drop_restart", "is_loop", "normalize_transcript", "strip_wake_phrase"]

# Whisper's own rule for dropping a segment as silence (openai/whisper transcribe.py):
# no_speech_prob above 0.6 together with an average log-probability below -1.
_NO_SPEECH_PROB = 0.6
_LOGPROB_FLOOR = -1.0
COMPRESSION_RATIO_MAX = 2.4
"""Whisper's threshold (openai/whisper ``transcribe.py``): text that gzip compresses better than
this is a repetition loop ("Bedroom, Bedroom, Bedroom, …"), not speech."""



@dataclass(frozen=True)
class AsrResult:
    """A transcript and what it cost."""

    text: str
    audio_s: float
    """Seconds of audio transcribed."""
    compute_ms: float
    """Wall time of the recognition, ms."""
    window_s: float = 30.0
    """Seconds of audio the encoder read (30: Whisper's full window)."""
    alternatives: tuple[tuple[str, float], ...] = ()
    """The beam search's other hypotheses (short window only), best first, each with how far its
    log-probability per token is below the transcript's (≥ 0)."""

    @property
    def real_time_factor(self) -> float:
        """Compute time / audio time (below 1 is faster than real time)."""
        return (self.compute_ms / 1000.0) / self.audio_s if self.audio_s else 0.0


class SpeechRecognizer:
    """A loaded Whisper model.

    Args:
        model_dir: Folder with a CTranslate2 Whisper model (``model.bin``, ``config.json``,
            ``tokenizer.json``, ``vocabulary.txt``).
        config: Threads, compute type, beam size, language, initial prompt.

    Raises:
        ModelError: The folder is missing files or the model is corrupt.
        MissingDependencyError: faster-whisper is not installed.
    """

    def __init__(self, model_dir: Path, config: AsrConfig) -> None:
        require("faster_whisper", "asr", "speech recognition")
        from faster_whisper import WhisperModel  # noqa: PLC0415

        model_dir = Path(model_dir)
        missing = [n for n in ("model.bin", "config.json") if not (model_dir / n).is_file()]
        if missing:
            raise ModelError(
                f"ASR model folder {model_dir} lacks {', '.join(missing)}",
                hint="point asr.model at a faster-whisper model folder, or run `assistant models pull whisper-tiny.en`",
            )
        self.config = config
        try:
            self._model = WhisperModel(
                str(model_dir), device="cpu", compute_type=config.compute_type,
                cpu_threads=config.threads or (os.cpu_count() or 1), num_workers=1,
            )
        except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError on bad files
            raise ModelError(
                f"cannot load the ASR model in {model_dir}: {exc}",
                hint="the model files are corrupt or incomplete; `assistant models verify` checks them",
            ) from None
        self.model_dir = model_dir
        self._short: _ShortWindow | None = None

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        hotwords: Sequence[str] = (),
        initial_prompt: str | None = None,
        window_s: float | None = None,
    ) -> AsrResult:
        """Transcribe one utterance.

        Args:
            audio: 16 kHz mono int16 (or float32 in [-1, 1]).
            hotwords: Names to bias recognition towards (device and area names); always the full window.
            initial_prompt: Overrides the configured initial prompt.
            window_s: The encoder window in seconds (None: ``asr.window_s``; 30 or more: Whisper's
                full window). Audio longer than ``window_s`` - 0.5 s gets the full window.

        Returns:
            The normalised text ("" when nothing was said), timings and the window used.
        """
        t0 = time.perf_counter()
        alternatives: list[tuple[str, float]] = []
        x, window = self._window_for(audio, window_s)
        prompt = self.config.initial_prompt if initial_prompt is None else initial_prompt
        audio_s = x.shape[0] / SAMPLE_RATE
        if not hotwords and window < FULL_WINDOW_S:
            parts, alternatives = self._short_window().transcribe(x, window, prompt or None, self.config.beam_size)
        else:
            window = FULL_WINDOW_S
            segments, _info = self._model.transcribe(
                x,
                language=self.config.language or None,
                beam_size=self.config.beam_size,
                initial_prompt=prompt or None,
                hotwords=", ".join(hotwords) if hotwords else None,
                condition_on_previous_text=False,
                without_timestamps=True,
                vad_filter=False,
                temperature=0.0,  # greedy only: the same audio always gives the same transcript
                max_new_tokens=min(MAX_NEW_TOKENS, token_budget(audio_s)),  # a loop stops within the budget, not at 448 tokens (~5 s on 2 cores)
            )
            parts = [s.text for s in segments if not (s.no_speech_prob > _NO_SPEECH_PROB and s.avg_logprob < _LOGPROB_FLOOR)]
        text = re.sub(r"\s+", " ", " ".join(parts)).strip()
        if is_loop(text):
            if hotwords or prompt:
                return self.transcribe(audio, initial_prompt="", window_s=window)  # the biasing started the loop: once more without it
            text = collapse_loops(text)
        seen = {normalize_transcript(text)}
        alts = []
        for a, gap in alternatives:  # most beams differ only in case or punctuation
            key = normalize_transcript(a)
            if key and key not in seen and not is_loop(a):
                seen.add(key)
                alts.append((a, gap))
        return AsrResult(text=text, audio_s=audio_s, compute_ms=(time.perf_counter() - t0) * 1000.0, window_s=window, alternatives=tuple(alts))

    def _window_for(self, audio: np.ndarray, window_s: float | None = None) -> tuple[np.ndarray, float]:
        """(``audio`` as float32 in [-1, 1], the encoder window for it: ``window_s`` or
        ``asr.window_s`` when the audio fits with 0.5 s to spare, else Whisper's full window)."""
        x = audio.astype(np.float32) / 32768.0 if audio.dtype == np.int16 else audio.astype(np.float32)
        window = self.config.window_s if window_s is None else window_s
        if not 0 < window < FULL_WINDOW_S or x.shape[0] / SAMPLE_RATE > window - 0.5:
            window = FULL_WINDOW_S
        return x, window

    def _short_window(self) -> "_ShortWindow":
        if self._short is None:
            self._short = _ShortWindow(self._model)
        return self._short

    def transcribe_within(self, audio: np.ndarray, words: frozenset[str]) -> list[str]:
        """Recognise ``audio`` allowing Whisper to write only ``words`` (each a whole word led by a
        space, as written, lower case or capitalised), digits and punctuation: the beam search's
        hypotheses made only of those words, best first (at most ``asr.beam_size``, most
        differing in punctuation).

        This is recognition constrained to a grammar's vocabulary, the idea of Home Assistant's
        Speech-to-Phrase, done by suppressing every other token of Whisper's vocabulary (the
        suppression list is built once per vocabulary: ~50,000 token ids, a few ms of decoding).

        Args:
            audio: 16 kHz mono int16 (or float32 in [-1, 1]).
            words: The allowed words.
        """
        x, window = self._window_for(audio)
        return self._short_window().constrained(x, window, frozenset(words), self.config.beam_size)

    def score(self, audio: np.ndarray, texts: Sequence[str]) -> list[float]:
        """Each of ``texts``' mean log-probability per token given ``audio`` (natural log; 0 is
        certain): Whisper's decoder teacher-forced on the text (CTranslate2's ``align``), nothing
        suppressed, all texts in one batch over one encoding. Two texts' scores compare how well
        the audio supports each; the beam search's own transcript scores highest, usually."""
        if not texts:
            return []
        x, window = self._window_for(audio)
        return self._short_window().score(x, window, list(texts))


_CLITICS = frozenset("s t d ll re ve m".split())
"""What follows an apostrophe ("what's", "don't"): allowed in a constrained transcript."""

_SHORT_NO_SPEECH_SURE = 0.95
"""In a short window Whisper gives silence a confident "you" (log-probability -0.8) with a no-speech
probability of 0.99; above this probability the text is dropped whatever its log-probability (none
of the 120 spoken development requests of the ``asr`` benchmark came back empty)."""

FULL_WINDOW_S = 30.0
"""Whisper's training window: 3,000 mel frames of 10 ms."""


TOKENS_PER_S = 8
"""Decoder budget per second of audio: English speech is under ~5 tokens per second. A decoding
loop (a short window repeating the sentence, a hotword said over and over) stops within it; one
in the full window ran to Whisper's 448-token limit on a 1.4 s command (5.5 s of decoding on 2
x86 cores, the turn benchmark)."""

MAX_NEW_TOKENS = 200
"""faster-whisper's limit on new tokens with a prompt (448 in all, the prompt included)."""


def token_budget(audio_s: float) -> int:
    """New tokens allowed for ``audio_s`` seconds of speech: 12 + :data:`TOKENS_PER_S` per second."""
    return 12 + int(TOKENS_PER_S * audio_s)


class _ShortWindow:
    """Whisper on a window shorter than 30 s, through CTranslate2 directly (faster-whisper always
    pads to 30 s). Same prompt, suppressed tokens and silence rule as faster-whisper's own path."""

    def __init__(self, model) -> None:  # a faster_whisper.WhisperModel
        from faster_whisper.feature_extractor import FeatureExtractor  # noqa: PLC0415
        from faster_whisper.tokenizer import Tokenizer  # noqa: PLC0415
        from faster_whisper.transcribe import get_suppressed_tokens  # noqa: PLC0415

        self.model = model
        self.tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
        self.suppress = get_suppressed_tokens(self.tokenizer, [-1])
        # an instance of our own: faster-whisper's changes its window when asked for another length
        self.features = FeatureExtractor(feature_size=model.feature_extractor.mel_filters.shape[0])
        self._vocab: tuple[frozenset[str], list[int]] | None = None
        self._last: tuple[tuple, object] | None = None
        """The last encoding: (window, length, hash of the samples) → the encoder's output."""

    def encode(self, x: np.ndarray, window_s: float):
        """The encoder's output for ``x`` (float32 16 kHz) padded with silence to ``window_s`` seconds
        (a CTranslate2 StorageView, [1, window_s * 50, d_model]) and the number of mel frames of ``x``."""
        import ctranslate2  # noqa: PLC0415

        frames = int(window_s * 100)
        key = (window_s, x.shape[0], hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=16).digest())
        last = self._last
        if last is not None and last[0] == key:
            return last[1], min(frames, x.shape[0] // 160)  # the same utterance again (recognised, then within the grammar, then scored)
        n = frames * 160
        mel = self.features(np.pad(x, (0, max(0, n - x.shape[0])))[:n])[:, :frames]  # silence after the speech, as in training
        encoded = self.model.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], dtype=np.float32)), to_cpu=True)
        self._last = (key, encoded)
        return encoded, min(frames, x.shape[0] // 160)

    def transcribe(self, x: np.ndarray, window_s: float, prompt: str | None, beam_size: int) -> tuple[list[str], list[tuple[str, float]]]:
        """(the transcript's parts, the other beam hypotheses with their log-probability gap to it)."""
        encoded, _ = self.encode(x, window_s)
        previous = self.tokenizer.encode(" " + prompt.strip()) if prompt else []
        tokens = self.model.get_prompt(self.tokenizer, previous, without_timestamps=True)
        budget = len(tokens) + token_budget(x.shape[0] / SAMPLE_RATE)
        result = self.model.model.generate(encoded, [tokens], beam_size=beam_size, num_hypotheses=beam_size, max_length=min(448, budget),
                                           suppress_blank=True, suppress_tokens=self.suppress, return_scores=True, return_no_speech_prob=True)[0]
        hyps = [drop_restart(self.tokenizer.decode([t for t in seq if t < self.tokenizer.eot])).strip() for seq in result.sequences_ids]
        n = sum(t < self.tokenizer.eot for t in result.sequences_ids[0])
        avg_logprob = result.scores[0] * n / (n + 1)  # faster-whisper's measure (length penalty 1)
        if result.no_speech_prob > _NO_SPEECH_PROB and (avg_logprob < _LOGPROB_FLOOR or result.no_speech_prob > _SHORT_NO_SPEECH_SURE):
            return [], []
        # scores: log-probability per token (length penalty 1), best first
        return [hyps[0]], [(t, round(result.scores[0] - score, 3)) for t, score in zip(hyps[1:], result.scores[1:])]

    def _suppressed_outside(self, words: frozenset[str]) -> list[int]:
        """Every text token that is not part of a space-led spelling of one of ``words`` (as written,
        lower case or capitalised), a digit or punctuation: Whisper may then only write those words."""
        if self._vocab is not None and self._vocab[0] == words:
            return self._vocab[1]
        allowed: set[int] = set()
        for w in words:
            for form in {w, w.lower(), w.capitalize()}:
                allowed.update(self.tokenizer.encode(" " + form))
        for p in (".", ",", "?", "!", "%", "'s", *(str(d) for d in range(10)), *(f" {d}" for d in range(10))):
            allowed.update(self.tokenizer.encode(p))
        suppressed = [i for i in range(self.tokenizer.eot) if i not in allowed]
        self._vocab = (words, suppressed)
        return suppressed

    def constrained(self, x: np.ndarray, window_s: float, words: frozenset[str], beam_size: int) -> list[str]:
        """The beam search's hypotheses, best first, when Whisper may only write ``words`` (each
        starting at a space), digits and punctuation; those that joined allowed pieces into another
        word are dropped."""
        encoded, _ = self.encode(x, window_s)
        tokens = self.model.get_prompt(self.tokenizer, [], without_timestamps=True)
        budget = len(tokens) + token_budget(x.shape[0] / SAMPLE_RATE)
        result = self.model.model.generate(encoded, [tokens], beam_size=beam_size, num_hypotheses=beam_size, max_length=min(448, budget),
                                           suppress_blank=True, suppress_tokens=self._suppressed_outside(words))[0]
        hyps = [self.tokenizer.decode([t for t in seq if t < self.tokenizer.eot]).strip() for seq in result.sequences_ids]
        # tokens are pieces of words: " M" + "ank" is no word of the list, though both pieces are allowed
        lower = {w.lower() for w in words} | _CLITICS
        return [h for h in hyps if all(w in lower for w in re.findall(r"[a-z]+", h.lower()))]

    def score(self, x: np.ndarray, window_s: float, texts: Sequence[str]) -> list[float]:
        """Each text's mean log-probability per token given the audio (Whisper teacher-forced on it,
        with nothing suppressed): how well the audio supports it, comparable between texts."""
        import ctranslate2  # noqa: PLC0415

        encoded, frames = self.encode(x, window_s)
        batch = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.repeat(np.array(encoded), len(texts), axis=0)))
        tokens = [self.tokenizer.encode(" " + t.strip()) or [self.tokenizer.eot] for t in texts]
        results = self.model.model.align(batch, list(self.tokenizer.sot_sequence), tokens, frames)
        return [float(np.mean(np.log(np.maximum(np.asarray(r.text_token_probs, dtype=np.float64), 1e-12)))) for r in results]


def drop_restart(text: str) -> str:
    """Cut a transcript where it starts saying itself again: ``"Turn on the porch. Turn on the"`` →
    ``"Turn on the porch."`` (a short window's repetition, cut short by the token budget). A later
    sentence is dropped, with what follows, when its words are the start of an earlier one."""
    sentences = re.split(r"(?<=[.?!])\s+", text.strip())
    kept: list[str] = []
    for sentence in sentences:
        words = [_key(w) for w in sentence.split()]
        if kept and words and any(words == [_key(w) for w in k.split()][: len(words)] for k in kept):
            break
        kept.append(sentence)
    return " ".join(kept)


def compression_ratio(text: str) -> float:
    """len(text) / len(zlib(text)), Whisper's measure of repetitiveness."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _key(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def _repeat_at(keys: list[str], i: int) -> int:
    """The length of a run of words starting at ``i`` that is said again right after (0 = none):
    a phrase of two or more words twice, or a single word three times."""
    for n in range(1, (len(keys) - i) // 2 + 1):  # the shortest repeating run, up to a whole sentence said twice
        if i + 2 * n > len(keys) or not all(keys[i : i + n]):
            continue
        if keys[i : i + n] == keys[i + n : i + 2 * n] and (n >= 2 or keys[i + 2 * n : i + 3 * n] == keys[i : i + n]):
            return n
    return 0


def is_loop(text: str) -> bool:
    """A decoding loop ("Dining Room Light, Dining Room Light," / "Bedroom, Bedroom, Bedroom"), by a
    repeated run of words or by Whisper's compression-ratio rule."""
    keys = [_key(w) for w in text.split()]
    return compression_ratio(text) > COMPRESSION_RATIO_MAX or any(_repeat_at(keys, i) for i in range(len(keys)))


def collapse_loops(text: str) -> str:
    """ "Bedroom, Bedroom, Bedroom, Bedroom" → "Bedroom": each repeated run said once."""
    words = text.split()
    keys = [_key(w) for w in words]
    out: list[str] = []
    i = 0
    while i < len(words):
        n = _repeat_at(keys, i)
        if n:
            while keys[i + n : i + 2 * n] == keys[i : i + n]:
                i += n  # skip the earlier copies; the last one is kept
            out.extend(words[i : i + n])
            i += n
            continue
        out.append(words[i])
        i += 1
    return " ".join(out).strip(" ,")


def normalize_transcript(text: str) -> str:
    """Lower case, no punctuation, single spaces: ``"Turn on the lamp."`` → ``"turn on the lamp"``."""
    text = re.sub(r"[^\w\s']", " ", text.lower())
    text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)  # quotes, not apostrophes inside words
    return re.sub(r"\s+", " ", text).strip()


def strip_wake_phrase(text: str, phrases: Sequence[str]) -> str:
    """Drop a wake phrase (or its last word, e.g. "Jarvis,") heard at the start of a transcript."""
    for phrase in sorted(phrases, key=len, reverse=True):
        words = phrase.lower().split()
        for k in range(len(words), 0, -1):
            tail = r"\W*".join(re.escape(w) for w in words[-k:])
            m = re.match(rf"^\W*{tail}\b[\s,.!?;:]*", text, flags=re.IGNORECASE)
            if m:
                return text[m.end() :].strip()
    return text
