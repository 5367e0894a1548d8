"""Speech recognition with faster-whisper (CTranslate2 Whisper, int8 on the CPU)."""

from __future__ import annotations

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

__all__ = ["AsrResult", "SpeechRecognizer", "collapse_loops", "compression_ratio", "is_loop", "normalize_transcript", "strip_wake_phrase"]

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

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        hotwords: Sequence[str] = (),
        initial_prompt: str | None = None,
    ) -> AsrResult:
        """Transcribe one utterance.

        Args:
            audio: 16 kHz mono int16 (or float32 in [-1, 1]).
            hotwords: Names to bias recognition towards (device and area names).
            initial_prompt: Overrides the configured initial prompt.

        Returns:
            The normalised text ("" when nothing was said) and timings.
        """
        t0 = time.perf_counter()
        x = audio.astype(np.float32) / 32768.0 if audio.dtype == np.int16 else audio.astype(np.float32)
        prompt = self.config.initial_prompt if initial_prompt is None else initial_prompt
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
        )
        parts = [s.text for s in segments if not (s.no_speech_prob > _NO_SPEECH_PROB and s.avg_logprob < _LOGPROB_FLOOR)]
        text = re.sub(r"\s+", " ", " ".join(parts)).strip()
        if is_loop(text):
            if hotwords or prompt:
                return self.transcribe(audio, initial_prompt="")  # the biasing started the loop: once more without it
            text = collapse_loops(text)
        return AsrResult(text=text, audio_s=x.shape[0] / SAMPLE_RATE, compute_ms=(time.perf_counter() - t0) * 1000.0)


def compression_ratio(text: str) -> float:
    """len(text) / len(zlib(text)), Whisper's measure of repetitiveness."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _key(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def _repeat_at(keys: list[str], i: int) -> int:
    """The length of a run of words starting at ``i`` that is said again right after (0 = none):
    a phrase of two or more words twice, or a single word three times."""
    for n in range(1, 7):  # the shortest repeating run
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
