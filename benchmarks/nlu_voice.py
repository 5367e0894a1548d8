"""The natural-requests evaluation, spoken: real wake word, synthetic voices, room noise, the whole voice loop.

Each case of ``tests/data/nlu`` becomes a recording: 0.4 s of room tone, the real "hey jarvis"
clip (``../shared/fixtures/audio/hey_jarvis.wav``), the request in a synthetic voice, then — when
the assistant will ask — the answer ("the floor lamp", and "yes" for locks, garage doors and
gates), with room noise under everything at a given SNR (relative to the speech). Voices: the
Piper "joe" voice at two speaking rates and espeak-ng voices (Debian package) at two rates. Room
noise: pink and brown noise made by sox (``sox -n … synth … pinknoise lowpass 1500``), the hum
of a room with a fan or an air conditioner in it.

The recording goes through the same :class:`~assistant.pipeline.Pipeline` ``assistant run``
drives (wake word → endpointing → Whisper → router → tools; a file read as fast as possible, so
each turn is answered before more audio is read), and the home's states afterwards are compared
with the expectation exactly as :mod:`benchmarks.nlu` does for typed requests. Also counted:
transcripts that contain a device or area name that was not said (what name biasing can do to
Whisper).

Runs are repeatable: the room noise is seeded (``sox -R``) and Piper's voiced requests are kept
in ``.cache/voiced`` (Piper samples noise, so a fresh synthesis differs a little), so two runs of
different code compare request by request. Confirmations for locks and doors are voiced ("yes" is
in the recording); a question before writing down words Whisper was unsure of ("Add “out milk” to
the shopping list?", ``tools.confirm_dictation_below``) is answered as the user would — yes when
the words are what was said — since whether it is asked is only known while the turn runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .nlu import Case, HomeRunner, Outcome, _check, _diff, fixtures_dir

SAMPLE_RATE = 16000


@dataclass
class Voice:
    name: str
    speak: Callable[[str], np.ndarray]


VOICED_CACHE = Path(__file__).resolve().parent.parent / ".cache" / "voiced"
"""Piper's voiced requests, kept across runs (one ``.npy`` of 16 kHz int16 samples per voice,
model and text)."""


def _kept(key: str, make: Callable[[], np.ndarray]) -> np.ndarray:
    """``make()``, or what it made for ``key`` in an earlier run. Piper samples noise (VITS), so a
    fresh synthesis of the same text differs a little: kept, every run hears the same recording,
    and two runs of the evaluation compare request by request (the room noise is repeatable too:
    :func:`room_noise`). A file that cannot be written or read is made again."""
    path = VOICED_CACHE / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".npy")
    with contextlib.suppress(OSError, ValueError):
        return np.load(path)
    audio = make()
    with contextlib.suppress(OSError):
        VOICED_CACHE.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, audio)
        tmp.replace(path)
    return audio


def voices(tts, quick: bool = False) -> list[Voice]:
    """Piper joe at its own rate and slower (kept across runs: :func:`_kept`); espeak-ng voices
    (when installed; espeak-ng is deterministic)."""
    from assistant.audio import resample

    model = Path(getattr(tts, "voice_path", "") or "piper").name

    def piper(length_scale: float) -> Callable[[str], np.ndarray]:
        def speak(text: str) -> np.ndarray:
            return _kept(f"piper|{model}|{length_scale}|{text}", lambda: synthesize(text))

        def synthesize(text: str) -> np.ndarray:
            tts._syn.length_scale = length_scale
            try:
                audio, _ = tts.synthesize_all(text)
            finally:
                tts._syn.length_scale = tts.config.length_scale
            return resample(audio, tts.sample_rate, SAMPLE_RATE)
        return speak

    def espeak(voice: str, rate: int) -> Callable[[str], np.ndarray]:
        def speak(text: str) -> np.ndarray:
            from assistant.audio import read_audio

            with tempfile.NamedTemporaryFile(suffix=".wav") as f:
                subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", f.name, text], check=True, capture_output=True)
                return read_audio(f.name)
        return speak

    out = [Voice("piper joe 1.0", piper(1.0))]
    if shutil.which("espeak-ng"):
        out.append(Voice("espeak-ng en-gb 150 wpm", espeak("en-gb", 150)))
    if not quick:
        out.append(Voice("piper joe 1.2 (slower)", piper(1.2)))
        if shutil.which("espeak-ng"):
            out.append(Voice("espeak-ng en-us+f3 135 wpm", espeak("en-us+f3", 135)))
    return out


def room_noise(kind: str, seconds: float) -> np.ndarray:
    """Room tone made by sox: ``pink`` or ``brown`` noise, low-passed (a fan, an air conditioner)."""
    from assistant.audio import read_audio

    if not shutil.which("sox"):
        raise RuntimeError("the benchmark's room noise is made by sox: install it (apt install sox; scripts/bootstrap --dev does)")
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:  # -R: repeatable (a fixed seed), the same noise in every run
        subprocess.run(["sox", "-R", "-n", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", f.name, "synth", f"{seconds:.2f}", f"{kind}noise",
                        "lowpass", "1500", "vol", "0.5"], check=True, capture_output=True)
        return read_audio(f.name)


def _rms(x: np.ndarray) -> float:
    """RMS of the active part: 20 ms frames within 30 dB of the loudest (speech, not its pauses)."""
    if x.size < 320:
        return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if x.size else 0.0
    frames = x[: x.size // 320 * 320].astype(np.float64).reshape(-1, 320)
    energy = (frames ** 2).mean(axis=1)
    active = frames[energy >= energy.max() / 1000]
    return float(np.sqrt((active ** 2).mean()))


def _needs_yes(case: Case, runner: HomeRunner) -> bool:
    """Will the assistant ask for confirmation (a lock, a garage door, a gate, a door cover)?"""
    states = runner.states()
    for eid in case.expect or {}:
        e = states.get(eid)
        if e is None:
            continue
        if e.domain in ("lock", "alarm_control_panel") or (e.domain == "cover" and e.device_class in ("garage", "garage_door", "gate", "door")):
            return True
    return False


def recording(case: Case, voice: Voice, noise: np.ndarray, snr_db: float, yes: bool) -> tuple[np.ndarray, list[str]]:
    """The spoken case over room noise, and the texts said in it."""
    from assistant.audio import read_audio

    said = [case.say]
    command = voice.speak(case.say)
    wake = read_audio(fixtures_dir() / "audio" / "hey_jarvis.wav").astype(np.float64)
    wake = np.clip(wake * (_rms(command) / max(_rms(wake), 1e-9)), -32768, 32767).astype(np.int16)  # one speaker, one loudness
    parts = [np.zeros(int(0.4 * SAMPLE_RATE), np.int16), wake, np.zeros(int(0.3 * SAMPLE_RATE), np.int16), command]
    if case.ask and case.then:
        parts += [np.zeros(int(1.3 * SAMPLE_RATE), np.int16), voice.speak(str(case.then))]
        said.append(str(case.then))
    if yes:
        parts += [np.zeros(int(1.3 * SAMPLE_RATE), np.int16), voice.speak("Yes.")]
        said.append("yes")
    parts.append(np.zeros(int(1.6 * SAMPLE_RATE), np.int16))
    speech = np.concatenate(parts)
    reps = int(np.ceil(speech.size / noise.size))
    bed = np.tile(noise, reps)[: speech.size].astype(np.float64)
    gain = (_rms(command) / (10 ** (snr_db / 20))) / max(float(np.sqrt(np.mean(bed ** 2))), 1e-9)
    mixed = speech.astype(np.float64) + bed * gain
    return np.clip(mixed, -32768, 32767).astype(np.int16), said


def invented_names(transcripts: list[str], said: list[str], names: list[str]) -> list[str]:
    """Device or area names in the transcripts that were not said: the name is in a transcript and
    no stretch of what was said is close to it (rapidfuzz partial ratio < 80, so "patio door lock"
    heard for "patio door locked" is not an invention, "Office" in front of a command is)."""
    from rapidfuzz import fuzz

    from assistant.home import normalize

    heard = " " + " ".join(normalize(t) for t in transcripts) + " "
    spoken = " ".join(normalize(t) for t in said)
    out = []
    for n in names:
        k = normalize(n)
        if len(k) >= 3 and f" {k} " in heard and fuzz.partial_ratio(k, spoken) < 80:
            out.append(n)
    return out


@dataclass
class VoicedOutcome(Outcome):
    voice: str = ""
    snr_db: float = 0.0
    transcripts: tuple[str, ...] = ()
    invented: tuple[str, ...] = ()
    dictation: tuple[tuple[str, float, bool], ...] = ()
    """Each question before a dictated tool call (``tools.confirm_dictation_below``): its words,
    Whisper's score of the transcript, and whether the words were what was said (the answer)."""


