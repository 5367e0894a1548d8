"""What to put between the exact templates and the LLM: three candidates, measured on the development set.

1. **Home Assistant's fuzzy n-gram matcher** (hassil 3.x ``FuzzyNgramMatcher`` with the n-gram
   models ``home-assistant-intents`` ships, as Home Assistant has used it since 2025.9). It needs
   hassil 3.2–3.8 and ``home-assistant-intents`` 2025.9–2025.10 (later releases dropped the fuzzy
   data), so it runs in a venv of its own (``.cache/nlu-compare``, made on first use from the
   package index) and answers intents + slots over a pipe; the intents then become tool calls the
   way the fast path's do (``INTENT_TOOLS``).
2. **A classifier trained on sentences sampled from the templates** (Snips NLU's recipe): hassil
   samples the intents' sentences with the slot values replaced by placeholders, a TF-IDF +
   logistic-regression model (scikit-learn) learns intent from words, and the home's names,
   areas, floors and numbers in a request are found with a gazetteer and put in the slots.
3. **The tolerant tier** (:mod:`assistant.controller.tolerant`): action words + target + values,
   resolved by the entity resolver.

Each sits behind the same exact templates, the LLM off, on the development split only (the
held-aside split is not used to choose). ``python -m benchmarks.nlu_compare`` prints the table
that ``docs/understanding.md`` quotes.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .nlu import ROOT, Case, HomeRunner, load_cases, summarize

VENV = ROOT / ".cache" / "nlu-compare"
FUZZY_PACKAGES = ["hassil==3.4.0", "home-assistant-intents==2025.10.28", "PyYAML"]

_SIDE = r'''
import json, sys
from hassil import Intents, TextSlotList
from hassil.fuzzy import FuzzyNgramMatcher, SlotCombinationInfo
from hassil.ngram import Sqlite3NgramModel
from home_assistant_intents import get_intents, get_fuzzy_config, get_fuzzy_language
req = json.load(sys.stdin)
intents = Intents.from_dict(get_intents("en"))
cfg, lang = get_fuzzy_config(), get_fuzzy_language("en")
models = {n: Sqlite3NgramModel(order=m.order, words={w: str(i) for w, i in m.words.items()}, database_path=m.database_path) for n, m in lang.ngram_models.items()}
combos = {i: {k: SlotCombinationInfo(context_area=v.context_area, name_domains=set(v.name_domains) if v.name_domains else None) for k, v in c.items()}
          for i, c in cfg.slot_combinations.items()}
out = {}
for home in req:
    lists = {"name": TextSlotList.from_tuples([(n, n, {"domain": d}) for n, d in home["names"]], allow_template=False),
             "area": TextSlotList.from_strings(home["areas"], allow_template=False),
             "floor": TextSlotList.from_strings(home["floors"], allow_template=False)}
    m = FuzzyNgramMatcher(intents=intents, intent_models=models, intent_slot_list_names=cfg.slot_list_names, slot_combinations=combos,
                          domain_keywords=lang.domain_keywords, stop_words=lang.stop_words, slot_lists=lists)
    for text in home["requests"]:
        r = m.match(text, context_area=home["area"] or None)
        out[home["key"] + "|" + text] = None if r is None else {"intent": r.intent_name, "slots": {k: v.value for k, v in r.slots.items()}}
print(json.dumps(out))
'''


def _fuzzy_env() -> Path:
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *FUZZY_PACKAGES], check=True)
    return py


class _IntentTier:
    """Adapts intent + slots (from either candidate) to the router's tolerant-tier interface."""

    def __init__(self, registry, answers: dict[str, dict | None] | None = None, classify=None) -> None:
        self.registry, self.answers, self.classify = registry, answers or {}, classify

    def match(self, text: str):
        from assistant.controller.fastpath import INTENT_TOOLS, refine_home_arguments
        from assistant.controller.tolerant import TolerantMatch

        r = self.classify(text) if self.classify is not None else self.answers.get(text)
        if not r or r["intent"] not in INTENT_TOOLS:
            return None
        slots = {k: v for k, v in r["slots"].items() if v not in (None, "")}
        try:
            mapped = INTENT_TOOLS[r["intent"]](slots)
        except (KeyError, TypeError, ValueError):
            return None
        if mapped is None or mapped[0] not in self.registry.tools:
            return None
        tool, args = mapped
        return TolerantMatch(r["intent"], [(tool, refine_home_arguments(text, tool, args))], why=f"{r['intent']} (candidate)")


