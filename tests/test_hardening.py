"""Hardening: nothing unconfirmed, nothing exposed, nothing silently dead.

Each test here failed before its fix (see issue 13): a refusal heard as yes, a web page driving the
API, a remote model running a tool it was never offered, personal data leaving in tool results,
store paths escaping the store, a calculator that hangs the process.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from assistant.bus import EventBus
from assistant.config import Config, save_config
from assistant.controller.redact import Redactor
from assistant.controller.yesno import Answer, parse_yes_no
from assistant.errors import ModelError, ToolError
from assistant.store import ModelStore

from .servers import RecordingProxy

# ---------------------------------------------------------------------------- 1. spoken confirmation

YES = ["yes", "Yes.", "yes please", "Yeah.", "yep", "sure", "Sure thing.", "of course", "Absolutely.", "definitely", "OK.", "okay",
       "go ahead", "Yes, go ahead.", "do it", "please do", "Go for it.", "confirm", "I'm sure.", "that's right", "correct", "Hey Jarvis, yes.",
       "yes, please.", "uh huh", "alright"]
NO = ["no", "No.", "nope", "No, don't.", "absolutely not", "definitely not", "of course not", "That's not correct.", "that's wrong",
      "don't do that", "cancel", "stop", "never mind", "not now", "no thanks", "wait", "hold on", "I changed my mind", "I don't think so",
      "no no no", "better not", "please don't", "keep it locked"]
UNCLEAR = ["I'm not sure", "are you sure?", "maybe", "what?", "which door?", "hmm", "I guess", "yes and no", "unlock it?", "who is it?",
           "the front door", "", "   ", "what did you say", "turn on the lights", "yes but also turn on the lights"]


@pytest.mark.parametrize("answer", YES)
def test_yes_is_yes(answer):
    assert parse_yes_no(answer) is Answer.YES


@pytest.mark.parametrize("answer", NO)
def test_no_is_no(answer):
    assert parse_yes_no(answer) is Answer.NO


@pytest.mark.parametrize("answer", UNCLEAR)
def test_anything_else_is_unclear_never_yes(answer):
    assert parse_yes_no(answer) is Answer.UNCLEAR


def test_the_answer_table_is_large_enough():
    assert len(YES) + len(NO) + len(UNCLEAR) >= 40


# ---------------------------------------------------------------------------- 4. what leaves the device

PRIVATE_TERMS = ["Alice Smith", "12 Elm Street", "Springfield"]
# (text, what must not be in what is sent)
LEAKS = [
    ("call me on 5551234567", "5551234567"),
    ("my number is 555 123 4567", "555 123 4567"),
    ("ring +44 7700 900123 tonight", "7700 900123"),
    ("ring 07700900123", "07700900123"),
    ("the office is 020 7946 0958", "7946 0958"),
    ("fax +1 (212) 555-0199", "555-0199"),
    ("mobile +49 30 901820", "901820"),
    ("call 06 12 34 56 78", "12 34 56 78"),
    ("my phone: 0612345678", "0612345678"),
    ("text +33612345678", "612345678"),
    ("write to alice@example.com", "alice@example.com"),
    ("write to Alice.Smith+home@mail.example.org", "mail.example.org"),
    ("mail alice at example dot com", "example dot com"),
    ("mail alice (at) example (dot) com", "example (dot) com"),
    ("it's bob [at] corp [dot] io", "corp [dot] io"),
    ("send it to 12 Elm Street", "Elm"),
    ("i live at 12 elm street", "elm street"),
    ("we're at 221b baker street", "baker street"),
    ("my address is 7 Harbour Rd.", "Harbour"),
    ("meet at 1600 Pennsylvania Avenue", "Pennsylvania"),
    ("deliver to 5 Rose Lane please", "Rose Lane"),
    ("the flat is 42 Queen's Gardens", "Queen's Gardens"),
    ("my card is 4111 1111 1111 1111", "4111"),
    ("card 4111-1111-1111-1111 expires soon", "1111-1111"),
    ("pay with 5500005555555559", "5500005555555559"),
    ("amex 378282246310005", "378282246310005"),
    ("the router is 192.168.1.20", "192.168.1.20"),
    ("server at 10.0.0.5", "10.0.0.5"),
    ("ipv6 fe80::1c2d:3e4f:5a6b:7c8d", "fe80::1c2d"),
    ("ipv6 2001:db8:85a3::8a2e:370:7334", "2001:db8"),
    ("loopback ::1 is fine to hide too", "::1"),
    ("we are at 52.3731, 4.8922", "52.3731"),
    ("coordinates -33.8688;151.2093", "151.2093"),
    ("remind Alice Smith about it", "Alice"),
    ("remind alice smith about it", "smith"),
    ("remind ALICE SMITH about it", "SMITH"),
    ("a note for Alice", "Alice"),
    ("a note for Smith", "Smith"),
    ("Smith, Alice called", "Alice"),
    ("Smith Alice called", "Smith"),
    ("alice   smith called", "alice"),
    ("Alice\tSmith called", "Smith"),
    ("we moved to Springfield", "Springfield"),
    ("springfield is nice", "springfield"),
    ("at 12 Elm Street, Springfield", "Elm Street"),
    ("12 elm street", "elm"),
    ("12  Elm   Street", "Elm"),
    ("the living room lamp is on", "living room lamp"),
    ("the Living Room Lamp is on", "Living Room Lamp"),
    ("light.living_room_lamp changed", "light.living_room_lamp"),
    ("it's cold in the kitchen", "kitchen"),
    ("upstairs is warm", "Upstairs"),
]


def test_personal_data_never_leaves_the_device():
    assert len(LEAKS) >= 50
    red = Redactor(devices=["Living Room Lamp", "Kitchen Light"], areas=["Kitchen", "Living Room", "Upstairs"],
                   entity_ids=["light.living_room_lamp"], people=PRIVATE_TERMS)
    leaked = []
    for text, secret in LEAKS:
        out = red.redact(text)
        if secret.casefold() in out.casefold():
            leaked.append((text, out))
    assert not leaked, leaked


def test_numbers_that_are_not_personal_stay():
    red = Redactor(people=PRIVATE_TERMS)
    for text in ("set the thermostat to 21 degrees", "set a timer for 10 minutes", "2 plus 2", "it's 50 percent", "the year 2024",
                 "dim to 30%", "convert 5 km to miles"):
        assert red.redact(text) == text


def test_placeholders_map_back_on_the_device():
    red = Redactor(devices=["Living Room Lamp"], people=PRIVATE_TERMS)
    sent = red.redact("tell Alice Smith the living room lamp is on, her number is 555 123 4567")
    assert "Alice" not in sent and "4567" not in sent
    assert red.restore(sent) == "tell Alice Smith the living room lamp is on, her number is 555 123 4567"


def _tool_call(name: str, args: dict) -> dict:
    return {"choices": [{"message": {"content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}}], "usage": {"prompt_tokens": 10}}


def _answer(text: str) -> dict:
    return {"choices": [{"message": {"content": text}}], "usage": {"prompt_tokens": 10, "completion_tokens": 3}}


def _remote_config(config: Config, url: str, **extra) -> Config:
    return config.with_overrides({"llm.enabled": False, "remote.policy": "allowed", "remote.max_tools": 2,
                                  "remote.endpoints": [{"name": "cloud", "base_url": url, "model": "m", "privacy": "cloud", "retries": 0}],
                                  "remote.private_terms": PRIVATE_TERMS, **extra})


async def test_the_remote_model_may_only_call_the_tools_it_was_offered(config):
    from assistant.app import build_controller

    # asked about the weather, it is offered a couple of tools; it tries to unlock the front door
    proxy = RecordingProxy(None, mode="scripted", script=[_tool_call("home_turn_off", {"name": "Front Door", "domain": ["lock"]}),
                                                          _answer("Done.")])
    try:
        cfg = _remote_config(config, proxy.url)
        asked: list = []

        async def confirm(req) -> bool:
            asked.append(req.prompt)
            return True  # even a careless yes must not let an unoffered tool run

        bus = EventBus()
        controller = await build_controller(cfg, bus, confirm=confirm, llm=False)
        home = controller.registry.service("home")
        try:
            reply = "".join([p async for p in controller.router.respond("ask the cloud for a haiku about spring", turn=1)])
            offered = [t["function"]["name"] for t in proxy.received[0].get("tools", [])]
            assert "home_turn_off" not in offered
            assert home.snapshot().entity("lock.front_door").state == "locked"
            tool_msgs = [m for m in proxy.received[1]["messages"] if m["role"] == "tool"]
            assert tool_msgs and "no tool called home_turn_off" in tool_msgs[0]["content"]
            assert reply
            assert not asked  # nothing offered needed a confirmation; the unoffered call was refused before asking
        finally:
            await controller.close()
    finally:
        proxy.close()


async def test_tool_results_go_back_minimised_and_redacted(config):
    from assistant.app import build_controller

    proxy = RecordingProxy(None, mode="scripted", script=[_tool_call("home_get_state", {"name": "<DEVICE_1>"}), _answer("It is off.")])
    try:
        cfg = _remote_config(config, proxy.url, **{"remote.max_tools": 8})
        controller = await build_controller(cfg, EventBus(), llm=False)
        try:
            _ = "".join([p async for p in controller.router.respond("ask the cloud whether the Living Room Lamp is on", turn=1)])
            assert len(proxy.received) == 2
            tool_msgs = [m for m in proxy.received[1]["messages"] if m["role"] == "tool"]
            sent = json.dumps(proxy.received[1])
            assert "Living Room Lamp" not in sent and "light.living_room_lamp" not in sent
            result = json.loads(tool_msgs[0]["content"])
            assert set(result) == {"ok", "result"} and "<DEVICE_1>" in result["result"]  # the sentence, redacted; no entity data
        finally:
            await controller.close()
    finally:
        proxy.close()


async def test_the_audit_log_fails_closed(config, tmp_path):
    from assistant.app import build_controller

    proxy = RecordingProxy(None, mode="scripted", script=[_answer("hello")])
    try:
        cfg = _remote_config(config, proxy.url)
        audit = cfg.paths.resolved_data_dir() / "remote_audit.jsonl"
        audit.parent.mkdir(parents=True, exist_ok=True)
        audit.mkdir()  # cannot be written as a file
        controller = await build_controller(cfg, EventBus(), llm=False)
        try:
            reply = "".join([p async for p in controller.router.respond("ask the cloud for a haiku about spring", turn=1)])
            assert proxy.received == []  # nothing was sent
            assert "can't send that off the device" in reply
        finally:
            await controller.close()
    finally:
        proxy.close()


# ---------------------------------------------------------------------------- 5. the model store stays in its folder


@pytest.mark.parametrize("name", ["../outside", "/tmp/victim", "a/b", "..", ".", "", "~root", "x" * 300])
def test_store_names_cannot_escape_the_store(tmp_path, name):
    store = ModelStore(tmp_path / "store")
    with pytest.raises(ModelError):
        store.model_dir(name)


def test_models_remove_and_import_never_touch_paths_outside_the_store(config, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    store_dir = tmp_path / "store"
    cfg = config.with_overrides({"paths.models_dir": str(store_dir)})
    path = tmp_path / "config.toml"
    save_config(cfg, path)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "assistant", "--config", str(path), "models", *args], capture_output=True, text=True, timeout=120)

    for target in (str(victim), "../victim", "../../" + victim.name):
        r = cli("remove", target)
        assert r.returncode != 0 and "Traceback" not in r.stderr
        assert (victim / "precious.txt").read_text() == "keep me"
    model = tmp_path / "mine.onnx"
    model.write_bytes(b"\x08\x01" * 64)
    r = cli("import", str(model), "--name", "../escaped", "--kind", "wake")
    assert r.returncode != 0 and "Traceback" not in r.stderr and "not a model name" in r.stderr
    assert not (tmp_path / "escaped").exists() and not (store_dir.parent / "escaped").exists()


# ---------------------------------------------------------------------------- 6. the calculator


def test_the_calculator_cannot_be_made_to_hang():
    from tools.calculator import calculate

    t0 = time.perf_counter()
    for expr in ("9**9**9", "(2**1000)**1000", "10**10**10", "9^9^9^9"):
        with pytest.raises(ToolError):
            calculate(expr)
    with pytest.raises(ToolError):
        calculate("1+" * 200 + "1")
    assert time.perf_counter() - t0 < 60  # a generous bound: before the fix this never returned
    assert calculate("2 ** 10")["value"] == 1024


# ---------------------------------------------------------------------------- 3. Wyoming


def test_wyoming_accepts_only_loopback_and_the_allowed_networks():
    from assistant.service.wyoming_server import allowed_peer

    assert Config().service.wyoming_host == "127.0.0.1"
    assert allowed_peer("127.0.0.1", []) and allowed_peer("::1", [])
    assert not allowed_peer("192.168.1.40", [])
    assert allowed_peer("192.168.1.40", ["192.168.1.0/24"]) and allowed_peer("10.0.0.7", ["10.0.0.7"])
    assert not allowed_peer("10.0.0.8", ["10.0.0.7", "not an address"])
    assert not allowed_peer("garbage", ["0.0.0.0/0"])


async def test_wyoming_reads_are_bounded():
    from assistant.service.wyoming_server import MAX_PAYLOAD, read_event_bounded

    async def feed(data: bytes):
        reader = asyncio.StreamReader(limit=64 * 1024)
        reader.feed_data(data)
        reader.feed_eof()
        return await read_event_bounded(reader)

    ok = await feed(b'{"type": "describe"}\n')
    assert ok is not None and ok.type == "describe"
    assert await feed(json.dumps({"type": "audio-chunk", "payload_length": MAX_PAYLOAD + 1}).encode() + b"\n") is None
    assert await feed(b'{"type": "x", "data_length": 999999999}\n') is None
    assert await feed(b"x" * (70 * 1024) + b"\n") is None  # a header line over 64 KiB
    assert await feed(b'{"no type": 1}\n') is None
    assert await feed(b"not json\n") is None
