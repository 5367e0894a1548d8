"""The model store: downloads from a loopback HTTP server (resume, checksum, 404, disk full), pins,
import, verification, licences, and the `assistant models` CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from assistant.errors import ModelError
from assistant.store import ModelStore
from assistant.store.catalog import _parse

from .conftest import FIXTURES, need_fixtures


class ModelServer:
    """Serves files over HTTP on loopback with Range support, and can misbehave on request."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[tuple[str, str | None]] = []
        self.cut_after: dict[str, int] = {}  # path -> bytes to send before dropping the connection (once)
        self.bytes_sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                data = server.files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start >= len(data) and rng:
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = data[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.cut_after.pop(self.path, None)
                if cut is not None:
                    self.wfile.write(body[:cut])
                    server.bytes_sent += cut
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)
                server.bytes_sent += len(body)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def wake_bytes() -> bytes:
    need_fixtures()
    return (FIXTURES / "wakeword" / "hey_jarvis_v0.1.onnx").read_bytes()


@pytest.fixture
def server(wake_bytes):
    s = ModelServer({"/m/hey_jarvis_v0.1.onnx": wake_bytes, "/m/bad.onnx": b"\x08" + b"x" * (len(wake_bytes) - 1),
                     "/m/unpinned.onnx": wake_bytes})
    yield s
    s.close()


def _catalog_toml(server: ModelServer, wake_bytes: bytes, *, huge: bool = False) -> str:
    size = len(wake_bytes)
    return f"""
[defaults]
pi4 = ["wake-good"]
pi5 = ["wake-good"]
laptop = ["wake-good"]
desktop = ["wake-good"]

[[model]]
name = "wake-good"
kind = "wake"
engine = "openwakeword"
license = "CC BY-NC-SA 4.0 (non-commercial)"
restrictive = true
tiers = ["pi4"]
main = "hey_jarvis_v0.1.onnx"
files = [{{ path = "hey_jarvis_v0.1.onnx", url = "{server.url}/m/hey_jarvis_v0.1.onnx", size = {size * (10**9 if huge else 1)}, sha256 = "{_sha(wake_bytes)}" }}]

[[model]]
name = "wake-corrupt"
kind = "wake"
engine = "openwakeword"
license = "Apache-2.0"
tiers = ["pi4"]
main = "bad.onnx"
files = [{{ path = "bad.onnx", url = "{server.url}/m/bad.onnx", size = {size}, sha256 = "{_sha(wake_bytes)}" }}]

[[model]]
name = "wake-missing"
kind = "wake"
engine = "openwakeword"
license = "Apache-2.0"
tiers = ["pi4"]
main = "nothing.onnx"
files = [{{ path = "nothing.onnx", url = "{server.url}/m/nothing.onnx", size = 10, sha256 = "{'0' * 64}" }}]

[[model]]
name = "wake-unpinned"
kind = "wake"
engine = "openwakeword"
license = "Apache-2.0"
tiers = ["pi4"]
main = "unpinned.onnx"
files = [{{ path = "unpinned.onnx", url = "{server.url}/m/unpinned.onnx", size = {size}, sha256 = "" }}]
"""


@pytest.fixture
def store(tmp_path, server, wake_bytes) -> ModelStore:
    import tomllib

    catalog = _parse(tomllib.loads(_catalog_toml(server, wake_bytes)), Path("test"))
    return ModelStore(tmp_path / "store", catalog)


def test_pull_verifies_and_resolves(store, server, wake_bytes):
    seen = []
    st = store.pull("wake-good", progress=lambda label, done, total: seen.append((done, total)))
    assert st.installed and st.verified
    assert seen[-1] == (len(wake_bytes), len(wake_bytes))
    path = store.resolve("wake-good", "wake")
    assert path.read_bytes() == wake_bytes
    assert not list(path.parent.glob("*.part"))


