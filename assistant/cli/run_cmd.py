"""``assistant run``: the main job — wake word → request → tools → spoken reply, until stopped."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..app import choose_models, missing_models, missing_optional_models, model_store
from ..audio.devices import MicrophoneSource
from ..bus import EventBus, JsonlWriter
from ..config import Config
from ..errors import ModelError
from ..events import (
    ErrorEvent,
    Event,
    FinalTranscript,
    Reply,
    RouteDecided,
    ToolCallFinished,
    WakeDetected,
)
from ..session import Session, SessionOptions
from ..store import detect_tier
from . import warn

__all__ = ["register", "ensure_models"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the assistant: listen for the wake word and answer (microphone and speaker, or files)")
    p.add_argument("--input", "-i", metavar="FILE", help="a recording to use as the microphone (WAV/FLAC/MP3)")
    p.add_argument("--output", "-o", metavar="FILE", help="write the spoken replies to this WAV instead of the speaker")
    p.add_argument("--events", metavar="FILE", help="write every event as JSON lines")
    p.add_argument("--realtime", action="store_true", help="play the --input file at speech speed (barge-in and follow-ups as live)")
    p.add_argument("--no-pull", action="store_true", help="never download models (fail if one is missing)")
    p.add_argument("--quiet", "-q", action="store_true", help="do not print the conversation")
    p.add_argument("--input-device", metavar="NAME|INDEX")
    p.add_argument("--output-device", metavar="NAME|INDEX")
    p.set_defaults(func=run)


class ConversationPrinter:
    """Prints the conversation as it happens."""

    def __init__(self, out=sys.stdout) -> None:
        self.out = out

    def __call__(self, e: Event) -> None:
        p = lambda s: print(s, file=self.out, flush=True)  # noqa: E731
        if isinstance(e, WakeDetected):
            p(f"[{e.audio_time_s:7.2f}s] wake word ({e.model}, {e.score:.2f})")
        elif isinstance(e, FinalTranscript) and e.text:
            p(f"  you:    {e.text}")
        elif isinstance(e, RouteDecided):
            p(f"  route:  {e.route} ({e.reason})")
        elif isinstance(e, ToolCallFinished):
            p(f"  tool:   {e.tool} -> {'ok' if e.ok else e.error}")
        elif isinstance(e, Reply) and e.text:
            p(f"  jarvis: {e.text}")
        elif isinstance(e, ErrorEvent):
            p(f"  error:  {e.stage}: {e.message}")

    def turn_finished(self, turn: int | None, ok: bool, t: dict[str, float]) -> None:
        """Where a turn's time went (from the session's :class:`~assistant.engine.timing.TurnTimings`)."""
        keys = [k for k in ("endpoint", "asr", "fast_path", "tolerant", "llm_first_token", "llm", "remote", "tts_first_audio", "first_audio") if k in t]
        if keys:
            print("  ms:     " + " · ".join(f"{k} {t[k]:.0f}" for k in keys), file=self.out, flush=True)


def ensure_models(config: Config, *, pull: bool, degrade: bool = False) -> Config:
    """Choose "auto" models and fetch what is missing (first run), with progress bars.

    Args:
        pull: Download what is missing.
        degrade: A model that is still missing is only warned about (the session starts without it).

    Raises:
        ModelError: A model is missing and may not (or cannot) be downloaded (unless ``degrade``).
    """
    from .models_cmd import pull_with_progress  # noqa: PLC0415

    store = model_store(config)
    config = choose_models(config, store)
    missing = missing_models(config, store)
    optional = missing_optional_models(config, store)
    if optional and not pull:
        warn(f"not installed: {', '.join(optional)}; turns end after {config.endpoint.trailing_silence_ms} ms of silence "
             f"(`assistant models pull {' '.join(optional)}` for end-of-turn detection)")
    elif optional:
        try:
            pull_with_progress(store, optional)
        except ModelError as exc:
            warn(f"could not fetch {', '.join(optional)} ({exc.message}); turns end after {config.endpoint.trailing_silence_ms} ms of silence")
    if missing and degrade and not pull:
        warn(f"models not installed or failing verification: {', '.join(missing)}; starting without them "
             f"(`assistant models pull {' '.join(missing)}`)")
        return config
    if missing:
        if not pull:
            raise ModelError(
                f"models not installed: {', '.join(missing)}",
                hint=f"run `assistant models pull {' '.join(missing)}` (or drop --no-pull)",
            )
        warn(f"first run: fetching the models for this machine (tier {detect_tier()}) into {store.root}: {', '.join(missing)}")
        try:
            pull_with_progress(store, missing)
        except ModelError as exc:
            if degrade:
                warn(f"{exc.message}; starting without {', '.join(missing)}")
                return config
            raise ModelError(
                exc.message,
                hint=(exc.hint + "; " if exc.hint else "") + "or copy the files here and run `assistant models import PATH`",
            ) from None
    return config


async def run(args: argparse.Namespace, config: Config) -> int:
    from pathlib import Path  # noqa: PLC0415

    from . import config_of  # noqa: PLC0415

    config = config_of(args, config)
    config = await asyncio.to_thread(ensure_models, config, pull=not args.no_pull)
    bus = EventBus()
    printer = ConversationPrinter()
    if not args.quiet:
        bus.subscribe(printer)
    writer = JsonlWriter(args.events) if args.events else None
    if writer is not None:
        bus.subscribe(writer)
    options = SessionOptions(
        input_file=Path(args.input) if args.input else None, output_file=Path(args.output) if args.output else None,
        realtime=args.realtime, notice=warn,
    )
    session = Session(config, options, bus=bus)
    if not args.quiet:
        session.timings.on_finished(printer.turn_finished)
    try:
        await session.start()
        if not args.quiet:
            src = session.source
            where = f"'{src.device.name}'" if isinstance(src, MicrophoneSource) else str(args.input)
            phrase = " or ".join(f"'{p}'" for p in session.pipeline.wake_phrases)
            warn(f"ready in {session.load_s:.1f} s; listening for {phrase} on {where}" + (" (Ctrl-C to stop)" if args.input is None else ""))
        await session.run_voice()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or not task.cancelling():
            # not Ctrl-C nor shutdown (they cancel this task): a stage cancelled something from
            # inside and it escaped; stopping with status 0 would hide a lost turn
            raise RuntimeError("the voice loop stopped: a stage's cancellation escaped it (a bug: please report it with the log)") from None
    finally:
        await session.close()
        if writer is not None:
            writer.close()
    return 0