async def evaluate_voiced(cases: list[Case], speech, *, conditions: list[tuple[Voice, str, float]], config_overrides: dict[str, Any] | None = None,
                          hotwords: bool | None = None, progress: Callable[[VoicedOutcome], None] | None = None) -> list[VoicedOutcome]:
    """Run every case under every (voice, noise kind, SNR) condition through the voice loop."""
    from assistant.app import build_listener
    from assistant.audio import ArraySource
    from assistant.events import FinalTranscript, RouteDecided
    from assistant.pipeline import Pipeline

    noises = {kind: room_noise(kind, 20.0) for kind in {c[1] for c in conditions}}
    out: list[VoicedOutcome] = []
    by_home: dict[tuple[str, str], list[Case]] = {}
    for c in cases:
        by_home.setdefault((c.home, c.area), []).append(c)
    wake_model = speech.listener.wake.model
    current: dict[str, Any] = {}

    async def by_voice(request) -> bool:  # confirmations are asked and answered by voice, as in `assistant run`
        if request.reason == "dictation":  # "Add “out milk” to …?": answered as the user would, yes when the words are what was said
            from assistant.engine.context import current as turn_context

            words = " ".join(str(request.arguments.get(a) or "") for a in request.tool.dictated).strip()
            heard = turn_context().heard
            score = await heard() if heard is not None else 0.0
            right = _said_right(words, current["case"])
            current["dictation"].append((words, round(score, 3), right))
            return right
        return await current["pipe"].ask_yes_no(request.prompt)

    for (home, area), group in by_home.items():
        runner = HomeRunner(home, area, config_overrides=config_overrides, confirm=by_voice)
        await runner.start()
        names = [n for e in runner.initial for n in e.names()] + [a.name for a in runner.home.snapshot().areas]
        cfg = runner.controller.router.config
        if hotwords is not None:
            cfg = cfg.with_overrides({"asr.bias_to_tools": hotwords})
        try:
            for c in group:
                for voice, kind, snr in conditions:
                    runner.reset(c.setup)
                    before = runner.states()
                    audio, said = recording(c, voice, noises[kind], snr, _needs_yes(c, runner))
                    wake_model.reset()
                    start = len(runner.events)
                    pipe = Pipeline(cfg, build_listener(cfg, wake_model), asr=speech.asr, tts=None, responder=runner.controller.router,
                                    sink=None, bus=runner.bus, rescorer=runner.controller.rescorer)
                    current["pipe"] = pipe
                    current["case"], current["dictation"] = c, []
                    if pipe.voice is not None:  # the voice channel asks its own questions: a dictation question goes to the "user"
                        voiced = pipe.voice.channel.confirm_hook
                        pipe.voice.channel.confirm_hook = lambda r, _v=voiced: by_voice(r) if r.reason == "dictation" else _v(r)
                    await pipe.run(ArraySource(audio, realtime=False))
                    events = runner.events[start:]
                    transcripts = tuple(e.text for e in events if isinstance(e, FinalTranscript))
                    routes = [e.route for e in events if isinstance(e, RouteDecided)]
                    after = runner.states()
                    changed = _diff(before, after)
                    why = ""
                    for eid, spec in (c.expect or {}).items():
                        why = _check(eid, spec, before.get(eid), after.get(eid), runner.home.calls)
                        if why:
                            break
                    extra = {k: v for k, v in changed.items() if k not in (c.expect or {})}
                    false_action = bool(extra) or bool(why and any(k in changed for k in (c.expect or {})))
                    if extra and not why:
                        why = f"also changed {extra}"
                    if c.answer is not None and not why:
                        from assistant.events import Reply

                        reply = " ".join(e.text for e in events if isinstance(e, Reply)).casefold()
                        missing = [w for w in c.answer if w.casefold() not in reply]
                        if missing:
                            why = f"answer lacks {missing}"
                    if not transcripts and not why:
                        why = "nothing transcribed"
                    o = VoicedOutcome(c, ok=not why, false_action=false_action, route=routes[-1] if routes else "none", reply="", why=why, ms=0.0,
                                      changed=changed, voice=voice.name, snr_db=snr, transcripts=transcripts,
                                      invented=tuple(invented_names(list(transcripts), said, names)), dictation=tuple(current["dictation"]))
                    out.append(o)
                    if progress:
                        progress(o)
        finally:
            await runner.close()
    return out