def test_interrupted_download_resumes_with_a_range_request(store, server, wake_bytes):
    server.cut_after["/m/hey_jarvis_v0.1.onnx"] = 300_000
    store.pull("wake-good")
    ranges = [r for p, r in server.requests if p == "/m/hey_jarvis_v0.1.onnx"]
    assert len(ranges) == 2 and ranges[0] is None
    resumed_at = int(ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 300_000  # what had arrived before the connection dropped is kept
    assert store.resolve("wake-good", "wake").read_bytes() == wake_bytes


def test_a_part_left_by_a_killed_download_is_resumed_later(store, server, wake_bytes):
    part = store.model_dir("wake-good") / "hey_jarvis_v0.1.onnx.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(wake_bytes[:500_000])
    store.pull("wake-good")
    assert server.requests == [("/m/hey_jarvis_v0.1.onnx", "bytes=500000-")]
    assert store.resolve("wake-good", "wake").read_bytes() == wake_bytes


def test_wrong_checksum_is_deleted_and_never_loaded(store):
    with pytest.raises(ModelError, match="has SHA-256 .* expected .*deleted and will not be used"):
        store.pull("wake-corrupt")
    assert not (store.model_dir("wake-corrupt") / "bad.onnx").exists()
    with pytest.raises(ModelError, match="not installed"):
        store.resolve("wake-corrupt", "wake")


def test_404_is_explained(store):
    with pytest.raises(ModelError, match="HTTP 404") as info:
        store.pull("wake-missing")
    assert "import" in info.value.hint


def test_network_down_is_explained(tmp_path, wake_bytes):
    import tomllib

    dead = ModelServer({})
    dead.close()
    catalog = _parse(tomllib.loads(_catalog_toml(dead, wake_bytes)), Path("test"))
    store = ModelStore(tmp_path / "s", catalog)
    with pytest.raises(ModelError, match="failed after 2 attempts"):
        store.pull("wake-good", retries=2)


def test_disk_full_keeps_the_partial_download(store, server):
    part = store.model_dir("wake-good") / "hey_jarvis_v0.1.onnx.part"
    part.parent.mkdir(parents=True)
    os.symlink("/dev/full", part)  # every write fails with ENOSPC, as on a full disk
    with pytest.raises(ModelError, match="disk full while downloading") as info:
        store.pull("wake-good")
    assert "partial download is kept" in info.value.hint


def test_not_enough_space_is_refused_before_downloading(tmp_path, server, wake_bytes):
    import tomllib

    catalog = _parse(tomllib.loads(_catalog_toml(server, wake_bytes, huge=True)), Path("test"))
    store = ModelStore(tmp_path / "s", catalog)
    with pytest.raises(ModelError, match="not enough disk space"):
        store.pull("wake-good")
    assert server.requests == []


def test_first_download_pins_an_unpublished_hash(store, wake_bytes):
    pinned = []
    store.pull("wake-unpinned", on_pin=lambda label, digest: pinned.append((label, digest)))
    assert pinned == [("wake-unpinned/unpinned.onnx", _sha(wake_bytes))]
    assert store.pins["wake-unpinned/unpinned.onnx"] == _sha(wake_bytes)
    f = store.model_dir("wake-unpinned") / "unpinned.onnx"
    f.write_bytes(f.read_bytes()[:-1] + b"\x00")  # tampered after pinning
    with pytest.raises(ModelError, match="failed verification"):
        store.resolve("wake-unpinned", "wake")


def test_import_checks_files_the_catalog_knows(store, tmp_path, wake_bytes):
    mine = tmp_path / "downloads"
    mine.mkdir()
    (mine / "hey_jarvis_v0.1.onnx").write_bytes(wake_bytes)
    assert store.import_path(mine) == ["wake-good"]
    assert store.resolve("wake-good", "wake").read_bytes() == wake_bytes
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "bad.onnx").write_bytes(wake_bytes[:-1] + b"\x01")
    with pytest.raises(ModelError, match="named like a file of wake-corrupt but its SHA-256"):
        store.import_path(bad)


def test_import_of_unknown_files_needs_a_name(store, tmp_path):
    own = tmp_path / "my-voice.onnx"
    own.write_bytes(b"\x08own model")
    with pytest.raises(ModelError, match="matches a model in the catalog"):
        store.import_path(own)
    assert store.import_path(own, name="my-voice", kind="tts") == ["my-voice"]
    assert store.resolve("my-voice", "tts").name == "my-voice.onnx"


def test_restrictive_licence_is_shown_once(store):
    store.pull("wake-good")
    text = store.licence_notice("wake-good")
    assert text and "CC BY-NC-SA 4.0" in text
    assert store.licence_notice("wake-good") is None


def test_models_cli(tmp_path, server, wake_bytes):
    cat = tmp_path / "catalog.toml"
    cat.write_text(_catalog_toml(server, wake_bytes))
    env = {**os.environ, "ASSISTANT_CATALOG": str(cat), "ASSISTANT_MODELS_DIR": str(tmp_path / "cli-store"), "ASSISTANT_DATA_DIR": str(tmp_path / "d")}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, env=env, timeout=60)

    r = cli("models", "pull", "wake-good")
    assert r.returncode == 0, r.stderr
    assert "licence: wake-good is licensed CC BY-NC-SA 4.0" in r.stderr and "installed and verified" in r.stderr
    r = cli("models", "list", "--json")
    rows = {m["name"]: m for m in json.loads(r.stdout)["models"]}
    assert rows["wake-good"]["state"] == "verified" and rows["wake-missing"]["state"] == "-"
    assert cli("models", "verify").returncode == 0
    (tmp_path / "cli-store" / "wake-good" / "hey_jarvis_v0.1.onnx").write_bytes(b"\x08" * len(wake_bytes))
    r = cli("models", "verify")
    assert r.returncode == 4 and "FAILED  wake-good" in r.stdout
    r = cli("models", "path")
    assert r.stdout.strip() == str(tmp_path / "cli-store")
    r = cli("models", "remove", "wake-good")
    assert r.returncode == 0 and "removed wake-good" in r.stdout
    r = cli("models", "pull", "no-such-model")
    assert r.returncode == 4 and "unknown model 'no-such-model'" in r.stderr
    r = cli("models", "pull", "wake-missing")
    assert r.returncode == 4 and "HTTP 404" in r.stderr and "Traceback" not in r.stderr
