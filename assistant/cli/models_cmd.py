"""``assistant models list | pull | verify | remove | path | import``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..app import model_store
from ..config import Config
from ..store import ModelStore, detect_tier
from . import warn

__all__ = ["register", "pull_with_progress"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="the model store: list, pull, verify, remove, import")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    q = msub.add_parser("list", help="catalog models and what is installed")
    q.add_argument("--kind", choices=["wake", "wake_features", "asr", "tts", "llm"])
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=list_models)

    q = msub.add_parser("pull", help="download models (default: the recommended set for this machine)")
    q.add_argument("names", nargs="*", metavar="NAME")
    q.add_argument("--tier", choices=["pi4", "pi5", "laptop", "desktop"], help="pull this tier's default set")
    q.set_defaults(func=pull)

    q = msub.add_parser("verify", help="re-hash installed models against their SHA-256")
    q.add_argument("names", nargs="*", metavar="NAME")
    q.set_defaults(func=verify)

    q = msub.add_parser("remove", help="delete a model from the store")
    q.add_argument("name")
    q.set_defaults(func=remove)

    q = msub.add_parser("path", help="print the store folder, or a model's path")
    q.add_argument("name", nargs="?")
    q.set_defaults(func=path)

    q = msub.add_parser("import", help="adopt model files you already have (checked against the catalog)")
    q.add_argument("paths", nargs="+", metavar="PATH")
    q.add_argument("--name", help="name for files the catalog does not know")
    q.add_argument("--kind", choices=["wake", "wake_features", "asr", "tts", "llm"])
    q.set_defaults(func=import_models)


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def list_models(args: argparse.Namespace, config: Config) -> int:
    store = model_store(config)
    tier = detect_tier()
    defaults = set(store.catalog.defaults.get(tier, ()))
    rows = []
    for e in store.catalog.entries.values():
        if args.kind and e.kind != args.kind:
            continue
        st = store.status(e.name) if store.model_dir(e.name).exists() else None
        state = "verified" if st and st.verified else ("BROKEN" if st and st.installed else ("partial" if st else "-"))
        rows.append({"name": e.name, "kind": e.kind, "size": e.size, "state": state, "license": e.license,
                     "restrictive": e.restrictive, "default": e.name in defaults, "tiers": list(e.tiers)})
    for name in store.installed_names():
        if name not in store.catalog.entries:
            entry = store.entry(name)
            if args.kind and entry.kind != args.kind:
                continue
            st = store.status(name)
            rows.append({"name": name, "kind": entry.kind, "size": st.bytes_on_disk, "state": "verified" if st.verified else "BROKEN",
                         "license": entry.license, "restrictive": False, "default": False, "tiers": []})
    if args.json:
        print(json.dumps({"store": str(store.root), "tier": tier, "models": rows}, indent=2))
        return 0
    print(f"store: {store.root}   this machine's tier: {tier} (* = in its default set)")
    for r in rows:
        star = "*" if r["default"] else " "
        lic = r["license"] + (" [restrictive]" if r["restrictive"] else "")
        print(f"{star} {r['name']:28s} {r['kind']:13s} {_human(r['size']):>9s}  {r['state']:9s} {lic}")
    return 0


def pull_with_progress(store: ModelStore, names: list[str]) -> None:
    """Pull models with a progress bar on stderr; shows licences and pinned hashes.

    Raises:
        ModelError: See :meth:`ModelStore.pull`.
    """
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn  # noqa: PLC0415

    console = Console(stderr=True)
    for name in names:
        entry = store.catalog.get(name)
        if entry.restrictive:
            console.print(f"[yellow]licence:[/] {name} is licensed {entry.license}")
    with Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
        console=console, transient=False,
    ) as progress:
        tasks: dict[str, int] = {}

        def on_progress(label: str, done: int, total: int | None) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=total)
            progress.update(tasks[label], completed=done, total=total)

        def on_pin(label: str, digest: str) -> None:
            console.print(f"[cyan]pinned:[/] {label} had no published SHA-256; pinned {digest} from this first download")

        for name in names:
            st = store.status(name) if store.model_dir(name).exists() else None
            if st and st.verified:
                console.print(f"{name}: already installed and verified")
                continue
            store.pull(name, progress=on_progress, on_pin=on_pin)
            console.print(f"{name}: installed and verified")


def pull(args: argparse.Namespace, config: Config) -> int:
    store = model_store(config)
    names = list(args.names)
    if not names:
        tier = args.tier or detect_tier()
        names = list(store.catalog.defaults[tier])
        warn(f"pulling the default models for tier '{tier}': {', '.join(names)}")
    for n in names:
        store.catalog.get(n)  # unknown names fail before any download
    pull_with_progress(store, names)
    return 0


def verify(args: argparse.Namespace, config: Config) -> int:
    store = model_store(config)
    names = args.names or store.installed_names()
    if not names:
        warn(f"no models installed in {store.root}; `assistant models pull` fetches the defaults")
        return 0
    bad = 0
    for n in names:
        st = store.status(n, rehash=True)
        if st.verified:
            print(f"ok      {n}")
        else:
            bad += 1
            print(f"FAILED  {n}: {'; '.join(st.problems + [f'missing {m}' for m in st.missing])}")
    if bad:
        print(f"{bad} model(s) failed verification and will not be loaded; `assistant models pull NAME` fetches them again", file=sys.stderr)
        return 4
    return 0


def remove(args: argparse.Namespace, config: Config) -> int:
    freed = model_store(config).remove(args.name)
    print(f"removed {args.name} ({_human(freed)} freed)")
    return 0


def path(args: argparse.Namespace, config: Config) -> int:
    store = model_store(config)
    if not args.name:
        print(store.root)
        return 0
    entry = store.entry(args.name)
    p = store.model_dir(args.name) / entry.main if entry.main != "." else store.model_dir(args.name)
    print(p)
    return 0 if p.exists() else 4


def import_models(args: argparse.Namespace, config: Config) -> int:
    store = model_store(config)
    names: set[str] = set()
    refused: list[str] = []
    for p in args.paths:
        names.update(store.import_path(Path(p), name=args.name, kind=args.kind))
        refused += store.refused
    for r in refused:
        warn(f"refused: {r}")
    for n in sorted(names):
        st = store.status(n)
        state = "verified" if st.verified else ("incomplete: missing " + ", ".join(st.missing) if not st.installed else "FAILED")
        print(f"imported {n}: {state}")
    return 0
