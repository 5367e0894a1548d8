"""How names and requests are compared: one normal form for both sides.

``normalize("Turn on Bedroom One's lamp!")`` → ``"turn on bedroom 1 lamp"``: case-folded,
contractions spelled out ("it's" → "it is", "we're" → "we are"), possessives dropped ("Emma's
room" → "emma room", "Trader Joe's" → "trader joe"), other apostrophes dropped ("don't" →
"dont"), other punctuation turned into spaces, number words
turned into digits (``text2num``'s ``alpha2digit``, so "bedroom one" and "Bedroom 1" compare
equal and "twenty five percent" becomes "25 percent"), single spaces. Names from the home and
words from a request go through the same function, so whatever it does it does to both.
"""

from __future__ import annotations

import functools
import re

__all__ = ["normalize", "place_phrase", "singular", "tokens", "words_in"]

_APOSTROPHES = re.compile(r"['’`´]")
_CONTRACTIONS = [
    (re.compile(r"\b(it|what|where|that|there|here|who|he|she|how|when|why)'s\b"), r"\1 is"),
    (re.compile(r"\blet's\b"), "let us"),
    (re.compile(r"'re\b"), " are"),
    (re.compile(r"\b(i)'m\b"), r"\1 am"),
    (re.compile(r"'ll\b"), " will"),
    (re.compile(r"'ve\b"), " have"),
    (re.compile(r"'d\b"), " would"),
    (re.compile(r"(\w)'s\b"), r"\1"),  # possessive: "Emma's room" → "emma room", "Trader Joe's" → "trader joe"
]
_PUNCT = re.compile(r"[^\w\s%.]|(?<!\d)\.|\.(?!\d)")
_SPACES = re.compile(r"\s+")
_PERCENT = re.compile(r"(\d)\s*%")


@functools.lru_cache(maxsize=8192)
def normalize(text: str) -> str:
    """The comparison form of a name or a request (see the module docstring)."""
    from text_to_num import alpha2digit  # noqa: PLC0415 - a compiled extension, imported once

    s = text.casefold().replace("’", "'").replace("`", "'").replace("´", "'")
    for pattern, repl in _CONTRACTIONS:
        s = pattern.sub(repl, s)
    s = _APOSTROPHES.sub("", s)
    s = _PUNCT.sub(" ", s)
    s = _SPACES.sub(" ", s).strip()
    if s:
        try:
            s = alpha2digit(s, "en", threshold=0)
        except Exception:  # noqa: BLE001 - a number it cannot parse: keep the words
            pass
    s = _PERCENT.sub(r"\1 percent", s)
    return _SPACES.sub(" ", s).strip()


def tokens(text: str) -> tuple[str, ...]:
    """The words of :func:`normalize`'s form."""
    return tuple(normalize(text).split())



_ESCAPE = re.compile(r"\\[a-zA-Z]")


def words_in(data: object, *, keys: bool = True, skip: frozenset[str] = frozenset()) -> frozenset[str]:
    """The lower-case words (two letters or more, and "a", "i") in every string of ``data``: nested
    dicts (their keys too, unless ``keys`` is False; entries under a key in ``skip`` left out),
    lists, tuples, sets and compiled regular expressions (their pattern, escapes such as ``\\b``
    dropped). A grammar's vocabulary from the data it is written in: hassil's intents, the
    tolerant tier's patterns."""
    out: set[str] = set()

    def walk(x: object) -> None:
        if isinstance(x, re.Pattern):
            walk(x.pattern)
        elif isinstance(x, str):
            out.update(w for w in re.findall(r"[a-z]+", _ESCAPE.sub(" ", x.lower())) if len(w) > 1 or w in ("a", "i"))
        elif isinstance(x, dict):
            for k, v in x.items():
                if k in skip:
                    continue
                if keys:
                    walk(k)
                walk(v)
        elif isinstance(x, (list, tuple, set, frozenset)):
            for v in x:
                walk(v)

    walk(data)
    return frozenset(out)


_IRREGULAR = {"people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse"}
_KEEP = {"glass", "grass", "gas", "bus", "lens", "chassis", "series", "status", "this", "is", "was", "its", "us", "yes", "plus", "bonus", "radius", "nexus", "always", "across"}


@functools.lru_cache(maxsize=8192)
def singular(word: str) -> str:
    """A plural English noun's singular ("lamps" → "lamp", "switches" → "switch", "batteries" → "battery").

    A plain suffix rule, enough for device words; words that only look plural are kept.
    """
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if len(word) < 4 or word in _KEEP or not word.endswith("s") or word.endswith("ss") or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    return word[:-1]


def place_phrase(area: str | None = None, floor: str | None = None) -> str:
    """Where, as said after a noun: " in the kitchen" for an area, " on the ground floor" for a
    floor, " upstairs" for a floor called "Upstairs" or "Downstairs" (an adverb takes no "on the"),
    "" for neither. Names keep their case."""
    if area:
        return f" in the {area}"
    if floor:
        return f" {floor.lower()}" if floor.strip().lower() in ("upstairs", "downstairs") else f" on the {floor}"
    return ""
