"""Fuzzing the service's two network doors with hypothesis: the control API (any method, path,
headers, body) and the Wyoming server (malformed headers, lying lengths, oversized payloads,
unknown events). The service is a real ``assistant serve`` subprocess. Every request must get an
answer below 500 (or a closed connection for Wyoming), the service must stay up and answer a
normal request afterwards, and its memory must stay bounded."""

from __future__ import annotations

import json
import socket
import string

import httpx
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from .test_service import Service  # noqa: E402

PATHS = ["/health", "/status", "/events", "/events/stream", "/ask", "/interrupt", "/listen", "/mute", "/unmute", "/home", "/timers",
         "/tools", "/metrics", "/", "/ask/", "/../etc/passwd", "/%00", "/" + "a" * 3000]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def service(tmp_path_factory, store_root):
    from .conftest import _test_config

    tmp = tmp_path_factory.mktemp("fuzz")
    cfg = _test_config(store_root, tmp / "data").with_overrides({"llm.enabled": False, "service.wyoming_max_audio_s": 2.0})
    svc = Service(cfg, tmp, None, wyoming=True, name="fuzz")
    svc.wait_ready()
    svc.rss_start = _rss_mb(svc.proc.pid)
    yield svc
    assert svc.stop() == 0


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
                           lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=20)
bodies = st.one_of(
    st.binary(max_size=2000),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"text": st.text(max_size=1500)}).map(lambda v: json.dumps(v).encode()),
    st.integers(16_000, 40_000).map(lambda n: b'{"text": "' + b"a" * n + b'"}'),
)
header_text = st.text(alphabet=string.printable.replace("\r", "").replace("\n", ""), max_size=80)


@settings(max_examples=150, deadline=10_000, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=st.sampled_from(METHODS), path=st.sampled_from(PATHS), body=bodies, with_token=st.booleans(),
       content_type=st.sampled_from(["application/json", "text/plain", "application/json; charset=utf-8", "", "multipart/form-data"]),
       host=st.sampled_from(["127.0.0.1", "localhost", "evil.example", ""]), origin=st.sampled_from([None, "http://evil.example", "null"]),
       junk=header_text)
def test_control_api_never_answers_500(service, method, path, body, with_token, content_type, host, origin, junk):
    headers = {"X-Junk": junk}
    if with_token:
        headers.update(service.headers)
    else:
        headers["Authorization"] = "Bearer " + junk
    if content_type:
        headers["Content-Type"] = content_type
    if host:
        headers["Host"] = f"{host}:{service.port}"
    if origin:
        headers["Origin"] = origin
    if path == "/events/stream" and method in ("GET", "HEAD") and with_token and host in ("127.0.0.1", "localhost", "") and not origin:
        return  # a never-ending stream, not a request/response
    if path in ("/ask",) and method == "POST" and with_token:
        body = body[:20000]
    try:
        r = httpx.request(method, service.url + path, content=body, headers=headers, timeout=httpx.Timeout(30, read=60))
    except httpx.LocalProtocolError:
        return  # not even sendable (a header value with trailing blanks): nothing to test
    except httpx.RemoteProtocolError:
        return  # the server closed a malformed request: fine
    assert r.status_code < 500, (method, path, r.status_code, r.text[:300])


def _wyoming_send(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
        try:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            return b""  # it hung up on us mid-way: fine
        out = b""
        try:
            while len(out) < 1_000_000:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        return out


def _event(type_: str, data=None, payload: bytes = b"", *, data_length: int | None = None, payload_length: int | None = None) -> bytes:
    data_bytes = json.dumps(data).encode() if data is not None else b""
    header = {"type": type_, "version": "1.5.0"}
    if data_bytes or data_length is not None:
        header["data_length"] = len(data_bytes) if data_length is None else data_length
    if payload or payload_length is not None:
        header["payload_length"] = len(payload) if payload_length is None else payload_length
    return json.dumps(header).encode() + b"\n" + data_bytes + payload


wyoming_events = st.one_of(
    st.binary(max_size=500).map(lambda b: b + b"\n"),
    json_values.map(lambda v: json.dumps(v).encode() + b"\n"),
    st.builds(_event, st.sampled_from(["describe", "transcribe", "audio-start", "audio-chunk", "audio-stop", "detect", "run-pipeline",
                                       "synthesize", "recognize-intent", "handle", "nonsense"]),
              json_values, st.binary(max_size=4000),
              data_length=st.one_of(st.none(), st.integers(-5, 10**9)), payload_length=st.one_of(st.none(), st.integers(-5, 10**9))),
    st.just(_event("audio-start", {"rate": 16000, "width": 2, "channels": 1}) + b"".join(
        _event("audio-chunk", {"rate": 16000, "width": 2, "channels": 1}, b"\x01\x00" * 8000) for _ in range(20))),  # 5 s > the 2 s limit
)


@settings(max_examples=150, deadline=10_000, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(events=st.lists(wyoming_events, min_size=1, max_size=6))
def test_wyoming_survives_malformed_events(service, events):
    _wyoming_send(service.wyoming_port, b"".join(events))
    assert service.proc.poll() is None


def test_after_the_fuzzing_the_service_answers_and_memory_is_bounded(service):
    """Runs after the two fuzz tests (file order): still up, answers, and did not grow without bound."""
    before = service.rss_start
    r = service.post("/ask", json={"text": "what time is it"}, timeout=60)
    assert r.status_code == 200 and r.json()["reply"].startswith("It is")
    info = _wyoming_send(service.wyoming_port, _event("describe"))
    assert b'"type": "info"' in info or b'"type":"info"' in info
    assert _rss_mb(service.proc.pid) - before < 200, (before, _rss_mb(service.proc.pid))
