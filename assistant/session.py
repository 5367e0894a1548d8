"""One running assistant: engines, tools, router, pipeline and event bus, behind one small API.

``assistant run``, the TUI and the headless service all drive a :class:`Session`; front ends
only read its event bus and call :meth:`Session.ask`, :meth:`Session.interrupt`,
:meth:`Session.set_muted` and the confirmation hook, so any of them could drive a session in
another process through the service's API instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .app import Controller, Speech, import_engines, build_controller, load_speech
from .audio.devices import MicrophoneSource, SpeakerSink, device_call, refresh_devices
from .audio.io import AudioSink, AudioSource, FileSource, WavSink
from .bus import EventBus
from .errors import AudioDeviceError
from .config import Config
from .events import TimerFired
from .engine.arbiter import Request
from .engine.timing import TurnTimings
from .engine.context import LOCAL
from .pipeline import Pipeline
from .toolkit.registry import ConfirmationRequest, ConfirmHook

__all__ = ["Session", "SessionOptions"]

log = logging.getLogger(__name__)


@dataclass
class SessionOptions:
    """Where audio comes from and goes to."""

    input_file: Path | None = None
    """A recording to use as the microphone (None = the microphone)."""
    output_file: Path | None = None
    """A WAV file for the replies (None = the speaker)."""
    realtime: bool = False
    """Play ``input_file`` at speech speed (as a microphone would deliver it)."""
    voice: bool = True
    """Load the wake word and ASR (False: typed requests only)."""
    speak: bool = True
    """Load TTS and open the sink (False: text replies only)."""
    notice: Callable[[str], None] | None = None
    degrade: bool = False
    """Start with what works when a model is missing or corrupt (no LLM → templates only; no TTS →
    text replies; no wake model or ASR → typed requests only) instead of failing; :attr:`Session.problems` says what is missing."""
    background_llm: bool = True
    """Start before the local LLM has loaded (requests it is not needed for are answered at once;
    one that needs it waits and says so). False: :meth:`Session.start` returns with it ready."""
    tolerate_missing_devices: bool = False
    """Start without a microphone or speaker when there is none (the service: it keeps serving
    its API and retries the devices) instead of failing."""
    extra: dict[str, Any] = field(default_factory=dict)


class Session:
    """A configured assistant, started with :meth:`start` and stopped with :meth:`close`.

    Args:
        config: The configuration (models already chosen or "auto").
        options: Audio in/out.
        bus: The event bus (a new one by default).
        confirm: Confirmation hook for risky tools (default: ask by voice).
    """

    def __init__(self, config: Config, options: SessionOptions | None = None, *, bus: EventBus | None = None, confirm: ConfirmHook | None = None) -> None:
        self.config = config
        self.options = options or SessionOptions()
        self.bus = bus or EventBus()
        self._confirm = confirm
        self.speech: Speech | None = None
        self.controller: Controller | None = None
        self.pipeline: Pipeline | None = None
        self.source: AudioSource | None = None
        self.sink: AudioSink | None = None
        self.started_at = 0.0
        self.load_s = 0.0
        self.device_errors: list[str] = []
        self.problems: dict[str, str] = {}
        """What does not work right now, by part ("voice": "the voice loop failed …"); /health reads it."""
        self.timings = TurnTimings()
        """Per-turn stage timings (the API's status, the logs and the TUI read it)."""
        self.bus.subscribe(self.timings)

    async def _confirm_hook(self, req: ConfirmationRequest) -> bool:
        """Confirmations of typed requests: the front end's hook (a TUI dialog), else by voice."""
        if self._confirm is not None:
            return await self._confirm(req)
        if self.pipeline is not None:
            return await self.pipeline.ask_yes_no(req.prompt)
        return False

    def set_confirm(self, hook: ConfirmHook | None) -> None:
        """Answer confirmations with ``hook`` (a TUI dialog), or by voice when None."""
        self._confirm = hook

    async def start(self) -> None:
        """Load engines and tools (in parallel threads) and open the audio devices or files.

        Raises:
            AssistantError: A model, device or file problem (with what to do).
        """
        t0 = time.perf_counter()
        opts = self.options
        source: AudioSource | None = None
        if opts.voice and opts.input_file is not None:
            source = FileSource(opts.input_file, realtime=opts.realtime)  # a bad file fails before models load
        import_engines(["onnxruntime", "faster_whisper", "faster_whisper.vad", "llama_cpp"])  # before the parallel loaders
        self.speech, self.controller = await asyncio.gather(
            load_speech(self.config, wake=opts.voice, asr=opts.voice, tts=opts.speak, notice=opts.notice, degrade=opts.degrade),
            build_controller(self.config, self.bus, confirm=self._confirm_hook, notice=opts.notice, degrade=opts.degrade,
                             background_llm=opts.background_llm),
        )
        self.problems.update(self.speech.problems)
        self.problems.update(self.controller.problems)
        loading = self.controller.router.local_loading
        if loading is not None:  # a model that fails to load in the background is reported like one that failed at start
            loading.add_done_callback(lambda _t: self.problems.update(self.controller.problems) if self.controller else None)
        for kind, why in self.problems.items():
            if opts.notice:
                opts.notice(f"starting without the {kind} model: {why}")
        if opts.voice and source is None and self.speech.listener is not None:
            try:
                source = MicrophoneSource(self.config.audio.input_device)
            except AudioDeviceError as exc:
                if not opts.tolerate_missing_devices:
                    raise
                self.device_errors.append(exc.message)
                self.problems["microphone"] = exc.message
                log.error("no microphone: %s", exc.message)
        self.source = source
        if opts.speak:
            try:
                self.sink = (
                    WavSink(opts.output_file, self.config.audio.output_sample_rate) if opts.output_file
                    else SpeakerSink(self.config.audio.output_device, self.config.audio.output_sample_rate)
                )
            except AudioDeviceError as exc:
                if not opts.tolerate_missing_devices:
                    raise
                self.device_errors.append(exc.message)
                self.problems["speaker"] = f"replies are text only: {exc.message}"
                log.error("no speaker, replies are not spoken: %s", exc.message)
        self.pipeline = Pipeline(
            self.config, self.speech.listener, asr=self.speech.asr, tts=self.speech.tts, responder=self.controller.router,
            sink=self.sink, bus=self.bus, verifier=self.speech.verifier, rescorer=self.controller.rescorer,
            reopen_sink=self._reopen_speaker if opts.output_file is None and opts.speak else None,
        )
        self.bus.subscribe(self._on_event)
        self.load_s = time.perf_counter() - t0
        self.started_at = time.time()

    async def _reopen_speaker(self) -> AudioSink | None:
        """A new speaker after the old one stopped playing (or None: replies as text until it is
        back). Opened off the event loop, given up on after ``DEVICE_CALL_TIMEOUT_S`` (a wedged device)."""
        audio = self.config.audio
        try:
            self.sink = await device_call("opening the speaker", lambda: SpeakerSink(audio.output_device, audio.output_sample_rate),
                                          abandon=SpeakerSink.close_now)
        except AudioDeviceError as exc:
            log.error("no speaker, replies are not spoken: %s", exc.message)
            self.sink = None
        return self.sink

    async def reopen_microphone(self) -> MicrophoneSource:
        """Open the microphone again after it failed or was never there, re-reading the device list
        first (PortAudio only sees a device plugged in after it started once it restarts; see
        :func:`~assistant.audio.devices.refresh_devices`). The restart stops every stream, so the
        speaker is closed before and opened again after — also picking up a speaker plugged in since.

        Raises:
            AudioDeviceError: Still no usable microphone, or a reply is playing (the device list is
                re-read when it has finished; try again).
        """
        speaker = self.sink if isinstance(self.sink, SpeakerSink) else None
        owns_speaker = self.options.speak and self.options.output_file is None
        speaking = self.pipeline is not None and self.pipeline.speaker.speaking
        if speaker is not None and (speaker.busy or speaking):
            raise AudioDeviceError("a reply is playing; the audio devices are re-read when it ends")
        if speaker is not None:
            if self.pipeline is not None:
                self.pipeline.set_sink(None)  # a reply starting meanwhile is text only, not queued on a closed speaker
            await speaker.close()
        try:
            if owns_speaker:
                await refresh_devices()
            self.source = MicrophoneSource(self.config.audio.input_device)
        finally:
            if owns_speaker and (speaker is not None or "speaker" in self.problems):
                sink = await self._reopen_speaker()
                if self.pipeline is not None:
                    self.pipeline.set_sink(sink)
                if sink is not None:
                    self.problems.pop("speaker", None)
        return self.source

    def _on_event(self, event) -> None:
        if isinstance(event, TimerFired) and self.pipeline is not None:
            self.pipeline.announce(f"Your {event.name.removeprefix('the ')} is done.")

    async def run_voice(self) -> None:
        """Listen until the input ends (a file) or the task is cancelled (the microphone)."""
        assert self.pipeline is not None
        if self.source is None or self.pipeline.voice is None:
            return
        await self.pipeline.run(self.source)

    async def ask(self, text: str, *, origin: str = LOCAL, channel=None, area: str | None = None) -> str:
        """A typed request through the turn arbiter; spoken if the session speaks.

        Args:
            text: The request.
            origin: Whose conversation it is (the device's own by default).
            channel: Where the answer goes (default: the device's speaker, confirmations by the
                front end's hook or by voice).
            area: The origin's own area, if it has one (a satellite's room).

        Raises:
            Busy: Too many requests are waiting.
        """
        assert self.pipeline is not None
        if channel is not None:
            return await self.pipeline.arbiter.submit(Request(text=text, channel=channel, origin=origin, area=area))
        return await self.pipeline.handle_text(text, speak=self.sink is not None, origin=origin, confirm=self._confirm_hook)

    async def interrupt(self) -> None:
        """Stop speaking now."""
        if self.pipeline is not None:
            await self.pipeline.interrupt("user")

    def set_muted(self, muted: bool) -> None:
        """Ignore the microphone (privacy mute) or listen again."""
        if self.pipeline is not None:
            self.pipeline.muted = muted

    # ------------------------------------------------------------------ what live views read
    # (the TUI reads these; :class:`~assistant.service.client.RemoteSession` has the same, over the API)

    remote = False
    """False: this process runs the assistant (a :class:`RemoteSession` is attached to one)."""

    @property
    def home(self) -> Any | None:
        return self.controller.registry.service("home") if self.controller else None

    async def home_rows(self) -> list[dict[str, str]] | None:
        """The home's entities as ``{"area", "name", "kind", "state"}`` rows, or None without a home."""
        from tools.home.tools import home_rows  # noqa: PLC0415

        home = self.home
        return home_rows(home.snapshot()) if home is not None else None

    def on_home_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (no arguments) whenever the home changes."""
        home = self.home
        if home is not None:
            home.on_change(lambda _e: callback())

    async def tools(self) -> list[dict[str, str]]:
        """The loaded tools as ``{"name", "source", "risk", "state"}`` rows: ``source`` is the plugin
        or ``mcp:<server>``; ``state`` is the MCP server's (connected, reconnecting…) or "" for plugins."""
        reg = self.controller.registry if self.controller is not None else None
        if reg is None:
            return []
        mcp = reg.mcp
        return [{"name": t.name, "source": t.plugin, "risk": t.risk.value + (", asks" if t.always_confirm else ""),
                 "state": mcp.state_of(t) if mcp is not None else ""}
                for t in sorted(reg.tools.values(), key=lambda t: (t.plugin.startswith("mcp:"), t.plugin, t.name))]

    async def timers(self) -> list[dict[str, Any]]:
        """Running and paused timers: ``{"id", "label", "left_s", "paused"}``."""
        timers = self.controller.registry.service("timers") if self.controller is not None else None
        return timers.snapshot() if timers is not None else []

    async def models(self) -> dict[str, str]:
        """The models in use, by kind ("wake", "asr", "llm", "tts")."""
        from .app import choose_models, model_store  # noqa: PLC0415

        cfg = choose_models(self.config, model_store(self.config))
        return {"wake": ", ".join(cfg.wake.models), "asr": cfg.asr.model, "llm": cfg.llm.model if cfg.llm.enabled else "off", "tts": cfg.tts.voice}

    @property
    def loading(self) -> list[str]:
        """Models still loading in the background: ``["llm"]`` while the local LLM loads and warms
        its prompt prefix (``SessionOptions.background_llm``), else ``[]``."""
        router = self.controller.router if self.controller is not None else None
        task = router.local_loading if router is not None else None
        return ["llm"] if task is not None and not task.done() else []

    @property
    def level_dbfs(self) -> float:
        """The microphone's level, dBFS (-100 when there is none)."""
        return self.pipeline.level_dbfs if self.pipeline is not None else -100.0

    @property
    def has_voice(self) -> bool:
        """There is a microphone (or a recording) to listen to."""
        return self.source is not None

    def push_to_talk(self) -> bool:
        """Listen for a request now, without the wake word; False when there is no microphone."""
        voice = self.pipeline.voice if self.pipeline is not None else None
        if voice is None or not voice.listening:
            return False
        voice.start_listening()
        return True

    @property
    def state(self) -> str:
        return self.pipeline.state.value if self.pipeline else "starting"

    async def close(self) -> None:
        if self.pipeline is not None:
            await self.pipeline.close()
        if self.source is not None:
            await self.source.close()
        if self.sink is not None:
            await self.sink.close()
        if self.controller is not None:
            await self.controller.close()
