"""The benchmark suite: latency, accuracy, CPU and memory, with a naive pipeline side by side.

Every figure is measured here, on this machine, with the models in the store the suite is pointed
at (``scripts/bench`` builds one from the fixture models: Whisper tiny.en, SmolLM2-135M Q4_1,
Piper joe-medium, openWakeWord hey_jarvis). Results go to ``<out>/results.json``, a table on
stdout, and PNG plots in ``<out>``.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("ASSISTANT_FIXTURES", ROOT.parent / "shared" / "fixtures"))
AUDIO = FIXTURES / "audio"
DATA = Path(__file__).parent / "data"

MODELS = {
    "asr.model": "whisper-tiny.en",
    "llm.model": "smollm2-135m-instruct",
    "tts.voice": "piper-en_US-joe-medium",
}


def stats(values: list[float]) -> dict[str, float]:
    """n, p50, p95, mean, min, max of a list of numbers (p95 by nearest rank)."""
    if not values:
        return {"n": 0}
    v = sorted(values)
    return {
        "n": len(v), "p50": round(statistics.median(v), 2), "p95": round(v[min(len(v) - 1, int(round(0.95 * len(v) + 0.5)) - 1)], 2),
        "mean": round(statistics.fmean(v), 2), "min": round(v[0], 2), "max": round(v[-1], 2),
    }


@dataclass
class Context:
    config: Any
    quick: bool
    out: Path
    results: dict[str, Any] = field(default_factory=dict)
    speech: Any = None
    controller: Any = None
    bus: Any = None

    @property
    def reps(self) -> int:
        return 3 if self.quick else 10


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model or platform.processor(), "cores": os.cpu_count(), "python": platform.python_version(),
            "machine": platform.machine(), "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


# ---------------------------------------------------------------------------- helpers


def clip(name: str) -> np.ndarray:
    from assistant.audio import read_audio

    return read_audio(AUDIO / name)


def silence(s: float) -> np.ndarray:
    return np.zeros(int(s * 16000), dtype=np.int16)


def synth(tts, text: str, length_scale: float | None = None) -> np.ndarray:
    from assistant.audio import resample

    if length_scale is not None:
        tts._syn.length_scale = length_scale
    audio, _ = tts.synthesize_all(text)
    tts._syn.length_scale = tts.config.length_scale
    return resample(audio, tts.sample_rate, 16000)


def espeak(text: str, voice: str, speed: int = 160) -> np.ndarray | None:
    """Speech from espeak-ng (Debian package), or None when it is not installed."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    import tempfile

    from assistant.audio import read_audio

    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", f.name, text], check=True, capture_output=True)
        return read_audio(f.name)


class NullSink:
    """Counts reply audio and notes when the first chunk arrived."""

    sample_rate = None

    def __init__(self) -> None:
        self.samples = 0

    async def play(self, samples, rate):
        self.samples += len(samples)

    async def drain(self):
        pass

    async def interrupt(self):
        pass

    async def close(self):
        pass


# ---------------------------------------------------------------------------- sections


