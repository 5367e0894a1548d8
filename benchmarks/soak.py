"""Soak: a long stretch of mixed audio read faster than real time, with a steady stream of typed
requests at the same time, in one assistant process (a real :class:`Session`: wake word, turn
detection, ASR, router, TTS into a WAV file).

The audio repeats one block: 4 s of silence, 4 s of room noise (sox pink noise), "hey jarvis" +
"turn on the living room lamp", and 1 s after it speech that is not for the assistant (the JFK
clip: a TV or a second person talking right after a command) — so each block holds one command,
and each command is followed by talk that must not become a request (**false requests**: any
final transcript other than the command, per hour of audio; with ``endpoint.follow_up =
"invited"`` the lamp's reply asks nothing, so nothing should be taken without a wake word). Meanwhile an API-like load asks "what time is it" every 0.5 s of wall
time. Every ``sample_s`` the process's RSS and open file descriptors are sampled (``/proc/self``).

Reported: audio hours processed and wall time; commands in the audio vs turns that called the
home tool; typed requests answered / sent; RSS and open files at the first sample after warm-up
and at the end (growth). The quick form runs ~3 minutes of audio, the full one 2 hours.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from assistant.audio import SAMPLE_RATE as SAMPLE_RATE_HZ

from .suite import _proc_mem_mb, clip


def _rss_mb() -> float:
    return _proc_mem_mb(os.getpid())[0]


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _block() -> np.ndarray:
    from .nlu_voice import room_noise

    sil = np.zeros(4 * SAMPLE_RATE_HZ, dtype=np.int16)
    parts = [sil, room_noise("pink", 4.0), clip("hey_jarvis.wav"), np.zeros(int(0.3 * SAMPLE_RATE_HZ), dtype=np.int16),
             clip("wfw_turn_on_the_living_room_lamp.wav"), np.zeros(SAMPLE_RATE_HZ, dtype=np.int16), clip("jfk.flac"), sil]
    return np.concatenate(parts)


async def _run(config: Any, audio_s: float, sample_s: float) -> dict[str, Any]:
    from assistant.audio import write_wav
    from assistant.bus import EventBus
    from assistant.events import FinalTranscript, ToolCallFinished
    from assistant.session import Session, SessionOptions

    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    block = _block()
    n_blocks = max(1, int(audio_s / (len(block) / SAMPLE_RATE_HZ)))
    wav = tmp / "soak.wav"
    write_wav(wav, np.tile(block, n_blocks), SAMPLE_RATE_HZ)
    bus = EventBus()
    home_calls = []
    bus.subscribe(lambda e: home_calls.append(e) if isinstance(e, ToolCallFinished) and e.tool == "home_turn_on" and e.ok else None)
    false_requests: list[str] = []
    bus.subscribe(lambda e: false_requests.append(e.text) if isinstance(e, FinalTranscript) and e.source == "voice"
                  and "lamp" not in e.text.lower() else None)
    cfg = config.with_overrides({"paths.data_dir": str(tmp / "data"), "llm.enabled": False})
    session = Session(cfg, SessionOptions(input_file=wav, output_file=tmp / "replies.wav", realtime=False), bus=bus)
    await session.start()
    samples: list[tuple[float, float, int]] = []
    sent = answered = 0
    stop = asyncio.Event()

    async def typed_load() -> None:
        nonlocal sent, answered
        while not stop.is_set():
            sent += 1
            try:
                if (await asyncio.wait_for(session.ask("what time is it", origin="api"), 30)).startswith("It is"):
                    answered += 1
            except Exception:  # noqa: BLE001 - counted as not answered
                pass
            await asyncio.sleep(0.5)

    async def sampler() -> None:
        while not stop.is_set():
            samples.append((time.perf_counter(), _rss_mb(), _fds()))
            await asyncio.sleep(sample_s)

    t0 = time.perf_counter()
    tasks = [asyncio.create_task(typed_load()), asyncio.create_task(sampler())]
    try:
        await session.run_voice()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        samples.append((time.perf_counter(), _rss_mb(), _fds()))
        await session.close()
    wall = time.perf_counter() - t0
    warm = samples[min(2, len(samples) - 1)]
    end = samples[-1]
    return {
        "audio_h": round(n_blocks * len(block) / SAMPLE_RATE_HZ / 3600, 3), "wall_s": round(wall, 1),
        "commands": n_blocks, "commands_acted_on": len(home_calls),
        "false_requests": len(false_requests), "false_requests_per_audio_hour": round(len(false_requests) / (n_blocks * len(block) / SAMPLE_RATE_HZ / 3600), 1),
        "false_request_texts": false_requests[:10],
        "typed_sent": sent, "typed_answered": answered,
        "rss_mb_after_warmup": round(warm[1], 1), "rss_mb_end": round(end[1], 1), "rss_growth_mb": round(end[1] - warm[1], 1),
        "fds_after_warmup": warm[2], "fds_end": end[2], "fds_growth": end[2] - warm[2],
        "rss_mb_samples": [round(s[1], 1) for s in samples],
    }


def evaluate(config: Any, quick: bool) -> dict[str, Any]:
    out = asyncio.run(_run(config, audio_s=180.0 if quick else 7200.0, sample_s=2.0 if quick else 60.0))
    # the same talk after commands when every reply opens a follow-up window (the old behaviour): what "invited" saves
    always = asyncio.run(_run(config.with_overrides({"endpoint.follow_up": "always"}), audio_s=180.0, sample_s=30.0))
    out["false_requests_follow_up_always"] = {k: always[k] for k in ("commands", "false_requests", "false_requests_per_audio_hour", "false_request_texts")}
    return out
