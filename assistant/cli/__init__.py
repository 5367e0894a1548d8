"""The ``assistant`` command.

Subcommands live in sibling modules, one per group (speech, models, config, ...); each exposes
``register(subparsers)`` which adds its parsers and sets ``func`` to a coroutine or function
taking ``(args, config)``. Expected failures (:class:`~assistant.errors.AssistantError`) are
printed as two lines (what went wrong, what to do) with a non-zero exit code and no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
import sys
import tomllib
from typing import Any, Sequence

from ..config import Config, load_config
from ..errors import AssistantError, ConfigError

__all__ = ["main", "build_parser"]


def parse_key_value(text: str, option: str = "--set", example: str = "wake.threshold=0.6") -> tuple[str, Any]:
    """``KEY=VALUE`` with the value read as a TOML literal (``0.6``, ``"Desk Lamp"``, ``[1, 2]``), else a string.

    Raises:
        ConfigError: No ``=`` in ``text``.
    """
    if "=" not in text:
        raise ConfigError(f"{option} {text!r} is not KEY=VALUE", hint=f"e.g. {option} {example}")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare string
    return key.strip(), value


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(
        prog="assistant",
        description="Jarvis: an on-device voice assistant (wake word, local ASR, tools, local TTS).",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML config file (default: $ASSISTANT_CONFIG or the platform config dir)")
    parser.add_argument(
        "--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
        help="override a config value, e.g. --set wake.threshold=0.6 (repeatable)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        module = _optional(name)
        if module is not None:
            module.register(sub)
    return parser


_COMMAND_MODULES = ("run", "speech", "tools", "models", "doctor", "config", "tui", "service", "mcp")
"""Command groups, in the order ``assistant --help`` lists them (``assistant/cli/<name>_cmd.py``)."""


def _optional(name: str):
    import importlib  # noqa: PLC0415
    import importlib.util  # noqa: PLC0415

    module = f"{__name__}.{name}_cmd"
    if importlib.util.find_spec(module) is None:
        return None
    return importlib.import_module(module)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``assistant`` console script. Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        config = load_config(args.config)
        if args.overrides:
            config = config.with_overrides(dict(parse_key_value(o) for o in args.overrides))
        result = args.func(args, config)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except AssistantError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def warn(text: str) -> None:
    """Print a notice (licences, pins) to stderr."""
    print(text, file=sys.stderr)


def config_of(args: argparse.Namespace, config: Config) -> Config:
    """Apply common per-command options that map onto config keys."""
    overrides: dict[str, Any] = {}
    for attr, key in (
        ("wake_model", "wake.models"),
        ("threshold", "wake.threshold"),
        ("asr_model", "asr.model"),
        ("voice", "tts.voice"),
        ("input_device", "audio.input_device"),
        ("output_device", "audio.output_device"),
    ):
        value = getattr(args, attr, None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "verify", False):
        overrides["wake.verify.enabled"] = True
    return config.with_overrides(overrides) if overrides else config
