"""VAD quality in noise: webrtcvad vs Silero VAD v6, on requests with room noise, music and a TV under them.

Each case is a spoken request (Piper and espeak-ng voices) with 1 s before and 3 s after it,
mixed with a background at a given SNR (relative to the request's active speech level):

* ``room``: pink noise low-passed at 1.5 kHz (sox) — a fan, an air conditioner;
* ``music``: a synthetic arrangement (plucked chords changing every 250 ms, with a bass line);
* ``tv``: another person talking (``oww_negative_reference.wav``, real read speech) — a TV.

Truth comes from the clean request: a 20 ms frame is speech when its energy is within 35 dB of
the loudest frame. Figures per VAD and condition:

* **speech recall** — speech frames called voice;
* **false voice** — frames of the 1 s before and the last 2.5 s after the request called voice;
* **end found** — from the last speech frame to the start of the first 200 ms run of unvoiced
  frames (the pause the turn detector waits for): median, and how many requests never showed
  one in the 3 s after them;
* **CPU** — ms of one core per audio second.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .nlu_voice import _rms, room_noise, voices

SAMPLE_RATE = 16000
FRAME = 320
PAUSE_FRAMES = 10  # 200 ms
TEXTS = [
    "Turn on the kitchen light.", "Set a timer for five minutes.", "What is the capital of France?", "Close the living room blinds.",
    "Turn off the desk lamp please.", "Dim the bedroom lamp to twenty percent.", "Add milk to my shopping list.", "Tell me a joke.",
]


def music(seconds: float, seed: int = 0) -> np.ndarray:
    """Plucked chords every 250 ms over a bass line: broadband, tonal, rhythmic, like music."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    out = np.zeros(n)
    step = SAMPLE_RATE // 4
    t = np.arange(step) / SAMPLE_RATE
    env = np.exp(-t * 6)
    roots = [220.0, 246.9, 261.6, 293.7, 329.6, 349.2, 392.0]
    for start in range(0, n - step, step):
        root = roots[rng.integers(len(roots))]
        tone = sum(np.sin(2 * np.pi * root * r * h * t) / h for r in (1, 1.26, 1.5) for h in (1, 2, 3))
        bass = np.sin(2 * np.pi * root / 4 * t)
        out[start : start + step] += (tone + 2 * bass) * env
    return (out / np.abs(out).max() * 12000).astype(np.int16)


def backgrounds() -> dict[str, np.ndarray]:
    from assistant.audio import read_audio

    from .nlu import fixtures_dir

    return {"room": room_noise("pink", 20.0), "music": music(20.0), "tv": read_audio(fixtures_dir() / "audio" / "oww_negative_reference.wav")}


def truth(clean: np.ndarray) -> np.ndarray:
    frames = clean[: clean.size // FRAME * FRAME].astype(np.float64).reshape(-1, FRAME)
    e = (frames ** 2).mean(axis=1)
    return e >= e.max() / 10 ** 3.5


def decisions(vad, audio: np.ndarray) -> tuple[np.ndarray, float]:
    t0 = time.process_time()
    out = np.array([vad.is_speech(audio[i : i + FRAME]) for i in range(0, audio.size - FRAME + 1, FRAME)])
    return out, (time.process_time() - t0) * 1000


def evaluate(tts, quick: bool = False) -> dict[str, Any]:
    from assistant.speech.vad import SileroVad, Vad

    vs = voices(tts, quick=True)
    bgs = backgrounds()
    texts = TEXTS[:3] if quick else TEXTS
    snrs = (20, 10) if quick else (20, 10, 5)
    makers = {"webrtcvad (2)": lambda: Vad(2), "webrtcvad (3)": lambda: Vad(3), "Silero v6 (0.5)": lambda: SileroVad(0.5)}
    lead, tail = SAMPLE_RATE, 3 * SAMPLE_RATE
    clean_cases = []
    for i, text in enumerate(texts):
        for v in vs:
            speech = v.speak(text)
            clean_cases.append(np.concatenate([np.zeros(lead, np.int16), speech, np.zeros(tail, np.int16)]))
    out: dict[str, Any] = {}
    for kind, bg in bgs.items():
        for snr in snrs:
            rows: dict[str, dict[str, list]] = {name: {"recall": [], "false": [], "end": [], "cpu": [], "audio_s": []} for name in makers}
            for k, clean in enumerate(clean_cases):
                offset = (k * 7919) % max(1, bg.size - clean.size) if bg.size > clean.size else 0
                bed = np.tile(bg, int(np.ceil((clean.size + offset) / bg.size)))[offset : offset + clean.size].astype(np.float64)
                gain = (_rms(clean) / 10 ** (snr / 20)) / max(float(np.sqrt(np.mean(bed ** 2))), 1e-9)
                audio = np.clip(clean + bed * gain, -32768, 32767).astype(np.int16)
                lab = truth(clean)
                speech_idx = np.nonzero(lab)[0]
                last = speech_idx[-1]
                before = slice(0, lead // FRAME - 2)
                after = slice(last + 25, len(lab))
                for name, make in makers.items():
                    d, cpu = decisions(make(), audio)
                    d = d[: len(lab)]
                    r = rows[name]
                    r["recall"].append(d[lab].mean())
                    r["false"].append(np.concatenate([d[before], d[after]]).mean())
                    end = None
                    run = 0
                    for j in range(last + 1, len(d)):
                        run = run + 1 if not d[j] else 0
                        if run >= PAUSE_FRAMES:
                            end = (j - PAUSE_FRAMES + 1 - last - 1) * FRAME / SAMPLE_RATE * 1000
                            break
                    r["end"].append(end)
                    r["cpu"].append(cpu)
                    r["audio_s"].append(audio.size / SAMPLE_RATE)
            for name, r in rows.items():
                ends = [e for e in r["end"] if e is not None]
                out.setdefault(name, {})[f"{kind} {snr} dB"] = {
                    "speech_recall": round(float(np.mean(r["recall"])), 3), "false_voice": round(float(np.mean(r["false"])), 3),
                    "end_found_ms_p50": round(float(np.median(ends)), 0) if ends else None, "end_never": len(r["end"]) - len(ends),
                    "requests": len(r["end"]), "cpu_ms_per_audio_s": round(sum(r["cpu"]) / sum(r["audio_s"]), 2),
                }
    return out
