"""Whisper's encoder window: a short window for commands vs Whisper's full 30 s (section ``asr``).

Requests of the natural-requests development split (``tests/data/nlu/dev``; never the held-out
split), each spoken by the Piper voice and an espeak-ng voice, 0.3 s of room tone before and 0.26 s
after (what the speculative recognition at a pause sees), pink room noise at 20 dB SNR. Each is
transcribed with ``asr.window_s`` = 10 and with the full window; reported per window: word error
rate against the request text (numbers as words), exact transcripts, empty transcripts, and the
recognition's wall time (``AsrResult.compute_ms``: features + encoder + decoder) p50 / p95.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

import numpy as np

from .nlu import load_cases
from .nlu_voice import _rms, room_noise, voices

SAMPLE_RATE = 16000
WINDOWS = (10.0, 30.0)


def _words(text: str) -> str:
    from assistant.speech.asr import normalize_transcript

    text = re.sub(r"(\d+)\s*%", r"\1 percent", text)
    return normalize_transcript(text)


def bench_window(ctx) -> dict[str, Any]:
    import jiwer

    asr = ctx.speech.asr
    cases = load_cases(("dev",))
    rng = np.random.default_rng(0)
    cases = [cases[i] for i in sorted(rng.choice(len(cases), size=12 if ctx.quick else 60, replace=False))]
    noise = room_noise("pink", 30.0)
    clips: list[tuple[str, np.ndarray]] = []
    for voice in voices(ctx.speech.tts, quick=True):
        for case in cases:
            command = voice.speak(case.say)
            speech = np.concatenate([np.zeros(int(0.3 * SAMPLE_RATE), np.int16), command, np.zeros(int(0.26 * SAMPLE_RATE), np.int16)]).astype(np.float64)
            bed = np.tile(noise, 2)[: speech.size].astype(np.float64)
            gain = (_rms(command) / 10 ** (20 / 20)) / max(float(np.sqrt(np.mean(bed ** 2))), 1e-9)
            clips.append((case.say, np.clip(speech + bed * gain, -32768, 32767).astype(np.int16)))
    out: dict[str, Any] = {"requests": len(cases), "clips": len(clips)}
    for window in WINDOWS:
        asr.transcribe(clips[0][1], window_s=window)  # warm
        refs, hyps, times = [], [], []
        for ref, audio in clips:
            r = asr.transcribe(audio, window_s=window)
            refs.append(_words(ref))
            hyps.append(_words(r.text))
            times.append(r.compute_ms)
        out[f"window_{window:g}s"] = {
            "wer": round(jiwer.wer(refs, [h or "-" for h in hyps]), 3),
            "exact": sum(a == b for a, b in zip(refs, hyps)),
            "empty": sum(not h for h in hyps),
            "compute_ms_p50": round(statistics.median(times), 1),
            "compute_ms_p95": round(float(np.percentile(times, 95)), 1),
        }
    return out