def bench_e2e(ctx: Context) -> None:
    """End of utterance → first reply audio, ours vs the sequential pipeline (same router, warm LLM cache), per route.

    The clock starts when the endpointer declares the end (after its silence); the ``turn`` section
    measures from the user's last voiced frame instead, which is what the user waits."""
    from assistant.audio import ArraySource
    from assistant.app import build_listener
    from assistant.events import RouteDecided, StageTiming
    from assistant.pipeline import Pipeline
    from assistant.speech.asr import strip_wake_phrase
    from assistant.speech.endpoint import UtteranceEnd

    tts, asr = ctx.speech.tts, ctx.speech.asr
    recordings = {
        "fast_path": np.concatenate([silence(0.5), clip("hey_jarvis.wav"), silence(0.3), clip("wfw_turn_on_the_living_room_lamp.wav"), silence(1.0)]),
        "local_llm": np.concatenate([silence(0.5), clip("hey_jarvis.wav"), silence(1.0), synth(tts, "What is the capital of France?"), silence(1.0)]),
    }
    wake_model = ctx.speech.listener.wake.model
    out: dict[str, Any] = {}
    for name, audio in recordings.items():
        ours: list[float] = []
        stages: dict[str, list[float]] = {}
        routes: list[str] = []
        for _ in range(ctx.reps):
            ctx.controller.router.conversation.clear()
            bus_events: list = []
            listener = build_listener(ctx.config, wake_model, ctx.speech.turn, ctx.speech.turn_text)
            wake_model.reset()
            sink = NullSink()
            pipe = Pipeline(ctx.config.with_overrides({"endpoint.follow_up_s": 0.0}), listener, asr=asr, tts=tts,
                            responder=ctx.controller.router, sink=sink, bus=ctx.bus, rescorer=ctx.controller.rescorer)
            unsub = ctx.bus.subscribe(bus_events.append)
            asyncio.run(pipe.run(ArraySource(audio, realtime=True)))  # at speech speed, as from a microphone
            unsub()
            turn_stages: dict[str, float] = {}
            for e in bus_events:
                if isinstance(e, StageTiming):
                    turn_stages[e.stage] = turn_stages.get(e.stage, 0.0) + e.ms
                if isinstance(e, RouteDecided):
                    routes.append(e.route)
            if "first_audio" in turn_stages:
                ours.append(turn_stages["first_audio"])
            for k, v in turn_stages.items():
                stages.setdefault(k, []).append(v)

        # the sequential pipeline a competent engineer would write: the same utterance transcribed
        # whole after the endpoint, the same router (templates, tolerant tier, the local LLM with its
        # prompt prefix cached and warm), the whole reply synthesised, then played
        listener = build_listener(ctx.config, wake_model)
        wake_model.reset()
        utt = None
        for i in range(0, len(audio) - 319, 320):
            r = listener.process(audio[i : i + 320])
            if isinstance(r, UtteranceEnd):
                utt = r
                break
        naive: list[float] = []
        router = ctx.controller.router
        for _ in range(max(2, ctx.reps // 2)):
            router.conversation.clear()
            t0 = time.perf_counter()
            text = strip_wake_phrase(asr.transcribe(utt.audio).text, ["hey jarvis"])

            async def whole() -> str:
                return "".join([p async for p in router.respond(text, turn=0)])

            reply = asyncio.run(whole()) or "Sorry, I can't help with that."
            tts.synthesize_all(reply)
            naive.append((time.perf_counter() - t0) * 1000)
        s_ours, s_naive = stats(ours), stats(naive)
        out[name] = {
            "routes": sorted(set(routes)), "ours_ms": s_ours, "naive_ms": s_naive,
            "ratio_naive_over_ours_p50": round(s_naive["p50"] / s_ours["p50"], 2) if s_ours.get("p50") else None,
            "stages_ms": {k: stats(v) for k, v in stages.items()}, "raw": {"ours": ours, "naive": naive},
        }
    ctx.results["e2e"] = out


def bench_wake(ctx: Context) -> None:
    """Detection rate, false activations per hour, CPU per audio second with the gate on and off."""
    from assistant.speech.wake import WakeStage

    tts = ctx.speech.tts
    wm = ctx.speech.listener.wake.model

    def detections(audio: np.ndarray, gated: bool = True) -> tuple[int, WakeStage]:
        wm.reset()
        stage = WakeStage(wm, ctx.config.wake.model_copy(update={"vad_gate": gated}))
        n = 0
        for i in range(0, len(audio) - 319, 320):
            if stage.process(audio[i : i + 320]) is not None:
                n += 1
        return n, stage

    positives: dict[str, np.ndarray] = {"fixture hey_jarvis.wav": clip("hey_jarvis.wav")}
    for ls in (0.8, 1.0, 1.25):
        positives[f"piper joe, length_scale {ls}"] = synth(tts, "Hey Jarvis.", ls)
    for voice in (["en-us", "en-gb"] if ctx.quick else ["en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-us+f2", "en-gb-scotland"]):
        a = espeak("Hey Jarvis", voice)
        if a is not None:
            positives[f"espeak-ng {voice}"] = a
    pos_results = {}
    for name, a in positives.items():
        n, _ = detections(np.concatenate([silence(0.5), a, silence(0.8)]))
        pos_results[name] = n
    detected = sum(1 for v in pos_results.values() if v >= 1)

    negatives = [clip(n) for n in ("oww_negative_reference.wav", "rhino_test_within_context.wav", "rhino_test_out_of_context.wav",
                                     "jfk.flac", "turn_on_the_office_lights_test_clip.wav", "alexa.wav", "computer.wav", "hey_mycroft.wav",
                                     "hey_rhasspy.wav", "ok_nabu.wav", "snowboy.wav", "wfw_turn_on_the_living_room_lamp.wav",
                                     "synthetic_turn_on_the_living_room_light.wav")]
    lines = [l for l in (DATA / "negative_text.txt").read_text().splitlines() if l.strip()]
    if ctx.quick:
        lines = lines[:4]
    negatives += [synth(tts, l) for l in lines]
    for voice in ([] if ctx.quick else ["en-us", "en-gb+m3"]):
        for l in lines[:15]:
            a = espeak(l, voice)
            if a is not None:
                negatives.append(a)
    neg = np.concatenate([np.concatenate([n, silence(0.4)]) for n in negatives])
    fa, _ = detections(neg)
    hours = len(neg) / 16000 / 3600

    # CPU per audio second: 60 s of silence and 60 s of speech, gate on and off
    speech60 = np.tile(neg, int(np.ceil(60 * 16000 / len(neg))))[: 60 * 16000]
    cpu = {}
    for label, audio in (("silence", silence(30 if ctx.quick else 60)), ("speech", speech60[: (30 if ctx.quick else 60) * 16000])):
        for gated in (True, False):
            t0 = time.process_time()
            detections(audio, gated)
            cpu[f"{label}, gate {'on' if gated else 'off'}"] = round((time.process_time() - t0) / (len(audio) / 16000) * 1000, 3)
    ctx.results["wake"] = {
        "positives": pos_results, "detection_rate": round(detected / len(positives), 3), "positive_clips": len(positives),
        "negative_audio_minutes": round(hours * 60, 1), "false_activations": fa, "false_activations_per_hour": round(fa / hours, 2),
        "cpu_ms_per_audio_s": cpu,
    }


def bench_asr(ctx: Context) -> None:
    """Real-time factor and word error rate on clips with reference transcripts."""
    import jiwer

    from assistant.speech.asr import normalize_transcript

    refs = {
        "hey_jarvis.wav": "hey jarvis",
        "wfw_turn_on_the_living_room_lamp.wav": "turn on the living room lamp",
        "synthetic_turn_on_the_living_room_light.wav": "turn on the living room light",
        "rhino_test_within_context.wav": "can i have a medium double shot americano",
        "jfk.flac": "and so my fellow americans ask not what your country can do for you ask what you can do for your country",
    }
    asr = ctx.speech.asr
    rows = {}
    all_ref, all_hyp, rtf_all = [], [], []
    for name, ref in refs.items():
        audio = clip(name)
        rtfs, hyp = [], ""
        for _ in range(3):
            r = asr.transcribe(audio)
            rtfs.append(r.real_time_factor)
            hyp = normalize_transcript(r.text)
        rtf_all += rtfs
        all_ref.append(ref)
        all_hyp.append(hyp)
        rows[name] = {"rtf_p50": round(statistics.median(rtfs), 3), "audio_s": round(len(audio) / 16000, 2), "wer": round(jiwer.wer(ref, hyp), 3), "heard": hyp}
    from .asr_window import bench_window

    ctx.results["asr"] = {"clips": rows, "wer_overall": round(jiwer.wer(all_ref, all_hyp), 3), "rtf_p50": round(statistics.median(rtf_all), 3),
                          "model": ctx.config.asr.model, "threads": ctx.config.asr.threads, "window": bench_window(ctx)}


def bench_jump_forward(local, registry, questions: int, rounds: int) -> dict[str, Any]:
    """The local LLM's tool call made three ways: token by token under one grammar, with its fixed
    JSON written in (jump-forward decoding, ``llm_engine.jump_plan``), and with the answer's text
    then decoded without a grammar too (``llm_engine.JsonStringWriter``). Two instants, both from
    the start of generation: the first character of an answer's (or a refusal's) text, and the
    whole call made (the last token; a one-sentence answer is spoken from then). Each of the turn
    benchmark's questions is asked ``rounds`` times each way, in turn; each figure is the p50 of
    the per-question medians over the questions answered every way, and the paired differences."""
    from assistant.controller.local_llm import action_schema

    from .turn_taking import LOCAL_LLM

    engine = local.engine
    tools = sorted(registry.tools.values(), key=lambda t: t.name)
    schema = action_schema(tools, local._choices(), after_tool=False)
    modes = {"one_grammar": (False, False), "jump_forward": (True, False), "free_text": (True, True)}
    first: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
    whole: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
    calls: dict[str, list[str]] = {m: [] for m in modes}

    async def one(question: str) -> tuple[float | None, float, str]:
        prompt = engine.render([*local.prefix_messages(), {"role": "user", "content": question}])
        raw, t0, at = "", time.perf_counter(), None
        async for piece in engine.stream(prompt, schema=schema):
            if not isinstance(piece, str):
                continue
            raw += piece
            if at is None and any(k in raw and not raw.endswith(k) for k in ('"text": "', '"reason": "')):
                at = (time.perf_counter() - t0) * 1000.0
        return at, (time.perf_counter() - t0) * 1000.0, raw

    saved = engine.jump_forward, engine.free_text
    try:
        for r in range(rounds):
            for mode, (jump, free) in modes.items():
                engine.jump_forward, engine.free_text = jump, free
                for q in LOCAL_LLM[:questions]:
                    at, total, raw = asyncio.run(one(q))
                    if r == 0:
                        calls[mode].append(raw)
                    if at is not None:
                        first[mode].setdefault(q, []).append(at)
                        whole[mode].setdefault(q, []).append(total)
    finally:
        engine.jump_forward, engine.free_text = saved
    both = [q for q in LOCAL_LLM[:questions] if all(q in first[m] for m in modes)]

    def p50s(d: dict[str, list[float]]) -> list[float]:
        return [statistics.median(d[q]) for q in both]

    def median(v: list[float]) -> float | None:
        return round(statistics.median(v), 1) if v else None

    def tool(raw: str) -> str:
        return raw.split('"tool": "', 1)[-1].split('"', 1)[0]

    def parsed(raw: str) -> Any:
        try:
            return json.loads(raw, strict=False)
        except ValueError:
            return None

    f = {m: p50s(first[m]) for m in modes}
    w = {m: p50s(whole[m]) for m in modes}
    return {
        "questions": questions, "rounds": rounds, "answered_both_ways": len(both),
        "one_grammar_ms_p50": median(f["one_grammar"]), "jump_forward_ms_p50": median(f["jump_forward"]),
        "saved_ms_p50": median([a - b for a, b in zip(f["one_grammar"], f["jump_forward"])]),
        "same_tool": sum(tool(a) == tool(b) for a, b in zip(calls["jump_forward"], calls["one_grammar"])),
        "whole_call_ms_p50": {m: median(w[m]) for m in modes},
        "free_text_saved_ms_p50": median([a - b for a, b in zip(w["jump_forward"], w["free_text"])]),
        "free_text_same_call": sum(parsed(a) is not None and parsed(a) == parsed(b) for a, b in zip(calls["free_text"], calls["jump_forward"])),
    }


def bench_routing(ctx: Context) -> None:
    """Fast-path accuracy and match time on Home Assistant's intent tests; LLM tool choice, TTFT, tok/s."""
    import yaml

    sys.path.insert(0, str(ROOT))
    from assistant.bus import EventBus
    from assistant.config import Config
    from assistant.controller.fastpath import UNSERVED_INTENTS, FastPath
    from assistant.controller.memory import Conversation
    from assistant.events import StageTiming, ToolCallStarted
    from assistant.toolkit import ToolRegistry
    from tests.ha_intents import fixture_home, load_cases, route_check

    out: dict[str, Any] = {}
    intent_dir = FIXTURES / "ha-intents-tests-en"
    if intent_dir.is_dir():
        cases, extra = load_cases(intent_dir)
        home = fixture_home(intent_dir, extra, ctx.out / "ha_home.yaml")

        async def fast() -> dict[str, Any]:
            cfg = Config().with_overrides({"paths.data_dir": str(ctx.out / "ha-data"), "home.simulated_home": str(home)})
            reg = await ToolRegistry.create(cfg, EventBus())
            fp = FastPath(reg)
            times, ok, served = [], 0, 0
            for c in cases:
                if c.intent in UNSERVED_INTENTS:
                    continue
                served += 1
                t0 = time.perf_counter()
                m = fp.match(c.sentence, context=c.context)
                times.append((time.perf_counter() - t0) * 1000)
                ok += not route_check(m, c)
            await reg.close()
            return {"sentences": len(cases), "served": served, "routed_right": ok, "accuracy": round(ok / served, 4), "match_ms": stats(times), "raw_ms": times}

        out["fast_path"] = asyncio.run(fast())

    local = ctx.controller.router.local
    fp = ctx.controller.fast_path
    cases = [c for c in yaml.safe_load((DATA / "tool_choice.yaml").read_text()) if not fp.match_all(c["request"])]
    if ctx.quick:
        cases = cases[:5]
    right, ttft_cached, ttft_cold, tps = 0, [], [], []
    events: list = []
    unsub = ctx.bus.subscribe(events.append)

    async def one(text: str) -> tuple[str | None, float, float]:
        n = len(events)
        async for _ in local.respond(text, turn=0, conversation=Conversation()):
            pass
        calls = [e.tool for e in events[n:] if isinstance(e, ToolCallStarted)]
        firsts = [e for e in events[n:] if isinstance(e, StageTiming) and e.stage == "llm_first_token"]
        rates = [float(e.detail.split(", ")[-1].split()[0]) for e in events[n:] if isinstance(e, StageTiming) and e.stage == "llm" and "tok/s" in e.detail]
        return (calls[0] if calls else None), (firsts[0].ms if firsts else 0.0), (max(rates) if rates else 0.0)

    for c in cases:
        tool, first, rate = asyncio.run(one(c["request"]))
        right += tool == c["tool"]
        if first:
            ttft_cached.append(first)
        if rate:
            tps.append(rate)
    for c in cases[:3]:
        local.engine.reset()
        _, first, _ = asyncio.run(one(c["request"]))
        if first:
            ttft_cold.append(first)
    local.engine.warm(local.engine.render(local.prefix_messages(), generation_prompt=False))
    unsub()
    jump = bench_jump_forward(local, ctx.controller.registry, 5 if ctx.quick else 20, 1 if ctx.quick else 3)
    out["local_llm"] = {
        "model": ctx.config.llm.model, "requests": len(cases), "right_tool": right, "tool_choice_accuracy": round(right / len(cases), 3) if cases else None,
        "ttft_cached_ms": stats(ttft_cached), "ttft_cold_ms": stats(ttft_cold), "tokens_per_s": stats(tps),
        "prefix_tokens": local.engine.count_tokens(local.engine.render(local.prefix_messages(), generation_prompt=False)),
        "jump_forward": jump,
    }
    ctx.results["routing"] = out


def bench_tts(ctx: Context) -> None:
    """Time to first audio and real-time factor of the voice."""
    tts = ctx.speech.tts
    texts = {
        "short": "Turned on the living room lamp.",
        "medium": "It is twelve degrees and light rain outside. Take an umbrella if you go out.",
        "long": " ".join(["The museum has a new exhibition about the history of clocks, from sundials to atomic clocks."] * 3),
    }
    rows = {}
    for name, text in texts.items():
        firsts, rtfs = [], []
        for _ in range(ctx.reps):
            t0 = time.perf_counter()
            audio, first_ms = tts.synthesize_all(text)
            total = time.perf_counter() - t0
            firsts.append(first_ms)
            rtfs.append(total / (len(audio) / tts.sample_rate))
        rows[name] = {"first_audio_ms": stats(firsts), "rtf_p50": round(statistics.median(rtfs), 3)}
    ctx.results["tts"] = rows


def bench_memory(ctx: Context) -> None:
    """Peak resident memory of `assistant run` over the demo recording, in a child process."""
    from assistant.config import save_config

    cfg = ctx.out / "memory-config.toml"
    save_config(ctx.config, cfg)
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    r = subprocess.run(
        [sys.executable, "-m", "assistant", "--config", str(cfg), "run", "--quiet", "--no-pull",
         "--input", str(ROOT / "examples" / "audio" / "wake_and_lamp.wav"), "--output", str(ctx.out / "memory-replies.wav")],
        capture_output=True, text=True, timeout=600,
    )
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    ctx.results["memory"] = {"peak_rss_mb": round(peak_kb / 1024, 1), "exit_code": r.returncode, "wall_s": round(time.perf_counter() - t0, 2),
                             "note": "max over child processes so far" if before else ""}


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_mem_mb(pid: int) -> tuple[float, float]:
    rss = hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return round(rss, 1), round(hwm, 1)


def bench_service(ctx: Context) -> None:
    """CPU use of `assistant serve` while idle (silence, background speech) and active, and its memory,
    measured from 2 s after every model has loaded (the LLM loads and warms in the background)."""
    import httpx

    from assistant.audio import write_wav
    from assistant.config import load_config, save_config
    from assistant.service.auth import ensure_token

    window = 15 if ctx.quick else 30
    tts = ctx.speech.tts
    speech = np.concatenate([clip(n) for n in ("oww_negative_reference.wav", "rhino_test_out_of_context.wav", "jfk.flac",
                                                 "turn_on_the_office_lights_test_clip.wav")] + [synth(tts, l) for l in
                             (DATA / "negative_text.txt").read_text().splitlines()[:6]])
    turn = np.concatenate([clip("hey_jarvis.wav"), silence(0.3), clip("wfw_turn_on_the_living_room_lamp.wav"), silence(5.5)])
    length = window + 90  # seconds of input: start-up, the LLM's background load (~15 s here), then the window
    recordings = {
        "idle: silence": silence(length),
        "idle: background speech (no wake word)": np.tile(speech, int(np.ceil(length * 16000 / len(speech))))[: length * 16000],
        "active: a request every ~9 s": np.tile(turn, int(np.ceil(length / (len(turn) / 16000))))[: length * 16000],
    }
    out = {}
    for name, audio in recordings.items():
        rec = ctx.out / "service-input.wav"
        write_wav(rec, audio, 16000)
        port = _free_port()
        cfg = ctx.out / "service-config.toml"
        save_config(ctx.config.with_overrides({"service.port": port}), cfg)
        proc = subprocess.Popen([sys.executable, "-m", "assistant", "--config", str(cfg), "serve", "--no-pull", "--input", str(rec),
                                 "--output", str(ctx.out / "service-out.wav")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {ensure_token(load_config(cfg))}"}, timeout=5)
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:  # up, and done loading in the background (the LLM warms its prefix)
                try:
                    if api.get("/health", timeout=1).status_code == 200 and not api.get("/status").json().get("loading", ["?"]):
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
            time.sleep(2.0)  # let start-up work settle
            c0, t0 = _proc_cpu_s(proc.pid), time.monotonic()
            time.sleep(window)
            c1, t1 = _proc_cpu_s(proc.pid), time.monotonic()
            rss, hwm = _proc_mem_mb(proc.pid)
            status = api.get("/status").json()
            out[name] = {"cpu_percent_of_one_core": round((c1 - c0) / (t1 - t0) * 100, 1), "rss_mb": rss, "peak_rss_mb": hwm,
                         "turns": status.get("turns"), "window_s": window}
        finally:
            api.close()
            proc.terminate()
            proc.wait(30)
    ctx.results["service"] = out


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_turn(ctx: Context) -> None:
    """Turn-taking as the user hears it: last voiced frame → first reply sample, and cut-off rates (benchmarks/turn_taking.py)."""
    from . import turn_taking

    turn_taking.bench_turn(ctx)


def bench_vad(ctx: Context) -> None:
    """webrtcvad vs Silero VAD on requests under room noise, music and a TV (benchmarks/vad.py)."""
    from . import vad

    ctx.results["vad"] = vad.evaluate(ctx.speech.tts, ctx.quick)


def bench_nlu(ctx: Context) -> None:
    """Natural home requests (tests/data/nlu): exactly the expected changes, by tier, domain and split;
    typed with the LLM off and on; spoken through the voice loop with room noise (held-aside split)."""
    from . import nlu, nlu_voice

    out: dict[str, Any] = {}
    for split in ("dev", "heldout"):
        s = nlu.summarize(asyncio.run(nlu.evaluate(nlu.load_cases((split,)))))
        out[f"typed_{split}_llm_off"] = s
    held = nlu.load_cases(("heldout",))
    models = {"paths.models_dir": str(ctx.config.paths.models_dir), "llm.model": ctx.config.llm.model, "llm.threads": 2}
    if not ctx.quick:
        out["typed_heldout_llm_on"] = nlu.summarize(asyncio.run(nlu.evaluate(held, llm=True, config_overrides=models)))
    voices = nlu_voice.voices(ctx.speech.tts, quick=ctx.quick)
    conditions = [(v, "pink", 20.0) for v in voices]
    if not ctx.quick:
        conditions += [(v, "brown", 10.0) for v in voices[:2]]
    cases = held[::8] if ctx.quick else held
    overrides = {"paths.models_dir": str(ctx.config.paths.models_dir), "asr.threads": ctx.config.asr.threads}
    t0 = time.perf_counter()
    voiced = asyncio.run(nlu_voice.evaluate_voiced(cases, ctx.speech, conditions=conditions, config_overrides=overrides))
    out["voiced_heldout"] = nlu_voice.summarize_voiced(voiced) | {"wall_s": round(time.perf_counter() - t0, 1)}
    ctx.results["nlu"] = out


def bench_mcp(ctx: Context) -> None:
    """Tool calls through MCP (stdio, Streamable HTTP) vs an in-process plugin; start and crash recovery (benchmarks/mcp_calls.py)."""
    from . import mcp_calls

    ctx.results["mcp"] = mcp_calls.evaluate(ctx.config, ctx.quick)


def bench_faults(ctx: Context) -> None:
    """Fault matrix: remote model hangs / garbage / 500, corrupt state, a crashing tool, a burst from two sources,
    a full and a read-only data folder — up, next request answered, state kept, user told (benchmarks/faults.py)."""
    from . import faults

    ctx.results["faults"] = faults.evaluate(ctx.config)


def bench_soak(ctx: Context) -> None:
    """Soak: mixed audio faster than real time plus typed requests; RSS and open files over time (benchmarks/soak.py)."""
    from . import soak

    ctx.results["soak"] = soak.evaluate(ctx.config, ctx.quick)


SECTIONS: dict[str, Callable[[Context], None]] = {
    "memory": bench_memory, "asr": bench_asr, "tts": bench_tts, "wake": bench_wake, "routing": bench_routing, "e2e": bench_e2e,
    "nlu": bench_nlu, "service": bench_service, "turn": bench_turn, "vad": bench_vad,
    "mcp": bench_mcp, "faults": bench_faults, "soak": bench_soak,
}
