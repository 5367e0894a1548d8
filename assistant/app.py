"""Assembly: turn a :class:`~assistant.config.Config` into loaded engines and a pipeline.

The CLI, the TUI and the headless service all build the assistant through here, so they load
the same models the same way. Models are resolved through the model store (names) or used as
paths, licences of restrictive models are shown once before first use, and the heavy engines
load in parallel worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .config import Config
from .errors import AssistantError, ModelError
from .speech.asr import SpeechRecognizer
from .speech.endpoint import Endpointer
from .speech.listener import Listener
from .speech.tts import SpeechSynthesizer
from .speech.wake import WakeStage, WakeVerifier, WakeWordModel
from .store import ModelStore

if TYPE_CHECKING:
    from .bus import EventBus
    from .speech.turn import SmartTurn, TextCompleteness
    from .controller.fastpath import FastPath
    from .controller.router import Router
    from .toolkit.registry import ConfirmHook, ToolRegistry

__all__ = ["Controller", "Speech", "build_controller", "choose_models", "load_speech", "missing_models", "import_engines", "missing_optional_models", "model_store", "turn_model_ref"]

log = logging.getLogger(__name__)

Notice = Callable[[str], None]


def model_store(config: Config) -> ModelStore:
    """The model store the config points at."""
    return ModelStore(config.paths.resolved_models_dir())


_MODEL_KEYS = (("asr", "asr.model"), ("tts", "tts.voice"), ("llm", "llm.model"))


def choose_models(config: Config, store: ModelStore, tier: str | None = None) -> Config:
    """Replace ``"auto"`` models with concrete ones.

    "auto" means this machine's tier default (``models/catalog.toml`` [defaults]) if it is
    installed, else an installed model of that kind, else the tier default (to be pulled).
    """
    from .store import detect_tier  # noqa: PLC0415

    tier = tier or detect_tier()
    defaults = store.catalog.defaults.get(tier, ())
    installed = [n for n in store.installed_names() if store.is_ready(n)]
    overrides = {}
    for kind, key in _MODEL_KEYS:
        section, field = key.split(".")
        current = getattr(getattr(config, section), field)
        if current != "auto":
            continue
        default = next((n for n in defaults if store.catalog.entries[n].kind == kind), None)
        ready = [n for n in installed if store.entry(n).kind == kind]
        overrides[key] = default if default in ready or not ready else ready[0]
        if overrides[key] is None:
            raise ModelError(f"no {kind} model is installed and the catalog has no default for tier {tier}", hint="assistant models pull NAME")
    return config.with_overrides(overrides) if overrides else config


def missing_models(config: Config, store: ModelStore) -> list[str]:
    """Catalog models the config names that are not installed and verified (paths are not checked)."""
    refs = [config.wake.features, *config.wake.models, config.asr.model, config.tts.voice]
    if config.llm.enabled:
        refs.append(config.llm.model)
    out = []
    for ref in refs:
        if ref == "auto" or _is_path_ref(ref) or ref in out:
            continue
        if not store.is_ready(ref):
            out.append(ref)
    return out


def missing_optional_models(config: Config, store: ModelStore) -> list[str]:
    """Catalog models the config names that the assistant can do without (Smart Turn, the text
    completeness model) and are not installed."""
    refs = [turn_model_ref(config)]
    if refs[0] is not None:
        refs.append(config.endpoint.turn_text_model or None)
    return [r for r in dict.fromkeys(refs) if r is not None and not _is_path_ref(r) and not store.is_ready(r)]


def _is_path_ref(ref: str) -> bool:
    from .store.store import _is_path  # noqa: PLC0415

    return _is_path(ref)


def _resolve(store: ModelStore, ref: str, kind: str, notice: Notice | None) -> Path:
    path = store.resolve(ref, kind)
    text = store.licence_notice(ref)
    if text and notice:
        notice(text)
    return path


def load_wake_model(config: Config, store: ModelStore, notice: Notice | None = None) -> WakeWordModel:
    features = _resolve(store, config.wake.features, "wake_features", notice)
    paths = [_resolve(store, m, "wake", notice) for m in config.wake.models]
    return WakeWordModel(paths, features)


def load_asr(config: Config, store: ModelStore, notice: Notice | None = None) -> SpeechRecognizer:
    config = choose_models(config, store)
    return SpeechRecognizer(_resolve(store, config.asr.model, "asr", notice), config.asr)


def load_tts(config: Config, store: ModelStore, notice: Notice | None = None) -> SpeechSynthesizer:
    config = choose_models(config, store)
    return SpeechSynthesizer(_resolve(store, config.tts.voice, "tts", notice), config.tts)


def build_listener(config: Config, wake_model: WakeWordModel | None, turn_model: "SmartTurn | None" = None,
                   text_model: "TextCompleteness | None" = None) -> Listener:
    """Wake stage (none without ``wake_model``: push-to-talk only) + endpointer; with ``turn_model`` (and ``endpoint.turn_detection = "smart_turn"``)
    the endpointer reports pauses for the turn detector instead of waiting out a fixed silence;
    ``text_model`` lets the detector judge whether the words so far end a sentence."""
    detect = turn_model is not None and config.endpoint.turn_detection == "smart_turn"
    return Listener(WakeStage(wake_model, config.wake) if wake_model is not None else None, Endpointer(config.endpoint, detect_turns=detect),
                    turn_model=turn_model if detect else None, text_model=text_model if detect else None)


def load_text_model(config: Config, store: ModelStore, notice: Notice | None = None) -> "TextCompleteness | None":
    """The text completeness model of the turn detector, or None (with a warning) when it is off, missing or corrupt."""
    from .speech.turn import TextCompleteness  # noqa: PLC0415

    ref = config.endpoint.turn_text_model
    if turn_model_ref(config) is None or not ref:
        return None
    try:
        return TextCompleteness(_resolve(store, ref, "llm", notice), threads=1)  # alone: 38 ms a score on one thread, 33 on two (median of 15); the other core is the LLM's
    except ModelError as exc:
        msg = f"the turn detector judges without the text model: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")
        log.warning(msg)
        if notice:
            notice(msg)
        return None


def turn_model_ref(config: Config) -> str | None:
    """The Smart Turn model the config asks for, or None when turns end on a fixed silence."""
    return config.endpoint.turn_model if config.endpoint.turn_detection == "smart_turn" else None


def load_turn_model(config: Config, store: ModelStore, notice: Notice | None = None) -> "SmartTurn | None":
    """Smart Turn, or None (with a warning) when it is missing or corrupt: endpointing then falls
    back to the fixed trailing silence, and everything else works."""
    from .speech.turn import SmartTurn  # noqa: PLC0415

    ref = turn_model_ref(config)
    if ref is None:
        return None
    try:
        return SmartTurn(_resolve(store, ref, "turn", notice), threads=1)
    except ModelError as exc:
        msg = (f"end-of-turn detection is off, turns end after {config.endpoint.trailing_silence_ms} ms of silence: "
               f"{exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
        log.warning(msg)
        if notice:
            notice(msg)
        return None


def import_engines(modules: list[str]) -> None:
    """Import the engines' packages here, in one thread, before the loaders run in parallel
    threads: two threads importing faster_whisper (or llama_cpp) at once can fail with Python's
    import ``_DeadlockError``. A package that is not installed is left for its loader to report."""
    import importlib  # noqa: PLC0415

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - not installed or broken: its loader reports it with a hint
            pass


@dataclass
class Speech:
    """The loaded speech engines."""

    listener: Listener | None
    asr: SpeechRecognizer | None
    tts: SpeechSynthesizer | None
    verifier: WakeVerifier | None
    turn: "SmartTurn | None" = None
    """The end-of-turn model (None: turns end on a fixed silence)."""
    turn_text: "TextCompleteness | None" = None
    """The turn detector's text completeness model (None: not used)."""
    problems: dict[str, str] = field(default_factory=dict)
    """Engines left out because they could not load (``degrade``), by kind, with the reason."""


