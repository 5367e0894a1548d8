"""``assistant tui``: the desktop terminal app."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import Config, default_config_path
from ..errors import require
from ..session import SessionOptions

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tui", help="the desktop terminal app: conversation, tool calls, latency, home, settings")
    p.add_argument("--input", "-i", metavar="FILE", help="a recording to use as the microphone (played at speech speed)")
    p.add_argument("--output", "-o", metavar="FILE", help="write the spoken replies to this WAV instead of the speaker")
    p.add_argument("--no-voice", action="store_true", help="typed requests only (no microphone, no wake word)")
    p.add_argument("--no-speech", action="store_true", help="do not speak replies")
    p.add_argument("--no-pull", action="store_true", help="never download models")
    p.add_argument("--connect", metavar="URL", help="attach to a running `assistant serve` (e.g. http://127.0.0.1:8765) instead of "
                   "starting an assistant; the token comes from $ASSISTANT_API_TOKEN or the service's <data dir>/api-token")
    p.set_defaults(func=tui)


def tui(args: argparse.Namespace, config: Config) -> int:
    require("textual", "tui", "the TUI")
    from tui.app import JarvisApp  # noqa: PLC0415

    from .run_cmd import ensure_models  # noqa: PLC0415

    if args.connect:
        from ..service.client import RemoteSession  # noqa: PLC0415

        app = JarvisApp(config, config_path=None, session=RemoteSession(args.connect, config))
        app.run()
        if app.start_error:
            print(f"error: {app.start_error}")
            return 2
        return 0
    if config.asr.partial_interval_ms == 0:
        config = config.with_overrides({"asr.partial_interval_ms": 800})  # live partial transcripts
    config = ensure_models(config, pull=not args.no_pull, degrade=True)
    options = SessionOptions(
        input_file=Path(args.input) if args.input else None, output_file=Path(args.output) if args.output else None,
        realtime=True, voice=not args.no_voice, speak=not args.no_speech,
        degrade=True, tolerate_missing_devices=True,  # no speaker, a broken model: the TUI shows text and says what is missing
    )
    app = JarvisApp(config, options, config_path=Path(args.config) if args.config else default_config_path())
    app.run()
    if app.start_error:
        print(f"error: {app.start_error}")
        return 2
    return 0
