"""The natural-requests evaluation: setup → request → exactly the expected changes, per tier.

Reads ``tests/data/nlu/{dev,heldout}/*.yaml`` (see the README there): each home is loaded into
the simulated backend, each case starts from the home's own states plus its ``setup``, the
request goes through the router (the same :class:`~assistant.controller.router.Router` every
front end uses), and the home's states afterwards are compared with the expectation. A case
passes when exactly the expected changes happened (nothing else changed); a *false action* is a
change nobody asked for — worse than no change, and reported apart. Risky actions are confirmed
with "yes"; a question back ("which one?") is answered with the case's ``then``.

Used by ``tests/test_understanding.py`` (the held-aside split, typed) and by the benchmark
section ``nlu`` (both splits, by tier, by domain, timings; ``--voiced`` adds speech).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
HOMES = DATA / "homes"
SETS = DATA / "nlu"


def fixtures_dir() -> Path:
    import os

    return Path(os.environ.get("ASSISTANT_FIXTURES", ROOT.parent / "shared" / "fixtures"))


@dataclass
class Case:
    id: str
    say: str
    home: str
    area: str
    split: str
    setup: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, Any] | None = None
    answer: list[str] | None = None
    ask: bool = False
    then: str | None = None
    refuse: bool = False

    @property
    def kind(self) -> str:
        if self.answer is not None:
            return "question"
        if self.ask:
            return "which_one"
        if self.refuse:
            return "refuse"
        return "action"

    @property
    def domains(self) -> list[str]:
        """The domains the case is about (for the per-domain table)."""
        return sorted({eid.split(".", 1)[0] for eid in (self.expect or {})}) or [self.kind]


@dataclass
class Outcome:
    case: Case
    ok: bool
    false_action: bool
    route: str
    reply: str
    why: str
    ms: float
    changed: dict[str, str] = field(default_factory=dict)


def home_path(ref: str) -> Path:
    if ref.startswith("@fixtures/"):
        return fixtures_dir() / ref.removeprefix("@fixtures/")
    return HOMES / ref


def load_cases(splits: tuple[str, ...] = ("dev", "heldout")) -> list[Case]:
    """Every case of the given splits, in file order."""
    out: list[Case] = []
    for split in splits:
        for path in sorted((SETS / split).glob("*.yaml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            for c in data["cases"]:
                out.append(Case(
                    id=c["id"], say=str(c["say"]), home=data["home"], area=data.get("area") or "", split=split,
                    setup=c.get("setup") or {}, expect=c.get("expect"), answer=[str(a) for a in c["answer"]] if "answer" in c else None,
                    ask=bool(c.get("ask")), then=c.get("then"), refuse=bool(c.get("refuse")),
                ))
    return out


# ---------------------------------------------------------------------------- comparing states


def _pct(v: Any, scale: float) -> float | None:
    return None if v is None else float(v) * scale


def _check(eid: str, spec: Any, before: Any, after: Any, calls: list[tuple[str, str, dict]]) -> str:
    """Why ``after`` does not meet ``spec`` ("" when it does)."""
    from tools.home.colors import rgb_for

    if not isinstance(spec, dict):
        spec = {"state": spec}
    if after is None:
        return f"{eid} missing"
    a = after.attributes
    for key, want in spec.items():
        if key == "state":
            got = after.state
            try:
                same = float(got) == float(want)
            except (TypeError, ValueError):
                same = str(got) == str(want)
            if not same:
                return f"{eid} state {got!r}, expected {want!r}"
        elif key == "brightness_pct":
            got = _pct(a.get("brightness"), 100 / 255)
            if got is None or abs(got - float(want)) > 1.01:
                return f"{eid} brightness {got}, expected {want}%"
        elif key == "percentage":
            got = a.get("percentage")
            if got is None or abs(float(got) - float(want)) > 1.01:
                return f"{eid} percentage {got}, expected {want}"
        elif key == "volume_pct":
            got = _pct(a.get("volume_level"), 100)
            if got is None or abs(got - float(want)) > 1.01:
                return f"{eid} volume {got}, expected {want}%"
        elif key == "muted":
            if bool(a.get("is_volume_muted")) != bool(want):
                return f"{eid} muted {a.get('is_volume_muted')}, expected {want}"
        elif key == "color":
            if a.get("rgb_color") != rgb_for(str(want)):
                return f"{eid} colour {a.get('rgb_color')}, expected {want}"
        elif key in ("color_temp_kelvin", "current_position", "temperature"):
            got = a.get(key)
            if got is None or abs(float(got) - float(want)) > 0.01:
                return f"{eid} {key} {got}, expected {want}"
        elif key in ("oscillating", "direction", "source"):
            if a.get(key) != want:
                return f"{eid} {key} {a.get(key)!r}, expected {want!r}"
        elif key == "activated":
            if after.state == before.state:
                return f"{eid} was not activated"
        elif key == "called":
            if not any(c[0] == eid and c[1] == want for c in calls):
                return f"{eid}: {want} was not called"
        elif key in ("items_add", "items_done", "items_removed"):
            items = {str(i.get("summary", "")).casefold(): i.get("status") for i in a.get("items") or []}
            for item in want:
                status = items.get(str(item).casefold())
                if key == "items_add" and status != "needs_action":
                    return f"{eid}: {item!r} not added (items: {list(items)})"
                if key == "items_done" and status != "completed":
                    return f"{eid}: {item!r} not completed (items: {items})"
                if key == "items_removed" and status == "needs_action":
                    return f"{eid}: {item!r} still on the list"  # removed, or checked off (Home Assistant's "remove")
        else:
            raise ValueError(f"unknown expectation key {key!r} for {eid}")
    return ""


def _attrs(e: Any) -> dict[str, Any]:
    return {k: v for k, v in e.attributes.items() if v is not None}


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, str]:
    """Entities whose state or attributes changed (an attribute gone and one reported as none are the same)."""
    out = {}
    for eid, e in after.items():
        b = before.get(eid)
        if b is None or b.state != e.state or _attrs(b) != _attrs(e):
            out[eid] = f"{b.state if b else None} → {e.state}"
    return out


# ---------------------------------------------------------------------------- running


Respond = Callable[[str, int], Awaitable[str]]


class HomeRunner:
    """One home loaded into the simulated backend behind a router (LLM on or off)."""

    def __init__(self, home_ref: str, area: str, *, llm: bool = False, config_overrides: dict[str, Any] | None = None, confirm=None) -> None:
        self.home_ref, self.area, self.llm = home_ref, area, llm
        self.overrides = config_overrides or {}
        self.controller = None
        self.bus = None
        self.confirm = confirm

    async def start(self) -> None:
        from assistant.app import build_controller
        from assistant.bus import EventBus
        from assistant.config import Config

        self._tmp = tempfile.mkdtemp(prefix="nlu-eval-")
        config = Config().with_overrides({
            "paths.data_dir": self._tmp, "home.simulated_home": str(home_path(self.home_ref)), "home.area": self.area,
            "llm.enabled": self.llm, **self.overrides,
        })
        self.bus = EventBus()
        self.events = self.bus.record()

        async def yes(_request) -> bool:
            return True

        self.controller = await build_controller(config, self.bus, confirm=self.confirm or yes, llm=self.llm, remote=False)
        if self.controller.registry.errors:
            raise RuntimeError(f"plugins failed: {self.controller.registry.errors}")
        self.home = self.controller.registry.service("home")
        self.home.state_file = None
        self.initial = list(self.home.snapshot().entities)
        self.turn = 0

    async def close(self) -> None:
        if self.controller is not None:
            await self.controller.close()

    def reset(self, setup: dict[str, Any]) -> None:
        self.home.snapshot().entities = list(self.initial)
        self.home._memory.clear()
        self.home.calls.clear()
        if setup:
            self.home.set_states(setup)
        self.controller.router.conversation.clear()
        self.controller.router.forget_question()

    async def say(self, text: str) -> tuple[str, str]:
        """The reply and the route of one request."""
        from assistant.events import RouteDecided

        self.turn += 1
        start = len(self.events)
        parts = [p async for p in self.controller.router.respond(text, turn=self.turn)]
        routes = [e.route for e in self.events[start:] if isinstance(e, RouteDecided)]
        return "".join(parts).strip(), (routes[-1] if routes else "none")

    def states(self) -> dict[str, Any]:
        return {e.id: e for e in self.home.snapshot().entities}

    async def run(self, case: Case) -> Outcome:
        self.reset(case.setup)
        before = self.states()
        t0 = time.perf_counter()
        reply, route = await self.say(case.say)
        ms = (time.perf_counter() - t0) * 1000
        why = ""
        if case.ask:
            asked = _diff(before, self.states())
            if asked:
                return Outcome(case, False, True, route, reply, f"changed before asking: {asked}", ms, asked)
            if not reply.rstrip().endswith("?"):
                why = f"did not ask which one (said {reply!r})"
            else:
                reply2, route2 = await self.say(str(case.then))
                reply = f"{reply} / {reply2}"
        after = self.states()
        changed = _diff(before, after)
        expect = case.expect or {}
        if not why:
            for eid, spec in expect.items():
                why = _check(eid, spec, before.get(eid), after.get(eid), self.home.calls)
                if why:
                    break
        extra = {k: v for k, v in changed.items() if k not in expect}
        false_action = bool(extra) or bool(why and any(k in changed for k in expect))
        if extra and not why:
            why = f"also changed {extra}"
        if case.answer is not None and not why:
            low = reply.casefold()
            missing = [w for w in case.answer if w.casefold() not in low]
            if missing:
                why = f"answer lacks {missing}"
        return Outcome(case, ok=not why, false_action=false_action, route=route, reply=reply, why=why, ms=ms, changed=changed)


async def evaluate(cases: list[Case], *, llm: bool = False, config_overrides: dict[str, Any] | None = None,
                   progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run cases home by home (one router per home) and return their outcomes."""
    out: list[Outcome] = []
    by_home: dict[tuple[str, str], list[Case]] = {}
    for c in cases:
        by_home.setdefault((c.home, c.area), []).append(c)
    for (home, area), group in by_home.items():
        if home.startswith("@fixtures/") and not home_path(home).exists():
            continue
        runner = HomeRunner(home, area, llm=llm, config_overrides=config_overrides)
        await runner.start()
        try:
            for c in group:
                o = await runner.run(c)
                out.append(o)
                if progress:
                    progress(o)
        finally:
            await runner.close()
    return out


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    """Accuracy, false actions, by tier, by kind, by domain, and time per request."""
    n = len(outcomes)
    ok = sum(o.ok for o in outcomes)
    times = sorted(o.ms for o in outcomes)

    def group(key: Callable[[Outcome], list[str]]) -> dict[str, dict[str, Any]]:
        g: dict[str, list[Outcome]] = {}
        for o in outcomes:
            for k in key(o):
                g.setdefault(k, []).append(o)
        return {k: {"n": len(v), "ok": sum(x.ok for x in v), "accuracy": round(sum(x.ok for x in v) / len(v), 3)} for k, v in sorted(g.items())}

    return {
        "n": n,
        "ok": ok,
        "accuracy": round(ok / n, 3) if n else 0.0,
        "false_actions": sum(o.false_action for o in outcomes),
        "false_action_rate": round(sum(o.false_action for o in outcomes) / n, 3) if n else 0.0,
        "ms": {"p50": round(statistics.median(times), 2), "p95": round(times[min(n - 1, int(round(0.95 * n + 0.5)) - 1)], 2), "max": round(times[-1], 2)} if n else {},
        "by_route": group(lambda o: [o.route]),
        "by_kind": group(lambda o: [o.case.kind]),
        "by_domain": group(lambda o: o.case.domains),
        "failures": [{"id": o.case.id, "say": o.case.say, "route": o.route, "why": o.why, "reply": o.reply} for o in outcomes if not o.ok],
    }


def main() -> None:  # pragma: no cover - a developer's loop: python -m benchmarks.nlu [dev|heldout] [--llm]
    import json
    import sys

    split = "heldout" if "heldout" in sys.argv else "dev"
    llm = "--llm" in sys.argv
    only = [a for a in sys.argv[1:] if not a.startswith("-") and a not in ("dev", "heldout")]
    cases = [c for c in load_cases((split,)) if not only or any(c.id.startswith(p) for p in only)]
    outcomes = asyncio.run(evaluate(cases, llm=llm))
    s = summarize(outcomes)
    for f in s["failures"]:
        print(f"FAIL {f['id']:<22} [{f['route']}] {f['say']!r}: {f['why']} | {f['reply']!r}")
    print(json.dumps({k: v for k, v in s.items() if k != "failures"}, indent=1))


if __name__ == "__main__":
    main()