def _said_right(words: str, case: Case) -> bool:
    """Whether dictated ``words`` are an item the case expects added (what the user said)."""
    from assistant.home.text import normalize

    items = [i for spec in (case.expect or {}).values() if isinstance(spec, dict) for i in spec.get("items_add", [])]
    return any(normalize(words) == normalize(str(i)) for i in items)


def summarize_voiced(outcomes: list[VoicedOutcome]) -> dict[str, Any]:
    n = len(outcomes)
    by_voice: dict[str, list[VoicedOutcome]] = {}
    for o in outcomes:
        by_voice.setdefault(f"{o.voice}, SNR {o.snr_db:g} dB", []).append(o)
    return {
        "n": n,
        "ok": sum(o.ok for o in outcomes),
        "accuracy": round(sum(o.ok for o in outcomes) / n, 3) if n else 0.0,
        "false_actions": sum(o.false_action for o in outcomes),
        "false_action_rate": round(sum(o.false_action for o in outcomes) / n, 3) if n else 0.0,
        "transcripts_with_invented_names": sum(1 for o in outcomes if o.invented),
        "dictation_questions": {"asked": sum(len(o.dictation) for o in outcomes),
                                "words_right": sum(right for o in outcomes for _w, _s, right in o.dictation),
                                "each": [[o.case.id, o.voice, w, s, right] for o in outcomes for w, s, right in o.dictation]},
        "by_condition": {k: {"n": len(v), "ok": sum(x.ok for x in v), "accuracy": round(sum(x.ok for x in v) / len(v), 3)} for k, v in sorted(by_voice.items())},
        "failures": [{"id": o.case.id, "say": o.case.say, "voice": o.voice, "snr_db": o.snr_db, "heard": list(o.transcripts), "why": o.why,
                      "invented": list(o.invented)} for o in outcomes if not o.ok],
    }


