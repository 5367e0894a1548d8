"""Fault matrix: each fault injected into a running assistant (a real :class:`Session`, typed
requests, the simulated home, real SQLite state, a real HTTP server on loopback as the remote
model). For each fault, four checks:

* **up** — the session still answers (its request does not raise, and no turn hangs past 30 s);
* **next** — the first ordinary request after the fault ("what time is it") is answered;
* **kept** — the state made before the fault (a timer, a shopping-list item) is still there;
* **told** — the reply to the request that hit the fault tells the user something went wrong
  (not silence, not "Done.").

Corrupt state files are the exception: the state is destroyed on purpose, and the request after
start must simply work (the assistant starts the file afresh).

The two audio-device faults run a voice session (wake word, ASR, TTS) on a fake sound card — the
one boundary this machine cannot run (no sound card); it behaves like PortAudio where it matters
(see :mod:`assistant.testing.fake_sounddevice`):

* **the microphone disappears and returns** — the service's supervised voice loop
  (:meth:`Service._voice_loop`) must see it go, say so (``/health``'s problems), keep answering
  typed requests, and after the microphone is back act on a spoken "hey jarvis, turn on the
  living room lamp";
* **a microphone plugged in after start** — the service starts without one (typed requests only,
  ``/health`` says why), finds it once it is plugged in (PortAudio only lists devices present when
  it started, so the device list must be re-read) and acts on a spoken command;
* **the speaker blocks** — no more callbacks, and stopping its stream hangs: a spoken reply must
  still come back as text within its length plus the drain margin, the event loop must not stall
  (largest gap of a 50 ms heartbeat, reported), the speaker be reported on the bus and reopened,
  and once the device recovers the next reply be heard.

A fault survives when all four hold. Faults that need root (mounting a small or read-only tmpfs
for the data folder) are reported as skipped without it. The table prints survived / total.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import numpy as np

from .suite import _free_port

TIMEOUT_S = 30.0



async def _remote_server(mode: str) -> tuple[Any, int]:
    """An OpenAI-compatible endpoint that misbehaves: "hang", "garbage" or "500"."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.StreamResponse:
        if mode == "hang":
            await asyncio.sleep(3600)
        if mode == "garbage":
            return web.Response(text="<html>definitely not json", content_type="application/json")
        return web.json_response({"error": "internal"}, status=500)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def _mount_tmpfs(path: Path, size: str, readonly: bool = False) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    return subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True).returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _told(reply: str) -> bool:
    r = reply.strip().lower()
    return bool(r) and r not in ("done.", "ok.") and any(w in r for w in ("sorry", "can't", "cannot", "could not", "couldn't", "failed", "not",
                                                                          "unavailable", "error", "problem", "full", "try"))


async def _ask(session: Any, text: str) -> str:
    return await asyncio.wait_for(session.ask(text), TIMEOUT_S)


async def _state_ok(session: Any) -> bool:
    timers = await session.timers()
    listing = await _ask(session, "what's on my shopping list")
    return any("10 minutes" in t["label"] or t["left_s"] > 60 for t in timers) and "milk" in listing.lower()


async def _prepare_state(config: Any) -> None:
    """State made before the fault, by an earlier run of the assistant: a timer and a list item."""
    from assistant.session import Session, SessionOptions

    s0 = Session(config, SessionOptions(voice=False, speak=False))
    await s0.start()
    await _ask(s0, "set a timer for 10 minutes")
    await _ask(s0, "add milk to my shopping list")
    await s0.close()


async def _until(check: Callable[[], bool], timeout: float) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


