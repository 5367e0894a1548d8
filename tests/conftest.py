"""Shared test fixtures: real models, real speech clips, a model store, configs.

Real data comes from two places, and tests that need it skip with the reason when it is absent:

* ``../shared/fixtures`` beside the clone (wake-word models, speech clips, Home Assistant's intent
  tests); override with ``$ASSISTANT_FIXTURES``.
* ``.cache/test-models`` (Whisper tiny.en, SmolLM2-135M, the Joe piper voice), filled by
  ``python scripts/fetch_test_models.py`` (the README's test command runs it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from assistant.audio import SAMPLE_RATE, read_audio, write_wav
from assistant.config import Config
from assistant.store import ModelStore

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("ASSISTANT_FIXTURES", ROOT.parent / "shared" / "fixtures"))
TEST_MODELS = Path(os.environ.get("ASSISTANT_TEST_MODELS", ROOT / ".cache" / "test-models"))
AUDIO = FIXTURES / "audio"


def need_fixtures() -> Path:
    if not (FIXTURES / "audio").is_dir():
        pytest.skip(f"real speech fixtures not found at {FIXTURES} (set ASSISTANT_FIXTURES or put ../shared beside the clone)")
    return FIXTURES


def need_test_models() -> Path:
    if not (TEST_MODELS / "whisper-tiny.en" / "model.bin").is_file():
        pytest.skip(f"test models not found in {TEST_MODELS}; run: python scripts/fetch_test_models.py")
    return TEST_MODELS


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return need_fixtures()


@pytest.fixture(scope="session")
def store_root(tmp_path_factory) -> Path:
    """A model store holding every real model available here (imported, so SHA-256 checked)."""
    need_fixtures()
    need_test_models()
    root = tmp_path_factory.mktemp("store")
    store = ModelStore(root)
    store.import_path(FIXTURES / "wakeword")
    store.import_path(TEST_MODELS)
    # the restrictive-licence notices are tested on their own; here they are already shown
    (root / "licences-shown.json").write_text('{"hey_jarvis": 1, "openwakeword-features": 1, "alexa": 1, "hey_mycroft": 1}')
    return root


def _test_config(store_root: Path, data_dir: Path) -> Config:
    return Config().with_overrides(
        {
            "paths.data_dir": str(data_dir),
            "paths.models_dir": str(store_root),
            "asr.model": "whisper-tiny.en",
            "asr.threads": 2,
            "llm.model": "smollm2-135m-instruct",
            "llm.threads": 2,
            "tts.threads": 2,
            # no sampling noise: the same text is the same audio in every run, so what Whisper
            # hears of a synthesised request (or reply) does not change from run to run
            "tts.noise_scale": 0.0,
            "tts.noise_w_scale": 0.0,
        }
    )


@pytest.fixture
def config(store_root: Path, tmp_path: Path) -> Config:
    """Defaults, with the fixture store, fixture-sized models and a private data dir."""
    return _test_config(store_root, tmp_path / "data")


@pytest.fixture(scope="session")
def session_config(store_root: Path, tmp_path_factory) -> Config:
    """Like ``config``, shared by a session (for fixtures that load models once)."""
    return _test_config(store_root, tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def asr(session_config: Config):
    """The real Whisper tiny.en, loaded once."""
    from assistant.app import load_asr, model_store

    return load_asr(session_config, model_store(session_config))


@pytest.fixture(scope="session")
def tts(session_config: Config):
    """The real Joe piper voice, loaded once."""
    from assistant.app import load_tts, model_store

    return load_tts(session_config, model_store(session_config))


def clip(name: str) -> np.ndarray:
    """A fixture clip as 16 kHz mono int16."""
    need_fixtures()
    return read_audio(AUDIO / name)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.int16)


def espeak(text: str, voice: str, rate: int = 150) -> np.ndarray:
    """``text`` spoken by espeak-ng's ``voice`` at ``rate`` words per minute, 16 kHz mono int16
    (the same audio on every run); skips when espeak-ng is not installed."""
    import subprocess
    import tempfile

    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is not installed (scripts/bootstrap --dev installs it)")
    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", f.name, text], check=True, capture_output=True)
        return read_audio(f.name)


def recording(*parts: np.ndarray | str | float) -> np.ndarray:
    """Concatenate clips (by file name), arrays and pauses (seconds) into one recording."""
    out = []
    for p in parts:
        if isinstance(p, str):
            out.append(clip(p))
        elif isinstance(p, (int, float)):
            out.append(silence(float(p)))
        else:
            out.append(p)
    return np.concatenate(out)


@pytest.fixture
def wake_command_wav(tmp_path: Path) -> Path:
    """hey_jarvis.wav + 0.3 s + "turn on the living room lamp" (44.1 kHz stereo, resampled), as a WAV."""
    path = tmp_path / "wake_command.wav"
    write_wav(path, recording(0.5, "hey_jarvis.wav", 0.3, "wfw_turn_on_the_living_room_lamp.wav", 1.0), SAMPLE_RATE)
    return path


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst

