"""Speech synthesis with piper, sentence by sentence.

:class:`SentenceSplitter` cuts streamed reply text into sentences as soon as each is complete;
:class:`SpeechSynthesizer` turns each into audio, so the first sentence can play while the rest of
the reply is still being generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import numpy as np

from ..audio.io import to_int16
from ..config import TtsConfig
from ..errors import ModelError, require
from .piper_stream import StreamedVoice, soft_limit

__all__ = ["CACHE_MAX_CHARS", "SentenceSplitter", "SpeechSynthesizer", "earcon"]

log = logging.getLogger(__name__)

CACHE_MAX_CHARS = 160
"""Longest text whose audio is kept for when it is said again (a device reply, a question back;
not an LLM's answer, which is rarely the same twice)."""

_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "approx", "no", "jr", "sr"}
_BOUNDARY = re.compile(r"([.!?…]+[\"')\]]*)(\s+)|(\n+)")


_CLAUSE = re.compile(r"[,;:]\s")


class SentenceSplitter:
    """Streaming sentence segmentation for reply text.

    Feed text pieces as they are generated; complete sentences come out as soon as the space after
    their final punctuation arrives. Decimal numbers ("3.5"), and common abbreviations ("Dr.") do
    not end a sentence.

    The reply's first words can go out sooner: while no sentence has come out yet and the text so
    far holds no sentence end, a clause of at least ``first_clause_words`` words ending in a comma,
    semicolon or colon comes out on its own ("The largest planet is Jupiter," while the model is
    still generating "which is …"), so speech starts while the rest of the first sentence is being
    generated — the first-clause chunking of streaming voice agents. Text that arrives whole (a
    template reply) holds its sentence end already and is split only into sentences. 0 = off.
    """

    def __init__(self, first_clause_words: int = 0) -> None:
        self._buf = ""
        self._first_clause_words = first_clause_words
        self._started = False

    def feed(self, piece: str) -> list[str]:
        """Add text; return the sentences (or first clause) it completed."""
        self._buf += piece
        out = self._sentences()
        if out:
            self._started = True
        elif not self._started and self._first_clause_words and not re.search(r"[.!?…\n]", self._buf):
            for m in _CLAUSE.finditer(self._buf):
                clause = self._buf[: m.start() + 1].strip()
                if len(clause.split()) >= self._first_clause_words:
                    self._buf = self._buf[m.end() :]
                    self._started = True
                    return [clause]
        return out

    def _sentences(self) -> list[str]:
        out: list[str] = []
        start = 0
        for m in _BOUNDARY.finditer(self._buf):
            if m.group(3) is None:
                before = self._buf[start : m.start()]
                last_word = re.findall(r"[\w.]+$", before)
                if last_word and last_word[0].lower().rstrip(".") in _ABBREVIATIONS and m.group(1) == ".":
                    continue
            sentence = self._buf[start : m.end()].strip()
            if sentence:
                out.append(sentence)
            start = m.end()
        self._buf = self._buf[start:]
        return out

    def flush(self) -> list[str]:
        """The rest of the text, at the end of the reply."""
        rest, self._buf = self._buf.strip(), ""
        return [rest] if rest else []