async def _scenario(config: Any, data: Path, fault: Callable[[Any, Path], Awaitable[str]],
                    before_start: Callable[[Path], None] | None = None, *, prepare: bool = True) -> dict[str, Any]:
    from assistant.session import Session, SessionOptions

    out: dict[str, Any] = {"up": False, "next": False, "kept": False, "told": False, "reply": ""}
    if prepare:
        await _prepare_state(config)
    if before_start is not None:
        before_start(data)
    session = Session(config, SessionOptions(voice=False, speak=False, degrade=True))
    try:
        await session.start()
        try:
            out["reply"] = await fault(session, data)
            out["up"] = True
        except Exception as exc:  # noqa: BLE001 - the matrix records it
            out["reply"] = f"raised {type(exc).__name__}: {exc}"
        out["told"] = _told(out["reply"])
        with contextlib.suppress(Exception):
            out["next"] = (await _ask(session, "what time is it")).startswith("It is")
        with contextlib.suppress(Exception):
            out["kept"] = await _state_ok(session)
    finally:
        await session.close()
    return out


async def _audio_device_faults(config: Any) -> dict[str, dict[str, Any]]:
    """The microphone disappears and returns; the speaker blocks (a voice session on a fake sound card)."""
    import assistant.audio.devices as devices
    from assistant.bus import EventBus
    from assistant.events import ErrorEvent, ToolCallFinished
    from assistant.service.daemon import Service
    from assistant.session import Session, SessionOptions
    from assistant.testing.fake_sounddevice import FakeSoundDevice

    from .suite import clip, silence

    command = np.concatenate([clip("hey_jarvis.wav"), silence(0.3), clip("wfw_turn_on_the_living_room_lamp.wav"), silence(2.0)])
    card = FakeSoundDevice(mic_rate=48000, speaker_rate=48000)
    real_loader = devices.load_sounddevice
    devices.load_sounddevice = lambda: card  # the one fake: the sound card (``card`` is looked up at each call)
    await _prepare_state(config)
    bus = EventBus()
    lamp_on: list[float] = []
    speaker_errors: list[str] = []
    bus.subscribe(lambda e: lamp_on.append(time.monotonic()) if isinstance(e, ToolCallFinished) and e.tool == "home_turn_on" and e.ok else None)
    bus.subscribe(lambda e: speaker_errors.append(e.message) if isinstance(e, ErrorEvent) and e.stage == "speaker" else None)
    options = SessionOptions(voice=True, speak=True, degrade=True, tolerate_missing_devices=True)
    session = Session(config, options, bus=bus)
    service = Service(config, None, options)
    mic: dict[str, Any] = {"up": False, "next": False, "kept": False, "told": False, "reply": ""}
    spk: dict[str, Any] = {"up": False, "next": False, "kept": False, "told": False, "reply": ""}
    loop_task = None
    try:
        await session.start()
        service.session = session
        loop_task = asyncio.create_task(service._voice_loop(session))
        # the harness works: a spoken command before the fault
        await asyncio.sleep(1.0)
        card.say(command)
        mic["before"] = await _until(lambda: bool(lamp_on), TIMEOUT_S)

        # --- the microphone disappears ...
        first_source = session.source
        t_unplug = time.monotonic()
        card.unplug()
        mic["told"] = await _until(lambda: "microphone" in session.problems.get("voice", ""), 15.0)
        mic["noticed_s"] = round(time.monotonic() - t_unplug, 1)
        mic["reply"] = session.problems.get("voice", "")
        with contextlib.suppress(Exception):
            mic["up"] = (await _ask(session, "what time is it")).startswith("It is")  # typed requests while it is gone
        await asyncio.sleep(3.0)
        # ... and returns
        t_plug = time.monotonic()
        card.plug()
        mic["reopened"] = await _until(lambda: session.source is not None and session.source is not first_source
                                       and "voice" not in session.problems, 30.0)
        mic["reopened_s"] = round(time.monotonic() - t_plug, 1)
        await _spoken_command_acted_on(mic, card, command, lamp_on, session)

        # --- the speaker blocks
        beats: list[float] = []

        async def heartbeat() -> None:
            while True:
                beats.append(time.monotonic())
                await asyncio.sleep(0.05)

        hb = asyncio.create_task(heartbeat())
        card.block_speaker()
        t0 = time.monotonic()
        try:
            spk["reply"] = await _ask(session, "what time is it")
            spk["up"] = spk["reply"].startswith("It is")
        except Exception as exc:  # noqa: BLE001 - the matrix records it
            spk["reply"] = f"raised {type(exc).__name__}: {exc}"
        spk["reply_s"] = round(time.monotonic() - t0, 1)
        spk["told"] = bool(speaker_errors)
        hb.cancel()
        spk["loop_max_stall_s"] = round(max(np.diff(beats)) if len(beats) > 1 else spk["reply_s"], 2)
        card.unblock_speaker()
        await asyncio.sleep(0.5)
        played = len(card.played)
        with contextlib.suppress(Exception):
            await _ask(session, "what time is it")
        spk["next"] = await _until(lambda: len(card.played) > played, 10.0)
        with contextlib.suppress(Exception):
            spk["kept"] = await _state_ok(session)
    finally:
        await _stop_voice(service, loop_task)
        await session.close()

    # --- a microphone plugged in after start
    late: dict[str, Any] = {"up": False, "next": False, "kept": False, "told": False, "reply": ""}
    card = FakeSoundDevice(mic_rate=48000, speaker_rate=48000)
    card.unplug()
    card._initialize()  # the machine started without it
    session = Session(config, options, bus=bus)
    service = Service(config, None, options)
    loop_task = None
    try:
        await session.start()
        service.session = session
        loop_task = asyncio.create_task(service._voice_loop(session))
        late["told"] = await _until(lambda: "microphone" in session.problems.get("voice", ""), 10.0)
        late["reply"] = session.problems.get("voice", "")
        with contextlib.suppress(Exception):
            late["up"] = (await _ask(session, "what time is it")).startswith("It is")
        t_plug = time.monotonic()
        card.plug()
        late["reopened"] = await _until(lambda: session.source is not None and "voice" not in session.problems, 90.0)
        late["reopened_s"] = round(time.monotonic() - t_plug, 1)
        await _spoken_command_acted_on(late, card, command, lamp_on, session)
    finally:
        await _stop_voice(service, loop_task)
        await session.close()
        devices.load_sounddevice = real_loader
    return {"microphone disappears and returns": mic, "microphone plugged in after start": late, "speaker blocks": spk}