async def load_speech(
    config: Config,
    *,
    wake: bool = True,
    asr: bool = True,
    tts: bool = True,
    notice: Notice | None = None,
    store: ModelStore | None = None,
    degrade: bool = False,
) -> Speech:
    """Load the speech engines the caller needs, in parallel threads.

    Args:
        degrade: Start with what works: an engine that cannot load is left out (no wake model →
            push-to-talk only; no ASR → no voice input; no TTS → text replies) and named in
            :attr:`Speech.problems`.

    Raises:
        ModelError: A model is missing, unverified or corrupt (unless ``degrade``).
        MissingDependencyError: An engine's package is not installed (unless ``degrade``).
    """
    store = store or model_store(config)
    config = choose_models(config, store)
    import_engines(["onnxruntime", "faster_whisper", "faster_whisper.vad", "llama_cpp"])
    jobs = {}
    if wake:
        jobs["wake"] = asyncio.to_thread(load_wake_model, config, store, notice)
    if asr or (wake and config.wake.verify.enabled):
        jobs["asr"] = asyncio.to_thread(load_asr, config, store, notice)
    if tts:
        jobs["tts"] = asyncio.to_thread(load_tts, config, store, notice)
    if wake:
        jobs["turn"] = asyncio.to_thread(load_turn_model, config, store, notice)
        jobs["turn_text"] = asyncio.to_thread(load_text_model, config, store, notice)
    results = await asyncio.gather(*jobs.values(), return_exceptions=True)
    loaded = dict(zip(jobs, results))
    problems: dict[str, str] = {}
    for kind, value in list(loaded.items()):
        if isinstance(value, BaseException):
            if not (degrade and isinstance(value, AssistantError)):
                raise value
            problems[kind] = value.message + (f" ({value.hint})" if value.hint else "")
            log.error("%s model unavailable, starting without it: %s", kind, problems[kind])
            loaded[kind] = None
    if "asr" in problems and loaded.get("wake") is not None:
        loaded["wake"] = None  # a wake word with nothing to transcribe what follows: typed requests only
        problems["wake"] = "voice input is off: speech recognition did not load"
    wake_model = loaded.get("wake")
    turn_model = loaded.get("turn")
    text_model = loaded.get("turn_text") if turn_model is not None else None
    push_to_talk = wake and wake_model is None and "wake" in problems and loaded.get("asr") is not None
    if push_to_talk:  # the microphone still works: a turn starts by push-to-talk instead of the wake word
        problems["wake"] += "; push-to-talk only (ctrl+t in the TUI, POST /listen on the service)"
    listener = build_listener(config, wake_model, turn_model, text_model) if wake_model is not None or push_to_talk else None
    recognizer = loaded.get("asr")
    verifier = None
    if wake_model is not None and recognizer is not None and config.wake.verify.enabled:
        verifier = WakeVerifier(recognizer, config.wake.verify, wake_model.names)
    return Speech(listener=listener, asr=recognizer if asr else None, tts=loaded.get("tts"), verifier=verifier, turn=turn_model, turn_text=text_model,
                  problems=problems)


