"""`assistant listen`, `say`, `devices`, `models` as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import soundfile as sf

from assistant.audio import SAMPLE_RATE, write_wav
from assistant.config import save_config
from assistant.speech.asr import normalize_transcript

from .conftest import recording


def run_cli(config, *args: str, tmp_path: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    cfg_file = tmp_path / "config.toml"
    save_config(config, cfg_file)
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "assistant", "--config", str(cfg_file), *args],
        capture_output=True, text=True, timeout=timeout, env=full_env,
    )


def test_listen_prints_one_wake_and_the_transcript(config, tmp_path, wake_command_wav):
    r = run_cli(config, "listen", "--input", str(wake_command_wav), tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    wake_lines = [l for l in r.stdout.splitlines() if "wake word" in l]
    assert len(wake_lines) == 1 and "hey_jarvis" in wake_lines[0]
    heard = [l for l in r.stdout.splitlines() if "heard" in l]
    assert len(heard) == 1
    assert normalize_transcript(heard[0].split("heard", 1)[1]) == "turn on the living room lamp"
    assert "timings ms" in r.stdout and "asr" in r.stdout


def test_listen_json_is_one_object_per_event(config, tmp_path, wake_command_wav):
    r = run_cli(config, "listen", "--input", str(wake_command_wav), "--json", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    types = [e["type"] for e in events]
    assert types.count("wake_detected") == 1
    finals = [e for e in events if e["type"] == "final_transcript"]
    assert len(finals) == 1 and normalize_transcript(finals[0]["text"]) == "turn on the living room lamp"
    stages = {e["stage"] for e in events if e["type"] == "stage_timing"}
    assert {"wake", "endpoint", "asr"} <= stages


def test_listen_without_wake_phrase_finds_nothing(config, tmp_path, fixtures_dir):
    path = tmp_path / "neg.wav"
    write_wav(path, recording(0.5, "oww_negative_reference.wav", 0.5, "turn_on_the_office_lights_test_clip.wav"), SAMPLE_RATE)
    r = run_cli(config, "listen", "--input", str(path), "--json", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    types = [json.loads(line)["type"] for line in r.stdout.splitlines()]
    assert "wake_detected" not in types and "final_transcript" not in types


def test_say_writes_plausible_speech(config, tmp_path):
    out = tmp_path / "hello.wav"
    text = "Good morning. The front door is locked and the heating is at twenty degrees."
    r = run_cli(config, "say", text, "--output", str(out), tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    data, rate = sf.read(out, dtype="int16")
    seconds = data.shape[0] / rate
    assert 1.5 < len(text.split()) / seconds < 4.5
    assert "wrote" in r.stderr and "first audio after" in r.stderr


def test_bad_inputs_give_one_clear_message_and_no_traceback(config, tmp_path):
    corrupt = tmp_path / "broken.wav"
    corrupt.write_bytes(b"RIFF" + os.urandom(400))
    r = run_cli(config, "listen", "--input", str(corrupt), tmp_path=tmp_path)
    assert r.returncode == 2
    assert "error: cannot decode audio file" in r.stderr and "broken.wav" in r.stderr
    assert "Traceback" not in r.stderr

    r = run_cli(config, "listen", "--input", str(tmp_path / "missing.wav"), tmp_path=tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr

    r = run_cli(config.with_overrides({"asr.model": "whisper-small.en"}), "listen", "--input", str(corrupt), tmp_path=tmp_path)
    assert r.returncode in (2, 4)  # the file is checked first or the model, both clearly

    empty_store = config.with_overrides({"paths.models_dir": str(tmp_path / "empty-store")})
    r = run_cli(empty_store, "say", "hi", "--output", str(tmp_path / "x.wav"), tmp_path=tmp_path)
    assert r.returncode == 4
    assert "model 'piper-en_US-joe-medium' is not installed" in r.stderr
    assert "assistant models pull piper-en_US-joe-medium" in r.stderr
    assert "Traceback" not in r.stderr

    r = run_cli(config, "say", "hi", "--output", str(tmp_path / "no" / "dir" / "x.wav"), tmp_path=tmp_path)
    assert r.returncode == 2 and "cannot create" in r.stderr and "Traceback" not in r.stderr


def test_no_audio_device_is_explained(config, tmp_path):
    """This machine has no sound card: the microphone path says so instead of crashing."""
    r = run_cli(config, "listen", tmp_path=tmp_path)
    assert r.returncode in (3, 5), r.stderr
    assert ("no microphone found" in r.stderr) or ("PortAudio" in r.stderr) or ("sounddevice" in r.stderr)
    assert "Traceback" not in r.stderr
    r = run_cli(config, "say", "hello", tmp_path=tmp_path)
    assert r.returncode in (3, 5) and "Traceback" not in r.stderr
    assert "speaker" in r.stderr or "PortAudio" in r.stderr or "sounddevice" in r.stderr


def test_bad_config_value_is_explained(config, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[wake]\nthreshold = 2\n")
    r = subprocess.run([sys.executable, "-m", "assistant", "--config", str(cfg), "config", "check"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "[wake] threshold = 2" in r.stderr and "less than or equal to 1" in r.stderr
    assert "Traceback" not in r.stderr
