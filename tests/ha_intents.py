"""Home Assistant's English intent tests (``../shared/fixtures/ha-intents-tests-en``) as data.

Files named ``<domain>_<Intent>.yaml`` hold ``intent: {name, slots, context}`` per test block; files
under ``<Intent>/`` name the intent by their folder, put ``slots`` at the block's top level, may
list extra ``entities`` (name + domain) and say ``# context_area: true`` in their header when the
sentences assume the speaker's area ("in here").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CONTEXT_AREA = "Living Room"


@dataclass
class IntentCase:
    file: str
    sentence: str
    intent: str
    slots: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def load_cases(root: Path) -> tuple[list[IntentCase], list[dict[str, Any]]]:
    """All sentences with their expected intent and slots, and the extra entities folder files add."""
    cases: list[IntentCase] = []
    extra: list[dict[str, Any]] = []
    files = sorted(p for p in root.rglob("*.yaml") if p.name != "_fixtures.yaml")
    for path in files:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
        rel = str(path.relative_to(root))
        folder_intent = path.parent.name if path.parent != root else None
        context_area = bool(re.search(r"^#\s*context_area:\s*true", text, re.M))
        for ent in data.get("entities", []) or []:
            extra.append({"name": ent["name"], "id": f"{ent['domain']}.{_slug(ent['name'])}", "state": "off"})
        for block in data.get("tests", []) or []:
            intent = block.get("intent") or {"name": folder_intent, "slots": block.get("slots") or {}}
            context = dict(intent.get("context") or {})
            if context_area and "area" not in context:
                context["area"] = CONTEXT_AREA
            for sentence in block.get("sentences", []) or []:
                cases.append(IntentCase(rel, sentence, intent["name"], dict(intent.get("slots") or {}), context))
    return cases, extra


def fixture_home(root: Path, extra: list[dict[str, Any]], dest: Path) -> Path:
    """``_fixtures.yaml`` plus the folder files' extra entities, written as one home YAML."""
    data = yaml.safe_load((root / "_fixtures.yaml").read_text(encoding="utf-8"))
    known = {e["id"] for e in data["entities"]}
    data["entities"] += [e for e in extra if e["id"] not in known]
    dest.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return dest


def slots_match(actual: dict[str, Any], expected: dict[str, Any]) -> bool:
    """Home Assistant's rule: the same slot names, each value equal (or one of the listed values)."""
    if set(actual) != set(expected):
        return False
    for k, want in expected.items():
        got = actual[k]
        if isinstance(want, list) and isinstance(got, list):
            if not set(want) <= set(got):
                return False
        elif isinstance(want, list):
            if got not in want:
                return False
        elif isinstance(got, list):
            if want not in got:
                return False
        elif got != want and not (isinstance(got, float) and got == want):
            return False
    return True


def _norm(v: Any) -> Any:
    if isinstance(v, str):
        return v.strip().casefold()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, list):
        return sorted(_norm(x) for x in v)
    return v


def route_check(match, case: IntentCase) -> str:
    """Why a fast-path match does not route ``case`` right ("" when it does).

    Right means: the expected tool is called with the arguments the expected intent and slots map
    to; for Home Assistant intents also the intent name and the slots (Home Assistant's rule; a
    slot filled from the context, such as the speaker's area, is accepted). A request that names
    no place goes to the tools without one: they prefer the speaker's area themselves.
    """
    from assistant.controller.fastpath import INTENT_TOOLS

    if match is None:
        return "no template matched"
    mapped = INTENT_TOOLS[case.intent](case.slots)
    want_tool, want_args = mapped if mapped else (None, {})
    if not match.intent.startswith("tool:"):
        if match.intent != case.intent:
            return f"matched intent {match.intent} {match.slots}"
        actual = {k: v for k, v in match.slots.items() if not (k not in case.slots and case.context.get(k) == v)}
        if not slots_match(actual, case.slots):
            return f"slots {match.slots}"
    if match.tool != want_tool:
        return f"tool {match.tool}, expected {want_tool}"
    here = case.context.get("area")
    # the speaker's own area is a preference the tools apply whether or not it is passed
    got = {k: _norm(v) for k, v in match.arguments.items() if v is not None and not (k == "area" and v == here)}
    want = {k: _norm(v) for k, v in want_args.items() if v is not None and not (k == "area" and v == here)}
    if set(got) != set(want) or not all(_arg_ok(got[k], want[k]) for k in want):
        return f"arguments {match.arguments}, expected {want_args}"
    return ""


def _arg_ok(got: Any, want: Any) -> bool:
    """Equal, or (a slot that lists acceptable values) one of them."""
    if got == want:
        return True
    if isinstance(want, list) and not isinstance(got, list):
        return got in [w.strip() if isinstance(w, str) else w for w in want]
    if isinstance(want, list) and isinstance(got, list):
        return set(want) <= set(got)
    return False