@dataclass
class Controller:
    """The tools and the router built from the config."""

    registry: "ToolRegistry"
    router: "Router"
    fast_path: "FastPath | None"
    problems: dict[str, str] = field(default_factory=dict)
    """Tiers left out because they could not load (``degrade``)."""
    _rescorer: object = None
    _stop_warming: "threading.Event | None" = None

    @property
    def rescorer(self):
        """Second-pass recognition for transcripts no tier understood (see :mod:`.controller.rescore`)."""
        from .controller.rescore import TranscriptRescorer  # noqa: PLC0415

        if self._rescorer is None:
            self._rescorer = TranscriptRescorer(self.router, self.router.config.home.area)
        return self._rescorer

    async def close(self) -> None:
        loading = self.router.local_loading
        if loading is not None:
            if self._stop_warming is not None:
                self._stop_warming.set()  # a warm-up still running ends within one step
            with contextlib.suppress(BaseException):
                loaded = await loading
                if self.router.local is None:
                    self.router.local = loaded
        if self.router.local is not None:
            self.router.local.close()
        if self.router.remote is not None:
            await self.router.remote.close()
        await self.registry.close()


async def build_controller(
    config: Config,
    bus: "EventBus",
    *,
    confirm: "ConfirmHook | None" = None,
    llm: bool = True,
    remote: bool = True,
    notice: Notice | None = None,
    store: ModelStore | None = None,
    degrade: bool = False,
    background_llm: bool = False,
) -> Controller:
    """Load the tool plugins and build the router with the tiers the config enables.

    Args:
        degrade: A local LLM that cannot load is left out (templates and the tolerant tier answer;
            :attr:`Controller.problems` says why) instead of failing.
        background_llm: Return before the local LLM is loaded and its prompt prefix evaluated
            (~10 s for SmolLM2-135M on 2 cores): requests the templates or the tolerant tier answer
            do not wait; one that needs the LLM waits for it and says so (see
            :meth:`Router.respond`). A model that then fails to load is left out as with ``degrade``.

    Raises:
        ModelError, MissingDependencyError: The local LLM is enabled but cannot be loaded (unless ``degrade``).
    """
    from .controller.fastpath import FastPath  # noqa: PLC0415
    from .controller.router import Router  # noqa: PLC0415
    from .toolkit.registry import ToolRegistry  # noqa: PLC0415

    registry = await ToolRegistry.create(config, bus, confirm=confirm)
    for err in registry.errors:
        log.warning(err)
    fast = FastPath(registry, config.fastpath.language, config.home.area) if config.fastpath.enabled else None
    tolerant = None
    if config.fastpath.enabled and config.fastpath.tolerant:
        from .controller.tolerant import TolerantMatcher  # noqa: PLC0415

        tolerant = TolerantMatcher(registry, config.home.area)
    local = None
    problems: dict[str, str] = {}
    if llm and config.llm.enabled:
        from .controller.llm_engine import load_llm  # noqa: PLC0415
        from .controller.local_llm import LocalController  # noqa: PLC0415

        store = store or model_store(config)
        config = choose_models(config, store)
        llm_config = config.llm
        stop_warming = threading.Event()

        try:  # a model that is not installed is found now, before anything loads in the background
            llm_path: Path | None = _resolve(store, llm_config.model, "llm", notice)
        except AssistantError as exc:
            if not degrade:
                raise
            problems["llm"] = exc.message + (f" ({exc.hint})" if exc.hint else "")
            log.error("local LLM unavailable, starting without it: %s", problems["llm"])
            llm_path = None

        async def load_local() -> LocalController | None:
            if llm_path is None:
                return None
            try:
                engine = await asyncio.to_thread(load_llm, llm_path, llm_config)
            except AssistantError as exc:
                if not (degrade or background_llm):
                    raise
                problems["llm"] = exc.message + (f" ({exc.hint})" if exc.hint else "")
                log.error("local LLM unavailable, starting without it: %s", problems["llm"])
                return None
            controller = LocalController(engine, registry, bus, llm_config)
            if fast is not None:
                controller.vocabulary = fast.tool_vocabulary()
            await asyncio.to_thread(controller.warm, stop_warming)  # the stable prompt prefix, evaluated once
            return controller

        if not background_llm:
            local = await load_local()
    tier = None
    if remote and config.remote.endpoints:
        from .controller.remote import RemoteTier  # noqa: PLC0415

        tier = RemoteTier(config, registry, bus)
        registry.services["remote"] = tier  # tools that need a bigger model ask through it (policy applies)
    router = Router(config, registry, bus, fast_path=fast, tolerant=tolerant, local=local, remote=tier, confirm=confirm)
    controller = Controller(registry=registry, router=router, fast_path=fast, problems=problems)
    if background_llm and llm and config.llm.enabled and "llm" not in problems:
        router.local_loading = asyncio.create_task(load_local(), name="load-local-llm")
        controller._stop_warming = stop_warming
    return controller
