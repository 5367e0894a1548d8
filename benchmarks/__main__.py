"""Run the benchmark suite: ``python -m benchmarks [--quick] [--out DIR] [--only SECTION ...]``.

``scripts/bench`` sets up the environment and the model store first; use it from a fresh clone.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import sys
import tempfile
import time
from pathlib import Path

from .report import plot, table
from .suite import MODELS, ROOT, SECTIONS, Context, machine

QUICK_SECTION_LIMIT_S = 900.0
"""The smoke run's sections take 1–180 s each on a 2-core machine; one still running after 15
minutes has hung (CI would otherwise sit until its own 90-minute limit, with nothing to show)."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few iterations of everything (the CI smoke run)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="where results.json and the plots go")
    ap.add_argument("--models-dir", type=Path, default=ROOT / ".cache" / "bench-store", help="model store with the fixture models")
    ap.add_argument("--only", nargs="*", choices=sorted(SECTIONS), help="run only these sections")
    ap.add_argument("--section-limit", type=float, default=None, metavar="S",
                    help="a section still running after S seconds is a hang: print every thread's stack and exit with status 1 "
                         f"(default: {QUICK_SECTION_LIMIT_S:.0f} s with --quick, none otherwise)")
    args = ap.parse_args(argv)
    limit = args.section_limit if args.section_limit is not None else (QUICK_SECTION_LIMIT_S if args.quick else 0)

    sys.path.insert(0, str(ROOT))
    from assistant.app import build_controller, load_speech
    from assistant.bus import EventBus
    from assistant.config import Config

    args.out.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="bench-data-"))
    config = Config().with_overrides({
        "paths.models_dir": str(args.models_dir), "paths.data_dir": str(data),
        "asr.threads": 2, "tts.threads": 2, "tools.confirm_risks": [], **MODELS,
    })
    t0 = time.perf_counter()
    bus = EventBus()

    async def load():
        return await asyncio.gather(load_speech(config), build_controller(config, bus))

    speech, controller = asyncio.run(load())
    ctx = Context(config=config, quick=args.quick, out=args.out, speech=speech, controller=controller, bus=bus)
    ctx.results["machine"] = machine()
    ctx.results["models"] = MODELS | {"wake": config.wake.models}
    ctx.results["load_s"] = round(time.perf_counter() - t0, 2)
    for name, fn in SECTIONS.items():
        if args.only and name not in args.only:
            continue
        t = time.perf_counter()
        print(f"[{name}] ...", file=sys.stderr, flush=True)
        if limit:
            faulthandler.dump_traceback_later(limit, exit=True)
        try:
            fn(ctx)
        finally:
            faulthandler.cancel_dump_traceback_later()
        ctx.results.setdefault("section_s", {})[name] = round(time.perf_counter() - t, 1)
    asyncio.run(controller.close())
    ctx.results["quick"] = args.quick
    ctx.results["total_s"] = round(time.perf_counter() - t0, 1)
    (args.out / "results.json").write_text(json.dumps(ctx.results, indent=2))
    print(table(ctx.results))
    for p in plot(ctx.results, args.out):
        print(f"plot: {p}", file=sys.stderr)
    print(f"results: {args.out / 'results.json'} ({ctx.results['total_s']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
