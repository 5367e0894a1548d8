"""A second look at a transcript nobody understood: recognise again, biased with the few names that matter.

Biasing Whisper with every device and area name (``hotwords``) makes it *hear* names that were not
said ("Dining Room Light, Dining Room Light," for "turn on the living room light"). So the first
pass is unbiased; only when no tier of the router understands it ("Peter off", "make the living
room seal in light blue") is the utterance transcribed again with a handful of names — the ones
that sound like words of the first transcript, and the devices of the room the assistant is in —
and the second transcript is kept only if the router understands it and it is not a repetition
loop. What the router understands is the home's grammar, so this is a rescoring of two
candidates against it, at the cost of a second recognition only for utterances that would
otherwise fail.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import TYPE_CHECKING

from rapidfuzz import fuzz

from ..home import normalize
from ..home.resolver import EntityResolver
from ..home.text import singular, tokens
from ..home.vocabulary import KIND_WORDS
from ..speech.asr import is_loop
from ..speech.turn import opening
from .clarify import choose
from .followup import resolve_follow_up

if TYPE_CHECKING:
    from .router import Router

__all__ = ["TranscriptRescorer"]

NAME_NEAR = 60.0
"""rapidfuzz ratio a name needs against some words of the first transcript to be biased towards."""

SOUNDS_LIKE_NAME = 75.0
"""rapidfuzz ratio some words of a transcript need against a device or area name for the transcript
to be worth recognising again: a near miss such as "dibrigation valve" for "irrigation valve" scores
91; the turn benchmark's 20 questions for the LLM score at most 67 against the default home's names
by chance ("of france" / "office"). A looser slip ("peter" for "heater", 73) is caught only by its
other words ("peter off": "off")."""

TOOL_WORDS = frozenset("""
turn switch dim brighten lock unlock open close shut mute unmute pause resume louder quieter warmer cooler brighter dimmer darker
off lamp timer alarm remind reminder minute second hour note shopping add temperature degree percent brightness volume
""".split())
"""Words (singular) of requests to the home's tools besides its device kinds (:data:`~assistant.home.vocabulary.KIND_WORDS`):
a transcript with none of them and no near device or area name is a question for the LLM, not a
misheard command, and is not worth recognising again."""


NEEDS_COMPLEMENT = frozenset("is are turn switch set make put".split())
"""Words that open a request and need more than a target after it: "is the back door" (… locked?),
"switch the desk lamp" (… on), "set the bedroom lamp" (… to 40). A transcript that is one of them and
a target of the home, and nothing else, is a speaker mid-sentence (:meth:`TranscriptRescorer.bare_target`)."""
CLOSERS = frozenset("please now thanks thank you jarvis like".split())
"""Words a whole request may end on that change nothing it asks (:meth:`TranscriptRescorer.loose_ending`)."""


def _canon(args: dict) -> str:
    return json.dumps(args, sort_keys=True, default=str)


_DETERMINERS = frozenset("the my our a an all any of this that".split())
BARE_TARGET_NEAR = 90.0
"""rapidfuzz ratio the words after the opening need against a device or area name to be taken as
only that target (Whisper's spelling of a name: "desk lamp", "back door", "bedroom 2 heater")."""


_LINKS = frozenset("on off in to and at by for with".split())


def _adds_words(first: str, second: str) -> bool:
    """Whether ``second`` inserts words into ``first`` or writes a stretch of it with more than one
    extra word (word-level alignment, difflib): what a recogniser pushed towards given words does
    when it puts them on sounds it cannot place ("Office, and lock the smart lock")."""
    a, b = normalize(first).split(), normalize(second).split()
    return any(op == "insert" or (op == "replace" and (j2 - j1) > (i2 - i1) + 1)
               for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes())


def _names(snap, devices: bool = True) -> list[str]:
    """The home's device names and aliases (unless ``devices`` is False), then its area names and aliases."""
    out = [n for e in snap.entities for n in e.names()] if devices else []
    return [n for n in out + [n for a in snap.areas for n in (a.name, *a.aliases)] if n]


class TranscriptRescorer:
    """Decides whether a transcript is understood and which names a second pass should favour.

    Args:
        router: The router whose tiers define "understood".
        area: The assistant's area (its devices are likely to be meant).
        limit: Most names to bias with.
    """

    def __init__(self, router: "Router", area: str = "", limit: int = 8) -> None:
        self.router = router
        self.area = area
        self.limit = limit
        self._vocabulary: tuple[tuple[str, ...], frozenset[str]] | None = None

    def understands(self, text: str) -> bool:
        """Whether a tier below the LLM would act on ``text`` (templates, the tolerant tier, a
        follow-up, or an answer to the question the assistant asked)."""
        r = self.router
        if not text.strip():
            return False
        if r.pending is not None:
            keys = [" ".join(str(v) for v in o.values()) for o in r.pending.options]
            if choose(text, r.pending.labels, keys) is not None:
                return True
        return self._understanding(text) is not None

    def _understanding(self, text: str) -> tuple | None:
        """What a tier below the LLM would do with ``text`` (its tool calls, comparable), or None."""
        r = self.router
        follow = resolve_follow_up(text, r.conversation, r.registry.service("home"))
        if follow is not None:
            return ("follow_up", follow[0], _canon(follow[1]))
        if r.fast_path is not None:
            matches = r.fast_path.match_all(text)
            if matches:
                return tuple(("template", m.intent, m.tool, _canon(m.arguments)) for m in matches)
        if r.tolerant is not None:
            m = r.tolerant.match(text)
            if m is not None and m.calls and all(self._finds_its_device(tool, args) for tool, args in m.calls):
                return tuple(("tolerant", tool, _canon(args)) for tool, args in m.calls)
        return None

    def _finds_its_device(self, tool: str, args: dict) -> bool:
        """Whether a home tool call's ``name`` finds a device of the home (or several to ask
        between): the tolerant tier reads "is the courage door open" as a question about a device
        called "courage door", which would only be answered "I couldn't find …"; Whisper's slip for
        "garage door" is worth hearing again instead."""
        name = args.get("name")
        home = self.router.registry.service("home")
        if not tool.startswith("home_") or not isinstance(name, str) or not name or home is None:
            return True
        res = EntityResolver(home.snapshot(), self.area or None).resolve(
            name=name, area=args.get("area"), floor=args.get("floor"), domain=args.get("domain"), device_class=args.get("device_class"))
        return res.ok or res.reason == "ambiguous"

    def loose_ending(self, text: str) -> bool:
        """Whether the last word of an understood ``text`` is one no tier below the LLM knows and
        understanding the words without it comes to the same calls: Whisper's rendering of a word
        the speaker broke off at a pause ("Turn off the fan end." for "turn off the fan in …",
        "What's the temperature N?" for "… in …"). Words of the tools' and the home's vocabulary
        ("percent", "minutes", a name) and closing words (:data:`CLOSERS`: "please", "now", "what is the weather *like*") are not loose."""
        words = normalize(text).split()
        if len(words) < 3 or self.router.pending is not None:
            return False
        last = singular(words[-1])
        if last in CLOSERS or last in TOOL_WORDS or last in KIND_WORDS or any(c.isdigit() for c in last):
            return False
        home = self.router.registry.service("home")
        if home is not None and last in {w for n in _names(home.snapshot()) for w in normalize(n).split()}:
            return False
        said = self._understanding(text)
        return said is not None and self._understanding(" ".join(words[:-1])) == said

    def matches_template(self, text: str) -> bool:
        """Whether the exact templates match ``text`` (a whole command by the grammar)."""
        fast = self.router.fast_path
        return fast is not None and bool(text.strip()) and bool(fast.match_all(text))

    def bare_target(self, text: str) -> bool:
        """Whether ``text`` is an opening that needs more (:data:`NEEDS_COMPLEMENT`) and then only a
        target of the home: a device or area name (or within ``BARE_TARGET_NEAR`` of one), a device
        kind ("the lights", "the heating"), or an area and a kind ("the kitchen light") — "Switch
        the desk lamp.", "is the back door", "turn the heating". Whisper writes such a fragment as a
        whole sentence and Smart Turn hears a falling voice, so the turn would end before "on" or
        "locked?". "Turn the kitchen light blue" and "is the back door locked" are not bare."""
        verb, rest = opening(normalize(text).split())
        if verb not in NEEDS_COMPLEMENT:
            return False
        while rest and rest[0] in _DETERMINERS:
            rest = rest[1:]
        if not rest:
            return False  # "turn the": ends_unfinished says so already
        kinds = [singular(w) for w in rest]
        if " ".join(kinds) in KIND_WORDS:
            return True
        home = self.router.registry.service("home")
        if home is None:
            return False
        snap = home.snapshot()

        def near(names: list[str], words: str) -> bool:
            return any(fuzz.ratio(normalize(n), words) >= BARE_TARGET_NEAR for n in names)

        if near(_names(snap), " ".join(rest)):
            return True
        areas = _names(snap, devices=False)
        # an area, then a kind: "kitchen light", "bedroom lamps"
        return any(" ".join(kinds[cut:]) in KIND_WORDS and near(areas, " ".join(rest[:cut])) for cut in range(1, len(rest)))

    def worth_hearing_again(self, text: str) -> bool:
        """Whether ``text`` may be a misheard home or tool request: no tier below the LLM understands
        it, and it has a device-kind or tool word ("lamp", "blinds", "timer", "unlock"; or a word
        that starts with one of four letters or more: "Lampon.", Whisper's "lamp on") or words that
        sound like one of the home's device or area names. "What is the capital of France?" is not:
        the LLM takes it as heard, without a second recognition (~0.5 s on a Pi-class CPU)."""
        return self._assess(text)[0]

    def _assess(self, text: str) -> tuple[bool, dict[str, float]]:
        """(:meth:`worth_hearing_again`, the near names of :meth:`_near_names`: {} when not worth it)."""
        key = normalize(text)
        if not key or self.understands(text):
            return False, {}
        near = self._near_names(text)
        words = [singular(w) for w in key.split()]
        grams = {" ".join(words[i : i + n]) for n in (1, 2, 3) for i in range(len(words) - n + 1)}
        known = TOOL_WORDS | KIND_WORDS.keys()
        worth = (bool(grams & known) or words[-1:] == ["on"] or any(v >= SOUNDS_LIKE_NAME for v in near.values())
                 or any(w.startswith(k) for w in words for k in known if len(k) >= 4 and " " not in k))  # "Lampon.", "Lampoff": words run together
        return worth, near if worth else {}

    def _near_names(self, text: str) -> dict[str, float]:
        """Device and area names that sound like some words of ``text`` → their best rapidfuzz ratio."""
        home = self.router.registry.service("home")
        if home is None:
            return {}
        snap = home.snapshot()
        words = normalize(text).split()
        grams = {" ".join(words[i : i + n]) for n in range(1, 5) for i in range(len(words) - n + 1)}
        scored: dict[str, float] = {}
        for name in _names(snap):
            key = normalize(name)
            if not key:
                continue
            best = max((fuzz.ratio(key, g) for g in grams if abs(len(g.split()) - len(key.split())) <= 1), default=0.0)
            if best >= NAME_NEAR:
                scored[name] = max(scored.get(name, 0.0), best)
        return scored

    def names_for(self, text: str) -> list[str]:
        """The few device and area names a second pass should favour ([] when ``text`` is
        understood or is not worth hearing again, :meth:`worth_hearing_again`)."""
        worth, scored = self._assess(text)
        if not worth:
            return []
        snap = self.router.registry.service("home").snapshot()
        out = [n for n, _ in sorted(scored.items(), key=lambda kv: -kv[1])][: self.limit // 2 + 1]
        area = next((a for a in snap.areas if self.area and normalize(a.name) == normalize(self.area)), None)
        if area is not None:
            out += [e.name for e in snap.entities if e.area_id == area.id and e.domain not in ("sensor", "binary_sensor")]
        return list(dict.fromkeys(out))[: self.limit]

    def vocabulary(self) -> frozenset[str]:
        """Every word the tiers below the LLM can understand a request with: the template
        sentences' words, their lists and rules (:attr:`FastPath.words`), the tolerant tier's
        (:func:`~assistant.controller.tolerant.vocabulary`), device kinds, tool words, and the words
        of the home's device, area and floor names (and each with an "s"). Recognition constrained
        to it (:meth:`assistant.speech.asr.SpeechRecognizer.transcribe_within`) can only write the
        home's grammar's words. Rebuilt when the home's names change."""
        from .tolerant import vocabulary as tolerant_words  # noqa: PLC0415

        home = self.router.registry.service("home")
        snap = home.snapshot() if home is not None else None
        names = tuple(snap.names()) if snap is not None else ()
        if self._vocabulary is not None and self._vocabulary[0] == names:
            return self._vocabulary[1]
        words: set[str] = set(TOOL_WORDS) | set(CLOSERS) | set(NEEDS_COMPLEMENT) | tolerant_words()
        words.update(w for k in KIND_WORDS for w in k.split())
        if self.router.fast_path is not None:
            words |= self.router.fast_path.words
        for n in names:
            words.update(w for w in re.findall(r"[a-z]+", n.lower()))
            words.update(normalize(n).split())
        words |= {w + "s" for w in words if len(w) > 2 and not w.endswith("s")}
        out = frozenset(w for w in words if w.isalpha())
        self._vocabulary = (names, out)
        return out

    def choose(self, first: str, second: str) -> str:
        """The second transcript if the router understands it, it is not a repetition loop, and the
        biasing did not *add* words (a name written over the tail of the wake word, "Office, and
        lock the smart lock": a biased Whisper puts a name on any sound it cannot place)."""
        if not second or is_loop(second) or not self.understands(second):
            return first
        return first if _adds_words(first, second) else second

    def repairs(self, heard: str, candidate: str) -> bool:
        """Whether ``candidate`` (a recognition within the home's words) only repairs ``heard`` (the
        free transcript): it adds no words (:func:`_adds_words`: "After slight on." is not "I have
        to just light on.") and keeps every word of the home's device, area and floor names that
        was heard ("Start to be upstairs, vacuum." is not "Start the downstairs vacuum."), and it
        names its target — a word of those names or a device kind ("lamp", "water"): "Turn off an
        attack lead." is not "Turn off and rotate it.", which would stop the fan of the assistant's
        room. The constraint may correct a misheard word, never replace a name heard right or
        leave the target to the room."""
        if _adds_words(heard, candidate):
            return False
        home = self.router.registry.service("home")
        if home is None:
            return True
        snap = home.snapshot()
        names = {w for n in snap.names() for w in tokens(n)} - _DETERMINERS - _LINKS
        said = normalize(candidate).split()
        kinds = {" ".join(singular(w) for w in said[i : i + n]) for n in (1, 2) for i in range(len(said) - n + 1)}
        if not (set(said) & names or kinds & KIND_WORDS.keys()):
            return False
        return all(w in said for w in normalize(heard).split() if w in names)
