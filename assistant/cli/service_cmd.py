"""``assistant serve`` (the headless service) and ``assistant service unit | install``."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path

from ..config import Config, default_config_path
from ..errors import AssistantError, require
from ..session import SessionOptions
from . import warn

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run as a service: microphone and speaker, control API, metrics, Wyoming")
    p.add_argument("--input", "-i", metavar="FILE", help="a recording as the microphone (played at speech speed)")
    p.add_argument("--output", "-o", metavar="FILE", help="replies to this WAV (played at speech speed) instead of the speaker")
    p.add_argument("--host", help="API address (default service.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="API port (default service.port, 8765)")
    p.add_argument("--wyoming", action="store_true", help="also serve the Wyoming protocol (service.wyoming_port)")
    p.add_argument("--wyoming-port", type=int, help="Wyoming port (default 10700)")
    p.add_argument("--mcp", action="store_true", help="also serve MCP over Streamable HTTP (mcp.serve_port, the API's token)")
    p.add_argument("--mcp-port", type=int, help="MCP port (default mcp.serve_port, 8766)")
    p.add_argument("--no-pull", action="store_true", help="never download models")
    p.set_defaults(func=serve)

    p = sub.add_parser("service", help="install the service (systemd)")
    ssub = p.add_subparsers(dest="service_command", metavar="ACTION", required=True)
    for name, helptext in (("unit", "print the systemd unit"), ("install", "write the systemd unit and enable it")):
        q = ssub.add_parser(name, help=helptext)
        q.add_argument("--user", default="jarvis", help="unprivileged account to run as (default: jarvis)")
        q.add_argument("--data-dir", type=Path, default=Path("/var/lib/jarvis-assistant"), help="its state directory")
        q.add_argument("--path", type=Path, default=Path("/etc/systemd/system/jarvis-assistant.service"), help="where to write the unit")
        q.add_argument("--no-enable", action="store_true", help="write the unit only")
        q.set_defaults(func=service_unit if name == "unit" else service_install)


def serve(args: argparse.Namespace, config: Config) -> int:
    require("aiohttp", "service", "the service's control API")
    from ..service.daemon import Service, setup_json_logging  # noqa: PLC0415
    from .run_cmd import ensure_models  # noqa: PLC0415

    overrides = {}
    if args.host:
        overrides["service.host"] = args.host
    if args.port is not None:
        overrides["service.port"] = args.port
    if args.wyoming_port is not None:
        overrides["service.wyoming_port"] = args.wyoming_port
    if args.mcp_port is not None:
        overrides["mcp.serve_port"] = args.mcp_port
    if overrides:
        config = config.with_overrides(overrides)
    if args.mcp:
        require("mcp", "mcp", "the MCP server")
    setup_json_logging()
    config = ensure_models(config, pull=not args.no_pull, degrade=True)
    options = SessionOptions(
        input_file=Path(args.input) if args.input else None, output_file=Path(args.output) if args.output else None,
        realtime=True, notice=lambda text: warn(text), tolerate_missing_devices=True, degrade=True,
    )
    config_path = Path(args.config) if args.config else (default_config_path() if default_config_path().exists() else None)
    service = Service(config, config_path, options, wyoming=args.wyoming or config.service.wyoming_enabled, mcp=args.mcp)
    return asyncio.run(service.run())


def _unit(args: argparse.Namespace, config: Config) -> str:
    from ..service.systemd import unit_text  # noqa: PLC0415

    cfg = Path(args.config) if getattr(args, "config", None) else default_config_path()
    return unit_text(user=args.user, data_dir=args.data_dir, config=cfg if cfg.exists() else None)


def service_unit(args: argparse.Namespace, config: Config) -> int:
    print(_unit(args, config), end="")
    return 0


def service_install(args: argparse.Namespace, config: Config) -> int:
    text = _unit(args, config)
    try:
        args.path.parent.mkdir(parents=True, exist_ok=True)
        args.path.write_text(text)
    except OSError as exc:
        raise AssistantError(f"cannot write {args.path}: {exc}", hint="run with sudo, or give --path") from None
    print(f"wrote {args.path}")
    print(f"next: sudo useradd --system --home {args.data_dir} --groups audio {args.user}; "
          f"sudo install -d -o {args.user} {args.data_dir}")
    if not args.no_enable and args.path.parent == Path("/etc/systemd/system") and os.geteuid() == 0:
        for cmd in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", args.path.name]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"warning: {' '.join(cmd)} failed: {r.stderr.strip()}", file=sys.stderr)
    return 0