def _fuzzy_answers(cases: list[Case]) -> dict[str, dict | None]:
    from assistant.home import load_home_yaml

    from .nlu import home_path

    py = _fuzzy_env()
    homes: dict[tuple[str, str], dict[str, Any]] = {}
    for c in cases:
        key = (c.home, c.area)
        if key not in homes:
            snap = load_home_yaml(home_path(c.home))
            homes[key] = {"key": c.home, "area": c.area, "names": [(n, e.domain) for e in snap.entities for n in e.names()],
                          "areas": [n for a in snap.areas for n in (a.name, *a.aliases)], "floors": [n for f in snap.floors for n in (f.name, *f.aliases)],
                          "requests": []}
        homes[key]["requests"].append(c.say)
        if c.then:
            homes[key]["requests"].append(str(c.then))
    r = subprocess.run([str(py), "-c", _SIDE], input=json.dumps(list(homes.values())), capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


_MODEL: tuple | None = None


def _train() -> tuple:
    """TF-IDF + logistic regression on sentences hassil samples from the templates (once)."""
    global _MODEL
    if _MODEL is not None:
        return _MODEL
    import itertools

    import home_assistant_intents
    from hassil import Intents, TextSlotList
    from hassil.sample import sample_intents
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from assistant.controller.fastpath import INTENT_TOOLS
    from assistant.home import normalize

    intents = Intents.from_dict(home_assistant_intents.get_intents("en"))
    placeholders = {"name": "zname", "area": "zarea", "floor": "zfloor"}
    lists = {k: TextSlotList.from_strings([v], allow_template=False) for k, v in placeholders.items()}
    X, y = [], []
    for name in INTENT_TOOLS:
        if name not in intents.intents:
            continue
        samples = sample_intents(intents, slot_lists=lists, max_sentences_per_intent=150, intent_names={name}, language="en", expand_ranges=False)
        for intent, sentence in itertools.islice(samples, 150):
            X.append(re.sub(r"\d+", "5", normalize(sentence)))
            y.append(intent)
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    clf = LogisticRegression(max_iter=2000, C=5.0)
    clf.fit(vec.fit_transform(X), y)
    _MODEL = (vec, clf, placeholders, len(X))
    return _MODEL


def _classifier(registry):
    """The template classifier with this home's gazetteer: ``classify(text) -> {"intent", "slots"} | None``."""
    from assistant.home import EntityResolver, normalize
    from assistant.home.text import singular
    from assistant.home.vocabulary import KIND_WORDS

    vec, clf, placeholders, _n = _train()

    def classify(text: str) -> dict | None:
        home = registry.service("home")
        r = EntityResolver(home.snapshot(), "")
        s = normalize(text)
        slots: dict[str, Any] = {}
        for table, slot in ((r._names, "name"), (list(r._areas.items()), "area"), (list(r._floors.items()), "floor")):
            keys = sorted({k if isinstance(k, str) else k for k, _ in table}, key=len, reverse=True)
            for k in keys:
                if k and re.search(rf"(?<!\S){re.escape(k)}(?!\S)", s) and slot not in slots:
                    slots[slot] = k
                    s = re.sub(rf"(?<!\S){re.escape(k)}(?!\S)", placeholders[slot], s, count=1)
        numbers = re.findall(r"\d+(?:\.\d+)?", s)
        s = re.sub(r"\d+(?:\.\d+)?", "5", s)
        probs = clf.predict_proba(vec.transform([s]))[0]
        best = probs.argmax()
        if probs[best] < 0.5:
            return None
        intent = clf.classes_[best]
        for w in s.split():
            kind = KIND_WORDS.get(singular(w))
            if kind is not None and "domain" not in slots:
                slots["domain"] = sorted(kind.domains)[0]
        if numbers:
            value = float(numbers[0])
            for key in ("brightness", "position", "temperature", "volume_level"):
                slots[key] = int(value) if value.is_integer() else value
        if "name" not in slots and "area" not in slots and "floor" not in slots and "domain" not in slots and intent.startswith(("HassTurn", "HassLight", "HassSetPosition")):
            return None
        return {"intent": intent, "slots": slots}

    return classify


async def compare(cases: list[Case]) -> dict[str, Any]:
    """Accuracy of templates + each candidate on ``cases`` (LLM off)."""
    import benchmarks.nlu as harness

    results: dict[str, Any] = {}
    fuzzy = _fuzzy_answers(cases)
    original = HomeRunner.start

    def with_tier(make):
        async def start(self):
            await original(self)
            self.controller.router.tolerant = make(self)
        return start

    candidates = {
        "templates only": lambda runner: None,
        "templates + Home Assistant fuzzy n-gram matcher": lambda runner: _IntentTier(
            runner.controller.registry, {k.split("|", 1)[1]: v for k, v in fuzzy.items() if k.startswith(runner.home_ref + "|")}),
        "templates + classifier trained on template samples": lambda runner: _IntentTier(runner.controller.registry, classify=_classifier(runner.controller.registry)),
        "templates + tolerant tier (ours)": None,
    }
    for name, make in candidates.items():
        HomeRunner.start = with_tier(make) if make is not None else original
        try:
            t0 = time.perf_counter()
            s = summarize(await harness.evaluate(cases))
            s["wall_s"] = round(time.perf_counter() - t0, 1)
        finally:
            HomeRunner.start = original
        results[name] = {k: s[k] for k in ("n", "ok", "accuracy", "false_actions", "false_action_rate", "ms", "wall_s")}
        print(f"{name:55s} {s['ok']:4d}/{s['n']} = {s['accuracy']:.1%}  false actions {s['false_actions']:3d} ({s['false_action_rate']:.1%})  "
              f"p50 {s['ms']['p50']} ms  p95 {s['ms']['p95']} ms", file=sys.stderr, flush=True)
    return results


def main() -> None:  # pragma: no cover
    cases = load_cases(("dev",))
    print(json.dumps(asyncio.run(compare(cases)), indent=1))


if __name__ == "__main__":
    main()
