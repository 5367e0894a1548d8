"""Questions back to the user: "Which one: the reading lamp or the floor lamp?" and the answer.

When a tool raises :class:`~assistant.errors.NeedsClarification`, the router says the question
and keeps a :class:`PendingQuestion`; the user's next request is first read as an answer to it
(:func:`choose`): a name or part of one ("the desk one", "reading"), the room that tells them
apart ("the kitchen", "bedroom 1"), an ordinal ("the second one", "the last"), or a side ("the
left one"). The tool is then called again with the chosen option's arguments. An answer that
picks none of them ("never mind", or a new request) drops the question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from rapidfuzz import fuzz

from ..home.text import normalize, singular

__all__ = ["PendingQuestion", "choose", "is_cancel"]

_STOP = frozenset("the a an one ones please i mean meant it that this yes yeah no oh um uh er in on of just only thanks thank you".split())
_ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3, "last": -1}
_CANCEL = re.compile(r"^\s*(never ?mind|forget it|cancel|stop|nothing|neither|none of (them|those)|no(,)? (thanks|thank you)|nope)\b", re.I)
CHOICE_MIN = 60.0
"""rapidfuzz partial ratio an answer needs against a choice's label when no word matches exactly."""
FUZZY_MIN_CHARS = 5
"""Shortest answer (its content words) the partial-ratio fallback reads: a partial ratio aligns a
short string with any window of a label, so "best" (Whisper's "The best one." for "the desk one")
scores 67 against "bedroom lamp" and 57 against "desk lamp"."""
RATIO_LEAD = 10.0
"""When two labels tie on partial ratio, the lead in whole ratio that still picks one."""


@dataclass
class PendingQuestion:
    """A question the assistant asked and the call it completes."""

    tool: str
    arguments: dict[str, Any]
    options: list[dict[str, Any]]
    labels: list[str]
    question: str
    turn: int = 0
    attempts: int = field(default=0)


def is_cancel(text: str) -> bool:
    """ "never mind", "cancel", "neither": the user drops the question."""
    return bool(_CANCEL.search(text))


WORD_MIN = 60.0
"""rapidfuzz ratio a misheard answer word needs against a word only one option has ("four" vs
"floor" 67, vs "reading" 18); words of three letters or more."""
WORD_LEAD = 20.0
"""... and by how much it must beat every other option's closest word."""


def _raw_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in _STOP and len(w) >= 3}


def _pronoun_one(answer: str, labels: list[str]) -> str:
    """``answer`` without a "one" that is a pronoun ("the desk one", "each one") rather than the
    number 1 ("bedroom one" when an option says "bedroom 1"): read as 1, it picked "the ceiling light
    in the bedroom 1" for Whisper's "Lucky each one." (development set)."""
    said = re.findall(r"[a-z0-9']+", answer.lower())
    numbered = " ".join(normalize(label) for label in labels)
    kept = [w for i, w in enumerate(said)
            if w != "one" or (i > 0 and re.search(rf"\b{re.escape(singular(said[i - 1]))} 1\b", numbered))]
    return " ".join(kept)


def _closest_distinct_word(answer: str, labels: list[str]) -> int | None:
    """The option one of whose own words (not shared by every option) an answer word is closest to,
    if that is within :data:`WORD_MIN` and :data:`WORD_LEAD` closer than any other option's."""
    label_words = [_raw_words(label) for label in labels]
    shared = set.intersection(*label_words) if label_words else set()
    said = _raw_words(answer) - shared
    scores = [max((fuzz.ratio(a, d) for a in said for d in ws - shared), default=0.0) for ws in label_words]
    ranked = sorted(scores, reverse=True)
    if ranked and ranked[0] >= WORD_MIN and (len(ranked) == 1 or ranked[0] - ranked[1] >= WORD_LEAD):
        return scores.index(ranked[0])
    return None


def _content(text: str) -> str:
    return " ".join(w for w in re.findall(r"[a-z0-9']+", text) if w not in _STOP)


def _words(text: str) -> set[str]:
    return {singular(w) for w in normalize(text).replace("_", " ").replace(".", " ").split() if w not in _STOP}


def choose(answer: str, labels: list[str], keys: list[str] | None = None) -> int | None:
    """Which option an answer picks (its index), or None.

    Args:
        answer: What the user said, e.g. "the desk one", "the second", "kitchen".
        labels: How each option was said in the question ("the desk lamp", "the ceiling light in
            the kitchen").
        keys: More words per option that may tell it apart (e.g. its entity id).
    """
    answer = _pronoun_one(answer, labels)
    words = _words(answer)
    low = normalize(answer)
    for word, idx in _ORDINALS.items():
        if re.search(rf"\b{word}\b", low) and len(labels) > 1:
            return idx if idx >= 0 else len(labels) - 1
    option_words = [_words(label + " " + (keys[i] if keys else "")) for i, label in enumerate(labels)]
    if words:
        # the option that has the most of the answer's words, if it is the only one that has that many
        scores = [len(words & ow) for ow in option_words]
        best = max(scores)
        if best > 0 and scores.count(best) == 1:
            return scores.index(best)
        # words unique to one option ("desk" when both are lamps)
        shared = set.intersection(*option_words) if option_words else set()
        distinct = [len((words & ow) - shared) for ow in option_words]
        top = max(distinct)
        if top > 0 and distinct.count(top) == 1:
            return distinct.index(top)
        # a misheard word unique to one option: Whisper's "the four lamp" for "the floor lamp"
        # (spelled as heard: normalising would make "four" a "4" that looks like neither)
        idx = _closest_distinct_word(answer, labels)
        if idx is not None:
            return idx
    # the words that say something: "the" in both would match "the garage" to "the reading lamp"
    said = _content(low)
    # best partial ratio; a tie goes to the one whose whole ratio leads by RATIO_LEAD ("flaw lamp":
    # 71 against both, whole ratio 74 for "floor lamp" and 57 for "reading lamp")
    scores = [(fuzz.partial_ratio(said, _content(normalize(label))), fuzz.ratio(said, _content(normalize(label)))) for label in labels]
    ranked = sorted(scores, reverse=True)
    if not ranked or ranked[0][0] < CHOICE_MIN or len(said) < FUZZY_MIN_CHARS:
        return None
    if len(ranked) == 1 or ranked[0][0] > ranked[1][0] or ranked[0][1] - ranked[1][1] >= RATIO_LEAD:
        return scores.index(ranked[0])
    return None
