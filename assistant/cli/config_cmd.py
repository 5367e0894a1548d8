"""``assistant config show | init | check | path``."""

from __future__ import annotations

import argparse
from pathlib import Path

import tomli_w

from ..config import Config, default_config_path, save_config
from ..errors import ConfigError

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show, check or create the config file")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    q = csub.add_parser("show", help="print the effective configuration (every key)")
    q.set_defaults(func=show)
    q = csub.add_parser("check", help="validate the config file")
    q.set_defaults(func=check)
    q = csub.add_parser("path", help="print where the config file is looked for")
    q.set_defaults(func=path)
    q = csub.add_parser("init", help="write a config file with the current values")
    q.add_argument("file", nargs="?", help="where (default: the platform config dir)")
    q.add_argument("--force", action="store_true", help="overwrite an existing file")
    q.set_defaults(func=init)


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def show(args: argparse.Namespace, config: Config) -> int:
    print(tomli_w.dumps(_drop_none(config.model_dump(mode="json"))))
    return 0


def check(args: argparse.Namespace, config: Config) -> int:
    print("config OK" + (f": {args.config}" if args.config else ""))
    return 0


def path(args: argparse.Namespace, config: Config) -> int:
    print(args.config or default_config_path())
    return 0


def init(args: argparse.Namespace, config: Config) -> int:
    target = Path(args.file) if args.file else default_config_path()
    if target.exists() and not args.force:
        raise ConfigError(f"{target} already exists", hint="use --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    header = "# Jarvis assistant configuration. `assistant config show` prints every key with its value.\n"
    save_config(config, target)
    target.write_text(header + target.read_text(encoding="utf-8"), encoding="utf-8")
    print(f"wrote {target}")
    return 0