def main() -> None:  # pragma: no cover - a developer's loop: python -m benchmarks.nlu_voice [dev|heldout] [--no-bias] [ids...]
    import json
    import sys

    from assistant.app import load_speech
    from assistant.config import Config

    from .nlu import load_cases
    from .suite import MODELS, ROOT

    split = "heldout" if "heldout" in sys.argv else "dev"
    only = [a for a in sys.argv[1:] if not a.startswith("-") and a not in ("dev", "heldout")]
    cases = [c for c in load_cases((split,)) if not only or any(c.id.startswith(p) for p in only)]
    store = ROOT / ".cache" / "bench-store"
    overrides = {"paths.models_dir": str(store), "asr.threads": 2, "tts.threads": 2, **MODELS}
    config = Config().with_overrides(overrides)
    speech = asyncio.run(load_speech(config))
    for arg in sys.argv:
        if arg.startswith("--prompt="):
            speech.asr.config = speech.asr.config.model_copy(update={"initial_prompt": arg.removeprefix("--prompt=")})
    conds = [(v, "pink", 20.0) for v in voices(speech.tts, quick="--quick" in sys.argv)]
    if "--noisy" in sys.argv:
        conds += [(v, "brown", 10.0) for v in voices(speech.tts, quick=True)]
    outcomes = asyncio.run(evaluate_voiced(cases, speech, conditions=conds, config_overrides=overrides,
                                           hotwords=False if "--no-bias" in sys.argv else None,
                                           progress=lambda o: print(("ok  " if o.ok else "FALSE" if o.false_action else "FAIL") + f" {o.case.id} [{o.voice}] {o.transcripts} {o.why}"
                                                                     + (f" changed {o.changed}" if o.false_action else ""), flush=True)))
    s = summarize_voiced(outcomes)
    print(json.dumps({k: v for k, v in s.items() if k != "failures"}, indent=1))


if __name__ == "__main__":
    main()