async def _spoken_command_acted_on(out: dict[str, Any], card: Any, command: np.ndarray, lamp_on: list[float], session: Any) -> None:
    """After the microphone is back: a spoken command is acted on ("next") and the earlier state is there ("kept")."""
    n_before = len(lamp_on)
    card.say(command)
    out["next"] = out["reopened"] and await _until(lambda: len(lamp_on) > n_before, TIMEOUT_S)
    with contextlib.suppress(Exception):
        out["kept"] = await _state_ok(session)


async def _stop_voice(service: Any, loop_task: asyncio.Task | None) -> None:
    if loop_task is not None:
        service.stop_requested.set()
        loop_task.cancel()
        with contextlib.suppress(BaseException):
            await loop_task


async def _run(base: Any) -> dict[str, Any]:
    results: dict[str, Any] = {}
    root = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    common = {"llm.enabled": False, "tools.confirm_risks": []}

    def cfg(name: str, **extra: Any) -> tuple[Any, Path]:
        data = root / name
        return base.with_overrides({**common, "paths.data_dir": str(data), **extra}), data

    # --- the remote model misbehaves: hangs, answers garbage, answers 500
    for mode in ("hang", "garbage", "500"):
        runner, port = await _remote_server(mode)
        try:
            c, data = cfg(f"remote-{mode}", **{"remote.policy": "allowed", "remote.endpoints": [
                {"name": "lan", "base_url": f"http://127.0.0.1:{port}/v1", "model": "m", "privacy": "lan", "timeout_s": 2.0, "retries": 1}]})

            async def fault(session: Any, _data: Path) -> str:
                return await _ask(session, "write me a short poem about the sea")

            t0 = time.perf_counter()
            results[f"remote endpoint {mode}"] = await _scenario(c, data, fault) | {"s": round(time.perf_counter() - t0, 1)}
        finally:
            await runner.cleanup()

    # --- corrupt state files: the timers and lists databases and the saved conversation
    c, data = cfg("corrupt-state")

    def corrupt(d: Path) -> None:
        for p in [*d.rglob("lists.db"), *d.rglob("timers.db")]:
            p.write_bytes(b"this is not a database" * 10)

    async def after_corruption(session: Any, _data: Path) -> str:
        return await _ask(session, "set a timer for 3 minutes")

    results["corrupt state files"] = await _scenario(c, data, after_corruption, corrupt)

    # --- a plugin tool that crashes at call
    c, data = cfg("tool-crash")

    async def tool_crash(session: Any, _data: Path) -> str:
        reg = session.controller.registry
        tool = reg.tools["clock_time"]
        original = tool.func

        def boom(**_kw: Any) -> str:
            raise RuntimeError("the plugin broke")

        tool.func = boom
        try:
            return await _ask(session, "what time is it")
        finally:
            tool.func = original

    results["a tool crashes at call"] = await _scenario(c, data, tool_crash)

    # --- two sources at once, a burst from each
    c, data = cfg("burst")

    async def burst(session: Any, _data: Path) -> str:
        from assistant.engine.arbiter import Busy

        texts = ["what time is it", "turn on the kitchen light", "what's on my shopping list", "turn off the kitchen light"]
        tasks = [session.ask(t, origin=o) for o in ("local", "api") for t in texts]
        replies = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), TIMEOUT_S * 2)
        answered = sum(isinstance(x, str) and bool(x) for x in replies)
        busy = sum(isinstance(x, Busy) for x in replies)
        return f"{answered} answered, {busy} told to try again (busy), of {len(tasks)}; not a failure" if answered + busy == len(tasks) else f"failed: {replies}"

    r = await _scenario(c, data, burst)
    r["told"] = "not a failure" in r["reply"]  # nothing went wrong to tell about: every request got an answer
    results["two sources, a burst from each"] = r

    # --- the data folder's disk fills up; the data folder becomes read-only (root only: tmpfs mounts)
    for name, ro in (("full disk under the data folder", False), ("read-only data folder", True)):
        c, data = cfg("disk-" + ("ro" if ro else "full"))
        if not _mount_tmpfs(data, "1m"):
            results[name] = {"skipped": "needs root to mount a tmpfs"}
            continue
        try:
            def make_read_only(d: Path, _ro: bool = ro) -> None:
                if _ro:  # the card went read-only while the assistant was off (an SD card after errors does)
                    subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True, capture_output=True)

            async def disk_fault(session: Any, d: Path, _ro: bool = ro) -> str:
                if not _ro:
                    with contextlib.suppress(OSError):
                        with open(d / "filler", "wb") as f:
                            while True:
                                f.write(b"\0" * 65536)
                try:
                    return await _ask(session, "add eggs to my shopping list")
                finally:
                    if not _ro:
                        (d / "filler").unlink(missing_ok=True)

            results[name] = await _scenario(c, data, disk_fault, make_read_only)
        finally:
            _umount(data)

    # --- the microphone disappears and returns; the speaker blocks
    c, _data = cfg("audio-devices")
    results.update(await _audio_device_faults(c))

    shutil.rmtree(root, ignore_errors=True)
    for name, r in results.items():
        if "skipped" in r:
            continue
        if name == "corrupt state files":  # its state was destroyed on purpose: the request must simply work
            r["survived"] = r["up"] and r["next"] and "timer" in r["reply"].lower() and not r["told"]
        else:
            r["survived"] = all(r[k] for k in ("up", "next", "kept", "told"))
    done = [r for r in results.values() if "skipped" not in r]
    results["summary"] = {"survived": sum(r["survived"] for r in done), "total": len(done),
                          "skipped": len(results) - len(done)}
    return results


def evaluate(config: Any) -> dict[str, Any]:
    return asyncio.run(_run(config))