class SpeechSynthesizer:
    """A loaded piper voice.

    Replies said again are not synthesised again: up to ``config.cache_s`` seconds of audio of
    short texts (a sentence or two, :data:`CACHE_MAX_CHARS`) are kept, least recently used dropped
    first. Piper samples noise, so a fresh synthesis differs slightly (unless
    ``config.noise_scale`` and ``config.noise_w_scale`` are 0); a cached one is the same each time.

    Args:
        voice_path: The ``.onnx`` voice; its ``.onnx.json`` config must sit beside it.
        config: Threads, speaking rate, sampling noise, volume, cache size.

    Raises:
        ModelError: The voice or its config is missing or corrupt.
        MissingDependencyError: piper-tts is not installed.
    """

    def __init__(self, voice_path: Path, config: TtsConfig) -> None:
        require("piper", "tts", "speech synthesis")
        import onnxruntime  # noqa: PLC0415
        from piper import PiperVoice, SynthesisConfig  # noqa: PLC0415
        from piper.config import PiperConfig  # noqa: PLC0415

        voice_path = Path(voice_path)
        self.voice_path = voice_path
        """The voice's ``.onnx`` file."""
        config_path = Path(str(voice_path) + ".json")
        if not voice_path.is_file():
            raise ModelError(f"piper voice {voice_path} does not exist", hint="run `assistant models pull piper-en_US-joe-medium`")
        if not config_path.is_file():
            raise ModelError(f"piper voice config {config_path} does not exist", hint="the .onnx.json file must sit beside the voice")
        try:
            piper_config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"piper voice config {config_path} is corrupt: {exc}", hint="fetch the voice again") from None
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = config.threads or (os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        self._split: StreamedVoice | None = StreamedVoice.load(voice_path, opts) if config.stream else None
        try:
            session = self._split.front if self._split is not None else onnxruntime.InferenceSession(
                str(voice_path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"cannot load piper voice {voice_path}: {exc}", hint="the file is corrupt; fetch the voice again") from None
        self._voice = PiperVoice(session=session, config=piper_config)
        self._syn = SynthesisConfig(
            length_scale=config.length_scale, noise_scale=config.noise_scale, noise_w_scale=config.noise_w_scale, volume=config.volume
        )
        if self._split is not None:
            try:
                self._split.calibrate(self._voice, self._scales())
            except Exception as exc:  # noqa: BLE001 - the whole-sentence path still works
                log.warning("streamed synthesis off for %s: calibration failed (%s: %s)", voice_path.name, type(exc).__name__, exc)
                self._split = None
                self._voice = PiperVoice(session=onnxruntime.InferenceSession(str(voice_path), sess_options=opts, providers=["CPUExecutionProvider"]),
                                         config=piper_config)
        self.sample_rate = int(piper_config.sample_rate)
        self.config = config
        self._cache: Any = None
        if config.cache_s > 0:
            from cachetools import LRUCache  # noqa: PLC0415

            self._cache = LRUCache(maxsize=int(config.cache_s * self.sample_rate), getsizeof=lambda parts: sum(p.shape[0] for p in parts) or 1)
        self._cache_lock = threading.Lock()
        self._making: dict[str, threading.Event] = {}
        """Cacheable texts being synthesised now (set when their audio is cached, or failed)."""
        self.cache_hits = 0
        """Texts served from the cache."""
        self.prefetch_hits = 0
        """Texts served from the cache that :meth:`prefetch` put there."""
        self._prefetched: set[str] = set()

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """Mono int16 audio at :attr:`sample_rate`, in pieces as they are made (:meth:`_make`; from the
        cache when ``text`` was said before or :meth:`prefetch` made it; a synthesis of the same
        text under way in another thread is waited for, not repeated). Thread-safe."""
        cacheable = self._cache is not None and len(text) <= CACHE_MAX_CHARS
        making = threading.Event()
        while cacheable:
            with self._cache_lock:
                parts = self._cache.get(text)
                other = self._making.get(text) if parts is None else None
                if parts is not None:
                    self.cache_hits += 1
                    if text in self._prefetched:
                        self._prefetched.discard(text)
                        self.prefetch_hits += 1
                elif other is None:
                    self._making[text] = making
            if parts is not None:
                yield from parts
                return
            if other is None:
                break
            other.wait()  # the same text is being made in another thread: its audio will be cached
        made = []
        try:
            for audio in self._make(text):
                audio.flags.writeable = False  # shared with later hits
                made.append(audio)
                yield audio
            if cacheable and made:
                with self._cache_lock:
                    with contextlib.suppress(ValueError):  # longer than the whole cache
                        self._cache[text] = tuple(made)
        finally:
            if cacheable:
                with self._cache_lock:
                    if self._making.get(text) is making:
                        del self._making[text]
                making.set()

    @property
    def streamed(self) -> bool:
        """Whether sentences come out in pieces as they are decoded (:mod:`assistant.speech.piper_stream`)."""
        return self._split is not None

    def _scales(self) -> tuple[float, float, float]:
        """(noise_scale, length_scale, noise_w_scale) in force: the configured ones, else the voice's."""
        syn, own = self._syn, self._voice.config
        return (own.noise_scale if syn.noise_scale is None else syn.noise_scale,
                own.length_scale if syn.length_scale is None else syn.length_scale,
                own.noise_w_scale if syn.noise_w_scale is None else syn.noise_w_scale)

    def _make(self, text: str) -> Iterator[np.ndarray]:
        """Synthesise ``text``: int16 pieces — one per sentence piper finds in it, or, streamed,
        each sentence's first ~0.28 s and then ~1.1 s pieces (:class:`StreamedVoice`)."""
        if self._split is None:
            for chunk in self._voice.synthesize(text, self._syn):
                yield to_int16(chunk.audio_float_array)
            return
        scales = self._scales()
        gain = self._split.gain * self._syn.volume
        for phonemes in self._voice.phonemize(text):
            if not phonemes:
                continue
            z = self._split.latent(self._voice.phonemes_to_ids(phonemes), scales)
            for piece in self._split.decode(z):
                yield to_int16(soft_limit(piece * gain))

    async def pieces(self, text: str) -> AsyncIterator[np.ndarray]:
        """:meth:`synthesize` run in a worker thread, each piece handed over as soon as it is made
        (a streamed voice's first ~0.28 s plays while the rest is decoded). Stopping early (the reply
        was interrupted) ends the synthesis at its next piece; its errors are raised here."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()
        end = object()

        def put(item) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (shutdown)
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            made = self.synthesize(text)
            try:
                for piece in made:
                    put(piece)
                    if stop.is_set():
                        break
            except Exception as exc:  # noqa: BLE001 - raised again in the loop
                put(_Failed(exc))
            finally:
                made.close()
                put(end)

        worker = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            while (item := await queue.get()) is not end:
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            stop.set()
            if not worker.done():
                worker.add_done_callback(lambda w: w.cancelled() or w.exception())  # awaited by nobody: no warning

    def prefetch(self, text: str) -> bool:
        """Synthesise ``text`` into the cache now, so that saying it later costs no synthesis
        (speculative synthesis: the first sentence of a reply the local LLM prepared before the
        user's turn ended, :class:`~assistant.engine.voice.VoiceLoop`). Blocking; thread-safe; a
        :meth:`synthesize` of the same text meanwhile waits for this one. Returns False (nothing
        done) when the cache is off or the text is longer than :data:`CACHE_MAX_CHARS`."""
        if self._cache is None or not text or len(text) > CACHE_MAX_CHARS:
            return False
        with self._cache_lock:
            if text in self._cache or text in self._making:
                return True
            if len(self._prefetched) >= 16:
                self._prefetched.clear()
            self._prefetched.add(text)
        for _ in self.synthesize(text):
            pass
        return True

    def clear_cache(self) -> None:
        """Forget every cached reply (benchmarks measure synthesis from cold)."""
        if self._cache is not None:
            with self._cache_lock:
                self._cache.clear()
                self._prefetched.clear()

    def synthesize_all(self, text: str) -> tuple[np.ndarray, float]:
        """The whole text as one array, and the ms until the first sentence's audio was ready."""
        t0 = time.perf_counter()
        first_ms = 0.0
        parts = []
        for audio in self.synthesize(text):
            if not parts:
                first_ms = (time.perf_counter() - t0) * 1000.0
            parts.append(audio)
        return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)), first_ms


class _Failed:
    """An error raised in :meth:`SpeechSynthesizer.pieces`' worker thread, carried to the loop."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def earcon(rate: int = 22050, freq: float = 880.0, ms: int = 120) -> np.ndarray:
    """A short soft tone (int16) played the instant an utterance ends, before the reply is ready."""
    n = int(rate * ms / 1000)
    t = np.arange(n) / rate
    env = np.sin(np.pi * np.arange(n) / n) ** 2  # Hann window: no clicks
    return to_int16(0.25 * env * np.sin(2 * np.pi * freq * t))
