"""Home Assistant's English intent tests as a test of the fast path.

The fixture home (``_fixtures.yaml`` plus the entities the folder-style test files add) is loaded
into the simulated home; every sentence of an intent the built-in tools serve must route to the
right tool with the right slots, or be listed in ``data/fastpath_known_misses.yaml`` with the
reason. Accuracy and match times are printed (run with ``-s`` to see them), not asserted.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import pytest
import yaml

from assistant.config import Config
from assistant.controller.fastpath import INTENT_TOOLS, UNSERVED_INTENTS, FastPath
from assistant.toolkit import ToolRegistry

from .conftest import FIXTURES
from .ha_intents import fixture_home, load_cases, route_check

INTENT_TESTS = FIXTURES / "ha-intents-tests-en"
KNOWN_MISSES = yaml.safe_load((Path(__file__).parent / "data" / "fastpath_known_misses.yaml").read_text())


@pytest.fixture(scope="module")
def fast_path_and_cases(tmp_path_factory):
    if not INTENT_TESTS.is_dir():
        pytest.skip(f"Home Assistant intent tests not found at {INTENT_TESTS}")
    cases, extra = load_cases(INTENT_TESTS)
    tmp = tmp_path_factory.mktemp("ha")
    home = fixture_home(INTENT_TESTS, extra, tmp / "home.yaml")
    cfg = Config().with_overrides({"paths.data_dir": str(tmp / "data"), "home.simulated_home": str(home)})
    loop = asyncio.new_event_loop()
    registry = loop.run_until_complete(ToolRegistry.create(cfg))
    assert not registry.errors, registry.errors
    yield FastPath(registry), cases
    loop.run_until_complete(registry.close())
    loop.close()


def test_every_served_sentence_routes_right_or_is_a_known_miss(fast_path_and_cases):
    fast_path, cases = fast_path_and_cases
    assert len(cases) == 1089
    misses: dict[str, str] = {}
    times: list[float] = []
    served = 0
    for case in cases:
        if case.intent in UNSERVED_INTENTS:
            continue
        assert case.intent in INTENT_TOOLS, f"intent {case.intent} is neither served nor listed as unserved"
        served += 1
        t0 = time.perf_counter()
        match = fast_path.match(case.sentence, context=case.context)
        times.append((time.perf_counter() - t0) * 1000)
        why = route_check(match, case)
        if why:
            misses[case.sentence] = f"{case.file}: expected {case.intent} {case.slots}; {why}"
    unexpected = {s: w for s, w in misses.items() if s not in KNOWN_MISSES}
    fixed = [s for s in KNOWN_MISSES if s not in misses]
    times.sort()
    print(
        f"\nfast path on Home Assistant's intent tests: {served - len(misses)}/{served} served sentences routed right "
        f"({(served - len(misses)) / served:.1%}); {len(cases) - served} sentences of unserved intents "
        f"({', '.join(sorted(UNSERVED_INTENTS))}); match time median {statistics.median(times):.2f} ms, "
        f"p95 {times[int(0.95 * len(times))]:.2f} ms"
    )
    assert not unexpected, "new misses:\n" + "\n".join(f"  {s!r}: {w}" for s, w in unexpected.items())
    assert not fixed, f"these now route right; remove them from the known misses: {fixed}"


def test_unserved_intents_are_not_claimed(fast_path_and_cases):
    """Sentences of intents no built-in tool serves fall through to the LLM (no tool call)."""
    fast_path, cases = fast_path_and_cases
    for case in cases:
        if case.intent in UNSERVED_INTENTS:
            m = fast_path.match(case.sentence, context=case.context)
            assert m is None or m.intent.startswith("tool:") or m.intent not in UNSERVED_INTENTS, case.sentence
