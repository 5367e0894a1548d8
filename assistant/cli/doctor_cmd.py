"""``assistant doctor``: check this machine, the models, the audio devices and the config, and say what to fix."""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ..app import choose_models, missing_models, missing_optional_models, model_store, turn_model_ref
from ..config import Config, default_config_path
from ..errors import AssistantError
from ..store import detect_tier

__all__ = ["register", "Check", "run_checks"]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    essential: bool = True


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check audio devices, models, CPU features and config, and say what to fix")
    p.set_defaults(func=doctor)


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def run_checks(config: Config, args: argparse.Namespace | None = None) -> list[Check]:
    checks: list[Check] = []
    py = sys.version_info
    checks.append(Check("python", py >= (3, 11), f"Python {platform.python_version()}", "install Python 3.11 or newer"))

    flags = _cpu_flags()
    machine = platform.machine()
    tier = detect_tier()
    if machine in ("x86_64", "AMD64"):
        missing = [f for f in ("avx2", "fma", "f16c") if f not in flags]
        checks.append(Check("cpu", not missing, f"{machine}, {os.cpu_count()} cores, tier '{tier}'" + (f"; lacks {', '.join(missing)}" if missing else "; AVX2/FMA present"),
                            "the LLM and ASR will be slow without AVX2; choose the pi4 model set", essential=False))
    else:
        neon = "asimd" in flags or "neon" in flags
        checks.append(Check("cpu", neon or not flags, f"{machine}, {os.cpu_count()} cores, tier '{tier}'" + (", NEON" if neon else ""), "", essential=False))

    for extra, module, what in (
        ("wake", "openwakeword", "wake word"), ("asr", "faster_whisper", "speech recognition"), ("tts", "piper", "speech synthesis"),
        ("llm", "llama_cpp", "local LLM"), ("fastpath", "hassil", "template fast path"), ("audio", "sounddevice", "microphone/speaker"),
    ):
        found = importlib.util.find_spec(module) is not None
        checks.append(Check(f"package:{module}", found, f"{what}: {'installed' if found else 'missing'}", f"pip install 'jarvis-assistant[{extra}]'",
                            essential=extra not in ("llm",) or config.llm.enabled))

    try:
        from ..audio.devices import list_devices  # noqa: PLC0415

        devs = list_devices()
        ins = [d for d in devs if d.max_input_channels > 0]
        outs = [d for d in devs if d.max_output_channels > 0]
        checks.append(Check("microphone", bool(ins), f"{len(ins)} input device(s)" + (f", default '{next((d.name for d in ins if d.is_default_input), ins[0].name)}'" if ins else ""),
                            "connect a microphone (or use `assistant run --input FILE`)", essential=False))
        checks.append(Check("speaker", bool(outs), f"{len(outs)} output device(s)", "connect a speaker (or use `assistant run --output FILE`)", essential=False))
    except AssistantError as exc:
        checks.append(Check("audio", False, exc.message, exc.hint, essential=False))

    path = Path(getattr(args, "config", None) or default_config_path())
    checks.append(Check("config", True, f"valid ({path if path.exists() else 'defaults; no file at ' + str(path)})", essential=False))

    store = model_store(config)
    try:
        chosen = choose_models(config, store)
        missing = missing_models(chosen, store)
        for ref, kind in ((chosen.asr.model, "asr"), (chosen.tts.voice, "tts"), (chosen.llm.model, "llm")):
            st = store.status(ref) if store.model_dir(ref).is_dir() else None
            ok = ref not in missing
            detail = f"{kind}: {ref} " + ("verified" if ok else ("FAILED verification: " + "; ".join(st.problems) if st and st.installed else "not installed"))
            checks.append(Check(f"model:{kind}", ok, detail, f"assistant models pull {ref}", essential=kind != "llm" or config.llm.enabled))
        for ref in [chosen.wake.features, *chosen.wake.models]:
            ok = ref not in missing
            checks.append(Check(f"model:wake:{ref}", ok, f"wake: {ref} {'verified' if ok else 'missing or unverified'}", f"assistant models pull {ref}"))
        turn = turn_model_ref(chosen)
        if turn is not None:
            ok = not missing_optional_models(chosen, store)
            checks.append(Check("model:turn", ok, f"end of turn: {turn} " + ("verified" if ok else
                                f"missing or unverified: turns end after {chosen.endpoint.trailing_silence_ms} ms of silence"),
                                f"assistant models pull {turn}", essential=False))
    except AssistantError as exc:
        checks.append(Check("models", False, exc.message, exc.hint))

    root = store.root
    root_probe = root if root.exists() else root.parent
    while not root_probe.exists():
        root_probe = root_probe.parent
    free = shutil.disk_usage(root_probe).free
    checks.append(Check("disk", free > 2e9, f"{free / 1e9:.1f} GB free for the model store at {root}", "free space or move the store (ASSISTANT_MODELS_DIR)", essential=False))
    data = config.paths.resolved_data_dir()
    try:
        data.mkdir(parents=True, exist_ok=True)
        probe = data / ".doctor"
        probe.write_text("ok")
        probe.unlink()
        checks.append(Check("data dir", True, f"{data} is writable"))
    except OSError as exc:
        checks.append(Check("data dir", False, f"{data}: {exc}", "set ASSISTANT_DATA_DIR to a writable folder"))
    if config.home.backend == "home_assistant":
        token = os.environ.get(config.home.home_assistant.token_env)
        checks.append(Check("home assistant token", bool(token), f"${config.home.home_assistant.token_env} {'set' if token else 'not set'}",
                            "create a long-lived token in Home Assistant and export it"))
    for ep in config.remote.endpoints:
        if ep.api_key_env:
            present = bool(os.environ.get(ep.api_key_env))
            checks.append(Check(f"remote:{ep.name}", present, f"${ep.api_key_env} {'set' if present else 'not set'}", f"export {ep.api_key_env}=...", essential=False))
    return checks


def doctor(args: argparse.Namespace, config: Config) -> int:
    checks = run_checks(config, args)
    bad = 0
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.essential else "warn")
        print(f"{mark}  {c.name:24s} {c.detail}")
        if not c.ok and c.fix:
            print(f"      fix: {c.fix}")
        bad += (not c.ok) and c.essential
    print("all essential checks passed" if not bad else f"{bad} essential check(s) failed")
    return 0 if not bad else 1
