"""The tolerant tier: home requests the way people say them, understood without templates or an LLM.

Between the exact sentence templates and the LLM. It reads a request as **action words + a target
+ values**, in any order and with any filler, and lets the entity resolver
(:mod:`assistant.home.resolver`) say which devices the target means:

1. *clean*: the comparison form (:func:`~assistant.home.text.normalize`: numbers as digits),
   without politeness ("could you please", "for me"), the wake word, or the recogniser's usual
   slips in command words ("2 on" → "turn on");
2. *questions* ("is the garage open", "how warm is it upstairs", "which lights are on", "what's on
   my chores list") and *lists* ("put X on my chores", "we need X", "tick X off") first;
3. *values*: percentages, degrees, numbers after "to"/"at", "half way", colours and whites, fan
   speeds, HVAC modes;
4. *places*: "in the kitchen", "upstairs", "in here";
5. *action cues*: a lexicon of verbs and particles ("kill" = off, "draw" = close, "too dark" =
   lights on, "warmer", "skip", "dock", "water");
6. *target*: whatever words are left ("the bedroom 2 heater", "lamp", "robbie");
7. the action and the target's devices decide the tool and its arguments ("to 40" is a brightness
   for a light, a speed for a fan, a position for a blind, a volume for a speaker, a temperature
   for a thermostat); the target is resolved before anything runs, so a request about a device
   the home does not have is answered ("I couldn't find the jacuzzi") and never
   guessed at.

It returns None when it does not recognise an action, and the router hands the request to the
LLM. Why this design and not Home Assistant's fuzzy n-gram matcher or a classifier trained on the
templates: ``docs/understanding.md`` (measured on the development set).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from rapidfuzz.distance import Levenshtein

from ..home import EntityResolver, HomeSnapshot, normalize
from ..home.resolver import Resolution
from ..home.text import tokens, words_in
from ..toolkit.registry import ToolRegistry

__all__ = ["TolerantMatch", "TolerantMatcher", "number_slips", "opening_slip", "unslip"]


@dataclass
class TolerantMatch:
    """What the tolerant tier understood."""

    intent: str
    """The action, e.g. ``turn_on``, ``set_brightness``, ``list_add``, ``question``."""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Tool calls to make, in order."""
    reply: str | None = None
    """Set instead of calls when the request was understood but cannot be done (no such device)."""
    why: str = ""


# ---------------------------------------------------------------------------- cleaning

_POLITE_START = re.compile(
    r"^(?:(?:hey |ok |okay |hi )?jarvis\b|hey|ok|okay|so|um+|uh+|er+|please|pls|right|alright|well|now|and then|then|"
    r"(?:can|could|would|will|wont|won't) (?:you|u)(?: please)?(?: just)?|(?:can|could|may) (?:i|we) (?:get|have) (?:you to)?|"
    r"i (?:want|need|would like|d like) (?:you )?to|i wanna|i'd like you to|id like you to|do me a favou?r and|go ahead and|"
    r"would you mind|(?:can|could|would|will) you help me(?: to)?|help me(?: to)?|(?:just|quickly|kindly))\b\s*"
)
_POLITE_END = re.compile(r"\s*\b(?:please|pls|thanks|thank you|for me|for us|now|right now|real quick|quickly|jarvis|will you|would you|if you can|if you could|ok|okay|mate)$")
_MODAL = re.compile(r"\b(?:needs to|need to|has to|have to|should|must|ought to|could|can)(?: be| get)?\b(?! you)")
_DESIRE = re.compile(r"^(?:i|we) (?:would like|want|need|would love)(?: to have)? (?=(?:the|my|our|all|both) )")
_SLIPS = [
    (re.compile(r"^(?:2|to|too|tu) (on|off)\b"), r"turn \1"),  # "turn on" heard as "2 on"
    (re.compile(r"^(?:turned|turns) (on|off)\b"), r"turn \1"),
    # a request's "un-" heard as "and": "and lock the front door", "and mute" (unlocking still asks
    # to confirm, so a real "and lock …" is caught there)
    (re.compile(r"^(?:and|an) (lock|mute)\b"), r"un\1"),
    (re.compile(r"^(?:a|i) mute\b"), "unmute"),  # also as "a" or "I" before "mute" ("A mute.", "I mute.": no request)
    # "lock" heard as "walk" before what only a lock does: "walk all the doors", "walk up everything"
    (re.compile(r"^walk (?=up\b|(?:.* )?(?:doors?|locks?)$)"), "lock "),
    # "all" heard as "oil" before a determiner: "turn off oil that lights …", "lock oil their doors"
    (re.compile(r"\boil (?=(?:the|that|those|their|of|my|our)\b)"), "all "),
    (re.compile(r"\b(up|down) (?:its|it s|it is|his|is) tears\b"), r"\1stairs"),  # "upstairs" heard as "up its tears"
    (re.compile(r"^(?:and|an|ad|at) (?=.+ (?:to|on) (?:my|the|our) )"), "add "),  # "add X to my tasks" heard as "and X to my tasks"
    (re.compile(r"^(?:but|butt|bud) (?=.+ (?:on|onto) (?:(?:my|the|our) )?\S+(?: list)?$)"), "put "),  # "put X on my chores" heard as "but X on my chores"
    (re.compile(r"^(?:lock it up)$"), "lock up"),
    (re.compile(r"\b(?:the )?30 ?v\b"), "the tv"),  # "the TV" heard as "30V"
    (re.compile(r"\b(lights?|lamps?) song\b"), r"\1 on"),  # "lights on" heard as "light song"
    # "dock" heard as "dot" or "doc" next to a vacuum: "dot both vacuums.", "is the robot vacuum dot."
    (re.compile(r"^(?:dot|doc)\b(?=.*\b(?:vacuums?|robots?)\b)"), "dock"),
    (re.compile(r"\b(vacuums?|robots?) (?:dot|doc)$"), r"\1 dock"),
    # a question's closing "-ed" falls silent before the pause: "is the entry door lock" is "… locked"
    (re.compile(r"^((?:is|are) (?:the|my|our|all|any|every)\b.* (?:(?:un)?lock|dock))$"), r"\1ed"),
    (re.compile(r"^((?:is|are) (?:the|my|our|all|any|every)\b.* clos)e$"), r"\1ed"),
    # "is the garage door open" heard as "it's the garage door open": a statement of a device's state
    # is no command (it turned the garage door on), so it is taken as the question it was
    # (also without its article, "it's believing room lamp on": Whisper merged "the living"; not
    # "it's too dark, turn the lamp on" or "it's time the lights were off": no verb, no adverb first)
    (re.compile(r"^(?:it is|its|it s) (?=(?:(?:the|my|our|all|any|every) )?(?!(?:too|so|very|really|quite|a|not|time|getting|still|always|never)\b)\S+ .*"
                r"(?:on|off|open|opened|closed|shut|locked|unlocked|running|playing|docked|cleaning|charging)$)"
                r"(?!.*\b(?:turn|switch|put|set|get|make|leave|keep|were|was|be)\b)"), "is "),
]


_OPENING_VERBS = ("turn", "switch", "open", "close", "shut", "lock", "unlock", "start", "stop", "pause", "resume", "unpause", "mute",
                  "unmute", "dim", "brighten", "dock", "clean", "raise", "lower", "draw", "retract", "extend", "skip", "play", "activate")
"""Command verbs a request opens with, for :func:`opening_slip`."""


@functools.cache
def _known_words() -> frozenset[str]:
    return vocabulary()


def opening_slip(s: str, names: frozenset[str] = frozenset()) -> str:
    """``s`` (cleaned) with its first word replaced by the one command verb a single edit away
    (Levenshtein distance 1, rapidfuzz) when that word is no word of this tier nor of the home's
    ``names`` and has four letters or more: the recogniser's slips of a request's verb ("nute the
    tv" → "mute the tv", "refume", "unute", "chose the curtains"). Two verbs that near, or none:
    ``s`` unchanged."""
    first, _, rest = s.partition(" ")
    if len(first) < 4 or not first.isalpha() or first in _known_words() or first in names:
        return s
    near = [v for v in _OPENING_VERBS if Levenshtein.distance(first, v) == 1]
    return f"{near[0]} {rest}".strip() if len(near) == 1 else s


_NUMBER_SOUNDS = {"1": frozenset({"won"}), "2": frozenset({"to", "too"}), "4": frozenset({"for", "fore"}), "8": frozenset({"ate"})}
"""Words the recogniser writes for a digit said inside a name ("Bedroom to ceiling light")."""


def number_slips(s: str, names: tuple[str, ...]) -> str:
    """``s`` (comparison form) with a word that sounds like a digit read as that digit where the
    result is a whole name of ``names`` whose digit is inside it: "bedroom to ceiling light on" →
    "bedroom 2 ceiling light on" (Piper's "Bedroom 2 Ceiling Light", heard by Whisper). A digit
    ending a name ("Lamp 2", "Bedroom 2") is never read in: "set the bedroom to 50%" and "set lamp
    to warm" keep their "to"."""
    words = s.split()
    for name in names:
        t = tokens(name)
        for i, tok in enumerate(t[:-1]):
            if i == 0 or tok not in _NUMBER_SOUNDS:
                continue
            for j in range(len(words) - len(t) + 1):
                if words[j + i] in _NUMBER_SOUNDS[tok] and all(words[j + k] == t[k] for k in range(len(t)) if k != i):
                    words[j + i] = tok
    return " ".join(words)


def _numbered_names(snap: HomeSnapshot) -> tuple[str, ...]:
    """Names with a digit in them, a device's name with its area's before it too ("Bedroom 2
    Ceiling Light" for the Ceiling Light in Bedroom 2), for :func:`number_slips`."""
    out: list[str] = []
    for e in snap.entities:
        area = snap.area(e.area_id)
        places = [a for a in ((area.name, *area.aliases) if area else ()) if a]
        for n in e.names():
            out += [x for x in (n, *(f"{p} {n}" for p in places)) if any(c.isdigit() for c in x)]
    return tuple(dict.fromkeys(out))


def unslip(s: str) -> str:
    """``s`` (in comparison form) with the recogniser's known slips (``_SLIPS``) read as what was said."""
    for pattern, repl in _SLIPS:
        s = pattern.sub(repl, s)
    return s


def _polite(text: str) -> str:
    """``text`` in comparison form without politeness or the wake word ("could you turn the lamp
    on please" → "turn the lamp on")."""
    s = normalize(text)
    s = _DESIRE.sub("", s)
    if not re.match(r"^(?:could|can|would|will|should) ", s):
        s = _MODAL.sub(" ", s)
    s = re.sub(r"\s+", " ", s).strip()
    for _ in range(4):
        before = s
        s = _POLITE_START.sub("", s).strip()
        s = _POLITE_END.sub("", s).strip()
        if s == before:
            break
    return s


# ---------------------------------------------------------------------------- values

_PCT = re.compile(r"\b(?:to |at |by )?(\d+(?:\.\d+)?) ?percent\b")
_DEGREES = re.compile(r"\b(?:to |at |by )?(?:a couple (?:of )?|(\d+(?:\.\d+)?) |a |1 )?degrees?\b")
_NUMBER_TO = re.compile(r"\b(?:to|at) (\d+(?:\.\d+)?)\b(?! (?:minute|second|hour))")
_BARE_NUMBER = re.compile(r"(?:^| )(\d+(?:\.\d+)?)$")
_FRACTIONS = [
    (re.compile(r"\b(?:to |at )?(?:half ?way|half)(?: open| closed| brightness| speed| volume)?\b"), 50),
    (re.compile(r"\b(?:to |at )?(?:a quarter|quarter ?way|one quarter|1 quarter|quarter)(?: of the way| open)?\b"), 25),
    (re.compile(r"\b(?:to |at )?(?:3 quarters|three quarters)(?: of the way| open)?\b"), 75),
    (re.compile(r"\b(?:to |at )?(?:full|maximum|max|all the way|100 percent)(?: brightness| speed| volume| power| blast)?\b"), 100),
]
_SPEED = re.compile(r"\b(?:to |on |at )?(low|medium|high)(?: speed| setting)?\b")
_MODE_WORDS = [("fan only|fan mode", "fan_only"), ("dry|dehumidify|dehumidifying", "dry"), ("heat and cool|heat cool", "heat_cool"),
               ("auto|automatic", "auto"), ("cooling|cool|air conditioning|ac", "cool"), ("heating|heat", "heat")]
_MODES = [(re.compile(rf"\b(?:to|in|on|into) (?:the )?(?:{words})(?: mode)?$|\b(?:to|in|on|into) (?:the )?(?:{words}) mode\b|\b(?:{words}) mode\b"), mode)
          for words, mode in _MODE_WORDS]
_WHITES = re.compile(r"\b(?:to |a )*(candle light|warm white|soft white|neutral white|natural white|cool white|cold white|bright white|daylight)\b")


def _colors() -> dict[str, str]:
    import webcolors  # noqa: PLC0415

    names = {}
    for n in webcolors.names("css3"):
        names[n] = n
    for two in ("light blue", "dark blue", "light green", "dark green", "sky blue", "navy blue", "hot pink", "deep pink", "light pink", "dark red",
                "dark orange", "light yellow", "lime green", "sea green", "royal blue", "deep sky blue", "light purple", "dark purple"):
        joined = two.replace(" ", "")
        if joined in names:
            names[two] = joined
    names.pop("white", None)  # a white is a colour temperature
    return names


@functools.cache
def _color_re() -> tuple[re.Pattern, dict[str, str]]:
    """The colour-name pattern and its names, built once.

    ``functools.cache`` makes the first call atomic enough for threads: two threads may
    both build it, but neither can see half of it (the hand-rolled pair of globals this
    replaces let a second thread read the pattern before the first had set it).
    """
    names = _colors()
    alts = sorted(names, key=len, reverse=True)
    pattern = re.compile(r"\b(?:to |in |a |the colour |the color |colou?r )*(" + "|".join(re.escape(a) for a in alts) + r")\b")
    return pattern, names


@dataclass
class _Values:
    percent: float | None = None
    degrees: float | None = None
    relative_degrees: float | None = None
    number: float | None = None
    speed: str | None = None
    mode: str | None = None
    color: str | None = None
    white: str | None = None


def _take(pattern: re.Pattern, s: str) -> tuple[re.Match | None, str]:
    m = pattern.search(s)
    if m is None:
        return None, s
    return m, (s[: m.start()] + " " + s[m.end() :]).strip()


def _values(s: str) -> tuple[_Values, str]:
    v = _Values()
    m, s = _take(_PCT, s)
    if m:
        v.percent = float(m.group(1))
    m = _DEGREES.search(s)
    if m and "degree" in m.group(0):
        amount = m.group(1)
        if "couple" in m.group(0):
            amount = "2"
        elif amount is None:
            amount = "1"
        relative = m.group(0).startswith("by ") or bool(re.search(r"\b(up|down|warmer|cooler|hotter|colder|raise|lower|bump|increase|decrease|drop)\b", s))
        if relative and not re.search(r"\b(?:to|at) " + re.escape(amount), m.group(0)):
            v.relative_degrees = float(amount)
        else:
            v.degrees = float(amount)
        s = (s[: m.start()] + " " + s[m.end() :]).strip()
    if v.percent is None:
        for pattern, value in _FRACTIONS:
            m, s2 = _take(pattern, s)
            if m:
                v.percent, s = float(value), s2
                break
    m, s = _take(_WHITES, s)
    if m:
        v.white = m.group(1)
    cre, names = _color_re()
    m = cre.search(s)
    if m:
        v.color = names[m.group(1)]
        s = (s[: m.start()] + " " + s[m.end() :]).strip()
    m, s = _take(_SPEED, s)
    if m:
        v.speed = m.group(1)
    m, s = _take(_NUMBER_TO, s)
    if m:
        v.number = float(m.group(1))
    elif v.percent is None and v.degrees is None:
        m, s = _take(_BARE_NUMBER, s)
        if m:
            v.number = float(m.group(1))
    return v, re.sub(r"\s+", " ", s).strip()


def _modes(s: str) -> tuple[str | None, str]:
    for pattern, mode in _MODES:
        m, s2 = _take(pattern, s)
        if m:
            return mode, s2
    return None, s


# ---------------------------------------------------------------------------- cues

# (pattern, cue): applied in order; each match is removed from the text before the next.
_CUES: list[tuple[re.Pattern, str]] = [(re.compile(p), c) for p, c in [
    # indirect requests
    (r"\b(?:it is|its|it s|im|i am|we are|were)? ?(?:a bit |a little |way |so |far |too |really |very |rather |quite |kind of |kinda )+(?:dark|dim|gloomy)\b(?: in here)?", "too_dark"),
    (r"\b(?:it is|its|it s)? ?(?:a bit |a little |way |so |far |too |really |very |rather |quite |kind of |kinda )+bright\b", "too_bright"),
    (r"\b(?:it is|its|it s|im|i am|we are|were)? ?(?:a bit |a little |way |so |far |too |really |very |rather |quite |kind of |kinda )+(?:hot|warm|stuffy)\b", "cooler"),
    (r"\b(?:it is|its|it s|im|i am|we are|were)? ?(?:a bit |a little |way |so |far |too |really |very |rather |quite |kind of |kinda )+(?:cold|chilly|freezing)\b", "warmer"),
    (r"\b(?:it is|its|it s)? ?(?:a bit |a little |way |so |far |too |really |very |rather |quite |kind of |kinda )+loud\b", "quieter"),
    (r"\b(?:i|we) (?:cant|can t|cannot) see\b", "too_dark"),
    (r"\b(?:i|we) (?:need|want) (?:some |more )?light\b", "too_dark"),
    (r"\b(?:i|we) (?:cant|can t|cannot) hear(?: it| that| this)?\b", "louder"),
    # relative changes
    (r"\b(?:a (?:bit|little|tad|touch) |slightly |much |way )?(?:warmer|hotter)\b", "warmer"),
    (r"\b(?:a (?:bit|little|tad|touch) |slightly |much |way )?(?:cooler|colder)\b", "cooler"),
    (r"\bheat (?:it |things )?up\b", "warmer"),
    (r"\bcool (?:it |things )?down\b", "cooler"),
    (r"\b(?:a (?:bit|little|tad|touch) |slightly |much |way )?(?:brighter|lighter)\b", "brighten"),
    (r"\b(?:a (?:bit|little|tad|touch) |slightly |much |way )?(?:dimmer|darker|less bright)\b", "dim"),
    (r"\b(?:a (?:bit|little|tad|touch) |slightly |much |way )?(?:louder)\b", "louder"),
    (r"\b(?:a (?:bit|little|tad|touch) |slightly |much |way )?(?:quieter|softer)\b", "quieter"),
    (r"\b(?P<v>speed) (?:\S+ ){0,4}?(?P<p>up)\b|\b(?:faster|more speed)\b", "faster"),
    (r"\b(?P<v>slow) (?:\S+ ){0,4}?(?P<p>down)\b|\b(?:slower|less speed)\b", "slower"),
    (r"\b(?P<v>turn|crank|bump|push|raise|put|pump|jack) (?:\S+ ){0,4}?(?P<p>up)\b|\bup\b", "up"),
    (r"\b(?P<v>turn|bring|put|lower|drop|knock) (?:\S+ ){0,4}?(?P<p>down)\b|\bdown\b", "down"),
    (r"\bincrease\b", "up"),
    (r"\b(?:decrease|reduce)\b", "down"),
    # media
    (r"\b(?:skip|next)(?: this| the)?(?: song| track| one| tune)?\b|\bplay the next(?: song| track)?\b", "next"),
    (r"\bprevious\b(?: song| track| tune)?|\bgo back\b(?: a| one)?(?: song| track| tune)?|\bback (?:a |one )?(?:song|track|tune)\b|\blast (?:song|track)\b", "previous"),
    (r"\bunmute\b|\bturn (?:the )?sound (?:back )?on\b", "unmute"),
    (r"\bmute\b|\bsilence\b|\bturn (?:the )?sound off\b", "mute"),
    (r"\bpause\b|\bhold\b(?! (?:\S+ )?(?:on|off)$)", "pause"),  # "Hold it on." is Whisper's "hall light on", no pause
    (r"\b(?:resume|unpause|continue)\b|\bplay\b(?: the music)?(?: again)?", "resume"),
    (r"\bvolume\b", "volume"),
    # vacuums and water
    (r"\b(?P<v>go|come|head|send|return|get|tell) (?:\S+ ){0,4}?(?P<p>(?:back )?(?:home|to (?:its|the|his|her) (?:dock|base|charger)|to base|back to (?:its |the )?(?:dock|base|charger)))\b"
     r"|\b(?:(?:go|come|head|return) (?:back )?|back )home\b"  # a bare "home" is not a command: "This is the home." (Whisper for "is Ada home")
     r"|\b(?:go |come |head |return )?(?:back )?(?:to (?:its|the|his|her) (?:dock|base|charger)|to base)\b|\bdock\b", "dock"),
    (r"\b(?:where is|wheres|find|locate)\b", "locate"),
    (r"\b(?:start )?(?:vacuuming|hoovering)\b|\b(?:vacuum|hoover) (?=the (?:flat|house|apartment|floor|home|place|living|kitchen|downstairs|upstairs|rug|carpet))", "clean"),
    (r"\b(?P<v>get) (?:\S+ ){0,4}?(?P<p>cleaning|vacuuming)\b|\b(?:cleaning|to clean)\b|\bclean\b", "clean"),
    (r"\b(?P<v>get) (?:\S+ ){0,4}?(?P<p>going|started|running)\b", "turn_on"),
    (r"\b(?:start )?water(?:ing)?\b(?= the| my| our)|\bstart watering\b", "water"),
    (r"\bfill\b", "open"),
    (r"\bshut off the water\b|\bturn off the water\b", "close_water"),
    # fans
    (r"\b(?:oscillate|oscillating|oscillation|swing|swinging|rotate|rotating)\b", "oscillate"),
    (r"\breverse\b|\bthe other way\b|\bchange (?:the )?direction\b", "reverse"),
    # openings and locks
    (r"\bunlock\b", "unlock"),
    (r"\block (?:it )?up\b", "lock_up"),
    (r"\block\b", "lock"),
    (r"\b(?:open|raise|lift|extend|roll up|pull up)\b", "open"),
    (r"\b(?:close|shut|draw|lower|retract|roll down|pull down)\b", "close"),
    # brightness
    (r"\bdim\b", "dim"),
    (r"\b(?:brighten|brighten up)\b", "brighten"),
    # on / off
    (r"\blight up\b", "turn_on"),
    (r"\b(?P<v>turn|switch|flip|put|power|click|bring|fire) (?:\S+ ){1,5}?(?P<p>on)$|\b(?:turn|switch|flip|power|fire|put) on\b|\bon$|\bon (?=at |to |please|in )", "turn_on"),
    (r"\b(?P<v>turn|switch|flip|power|shut|kill|cut) (?:\S+ ){1,5}?(?P<p>off)$|\b(?:turn|switch|flip|power|shut|cut) off\b|\boff$|\boff (?=in |please|the |at )", "turn_off"),
    (r"^kill\b|\b(?:disable|deactivate)\b", "turn_off"),  # "kill" is a verb only first: "set the heating to kill" is Whisper's "to cool"
    (r"\b(?:activate|enable|start|begin|launch|run|trigger|press|push|ring|hit|set off)\b", "start"),
    (r"\bstop\b|\bend\b|\bhalt\b", "stop"),
    (r"^get\b", "toggle"),
    (r"^(?:heat|warm)(?= (?!up\b))", "heat_verb"),
    (r"^(?:set|make|change|adjust|put|switch|turn|bring|move)\b", "set"),
]]

# words that are not part of a target
_FILLER = frozenset(("the", "a", "an", "my", "our", "their", "some", "it", "them", "that", "this", "to", "at", "in", "on", "of", "for", "is", "be", "and",
                     "too", "bit", "little", "please", "again", "all", "way", "so", "just", "mode", "setting", "level", "now", "can", "you",
                     "i", "me", "us", "up", "with", "go", "its", "there", "here", "bit", "tad"))
_KEEP_WORDS = frozenset(("all", "both", "every", "everything"))
_PLACE_PREP = re.compile(r"\b(?P<prep>in|on|at|of|for|from|across|around|throughout) (?P<det>the |my |our )?(?P<place>[\w ]+?)(?= on | in | to | at |$)")


# ---------------------------------------------------------------------------- the matcher


class TolerantMatcher:
    """Understands home requests without templates.

    Args:
        registry: The tools (the home service is read from it; tools that are blocked are never called).
        area: The area the assistant is in ("in here", and requests that name no place).
    """

    def __init__(self, registry: ToolRegistry, area: str = "") -> None:
        self.registry = registry
        self._area = area
        self._explicit = False

    @property
    def area(self) -> str:
        """The area the request came from (a satellite's room), else this device's."""
        from ..engine.context import current  # noqa: PLC0415

        return current().area or self._area

    def _home(self) -> HomeSnapshot | None:
        home = self.registry.service("home")
        return home.snapshot() if home is not None else None

    def _has(self, tool: str) -> bool:
        return tool in self.registry.tools

    def match(self, text: str) -> TolerantMatch | None:
        """Understand ``text``, or None (not a home request this tier recognises).

        A request of several clauses ("we're leaving, run the leaving home script") is read whole
        first, then clause by clause from the last.
        """
        out = self._match(text)
        if out is not None and out.calls:
            return out
        clauses = [c for c in re.split(r"[,;.!?]+|\bso\b", text) if c.strip()]
        if len(clauses) > 1:
            # the last clause alone ("we're leaving, run the leaving home script"), and only when it names its
            # device or place itself: "..., volume to 30" would lose whatever the first clause named
            part = self._match(clauses[-1])
            if part is not None and part.calls and all(("name" in a or "area" in a or "floor" in a) for _t, a in part.calls):
                if out is not None and out.reply and not out.calls and all(_kind_name(a) for _t, a in part.calls):
                    return out  # the whole reading took the first clause's words as the device's name: "No sorry, light on at 10%." (Whisper's "nursery light …") is no light of this room
                return part
        return out

    def repaired(self, text: str) -> str | None:
        """``text`` without politeness and with the recogniser's slips this tier knows read as what
        was said (``_SLIPS``, :func:`opening_slip`: "basement light song" → "basement light on",
        "nute the tv" → "mute the tv"), or None when there was no slip. The router gives the exact
        templates this reading, so a repaired request means what the same words typed mean."""
        polite = _polite(text)
        s = self._unslip(polite)
        return s if s and s != polite else None

    def _unslip(self, s: str) -> str:
        snap = self._home()
        if snap is None:
            return opening_slip(unslip(s))
        names = tuple(snap.names())
        return number_slips(opening_slip(unslip(s), frozenset(w for n in names for w in tokens(n))), _numbered_names(snap))

    def _match(self, text: str) -> TolerantMatch | None:
        snap = self._home()
        s = self._unslip(_polite(text))
        if not s:
            return None
        resolver = EntityResolver(snap, self.area or None) if snap is not None else None
        lists = self._lists(s, snap, resolver)
        if lists is not None:
            return lists
        if resolver is None:
            return None
        if self._Q_START.match(s):
            return self._question(s, resolver)  # a question is never read as a command ("what is the capital of peru")
        return self._command(s, resolver)

    # ------------------------------------------------------------------ lists

    _ADD = [
        re.compile(r"^(?:add|put|stick|write|pop|throw|include)(?: down)? (?P<item>.+?) (?:to|on|onto|in|into) (?:my |the |our )?(?P<list>.+?)(?: list)?$"),
        re.compile(r"^(?:add|put) (?:to|on) (?:my |the |our )?(?P<list>.+?)(?: list)?:? (?P<item>.+)$"),
        # "add" heard as "and"/"at": only with a list this home has ("and mow the lawn to chores")
        re.compile(r"^(?:and|an|ad|at) (?P<item>.+?) (?:to|onto) (?:my |the |our )?(?P<list>.+?)(?: list)?$"),
        re.compile(r"^(?:we|i) (?:need|are out of|re out of|ran out of|have run out of|need to buy|need more) (?P<item>.+?)$"),
        re.compile(r"^(?:remind me to buy|buy) (?P<item>.+?)$"),
        re.compile(r"^(?:add|put) (?P<item>.+?)$"),
    ]
    _DONE = [
        re.compile(r"^(?:(?P<pre>.+?) )?(?:cross|tick|check|mark|strike)(?: it| that)?(?: off)? (?P<item>.*?) ?(?:off |as done |done |as complete |complete )?(?:on |from |off |in )(?:my |the |our )?(?P<list>.+?)(?: list)?$"),
        re.compile(r"^(?:cross|tick|check|strike) (?P<item>.+?) off$"),
        re.compile(r"^(?P<pre>.+?) (?:cross|tick|check|mark)(?: it| that)?(?: off| done)?$"),
        re.compile(r"^(?:i|we) (?:have |ve )?(?:done|finished|completed) (?P<item>.+?)$"),
        re.compile(r"^(?P<pre>.+?) mark (?:it|that) (?:as )?(?:done|complete)(?: on (?:my |the )?(?P<list>.+?)(?: list)?)?$"),
    ]
    _REMOVE = [re.compile(r"^(?:remove|delete|take|scratch|drop) (?P<item>.+?) (?:off|from) (?:my |the |our )?(?P<list>.+?)(?: list)?$")]
    _READ = [
        re.compile(r"^(?:what s|whats|what is|what do i have|what have i got|read|read me|tell me what s|show me) (?:on |in )?(?:my |the |our )(?P<list>.+?)(?: list)?$"),
        re.compile(r"^what (?:do|should) (?:i|we) (?:need to )?(?:buy|get)(?: at the shops| at the store)?$"),
        re.compile(r"^what s on (?:my |the )?(?P<list>.+?)(?: list)?$"),
    ]

    def _list_name(self, said: str | None, snap: HomeSnapshot | None, resolver: EntityResolver | None) -> str | None:
        """The list a request names, as the user said it, if it is a list this home (or the notes) knows."""
        if not said:
            return None
        name = said.strip()
        for suffix in (" list", " lists"):
            name = name.removesuffix(suffix)
        name = re.sub(r"^(?:my|the|our) ", "", name)
        if name in ("shopping", "grocery", "groceries", "to do", "todo"):
            return name + (" list" if name in ("shopping", "to do", "todo") else "")
        if resolver is not None:
            res = resolver.resolve(name=name, domain=["todo"], plural=False)
            if res.ok:
                return name
        return None

    def _lists(self, s: str, snap: HomeSnapshot | None, resolver: EntityResolver | None) -> TolerantMatch | None:
        for pattern in self._READ:
            m = pattern.match(s)
            if m and self._has("list_read"):
                said = m.groupdict().get("list")
                name = self._list_name(said, snap, resolver) if said else None
                if said and name is None and said not in ("list", "shopping"):
                    continue
                return TolerantMatch("list_read", [("list_read", {"list_name": name} if name else {})], why="reading a list")
        for pattern in self._REMOVE:
            m = pattern.match(s)
            if m and self._has("list_remove"):
                name = self._list_name(m.group("list"), snap, resolver)
                if name is not None:
                    return TolerantMatch("list_remove", [("list_remove", {"item": m.group("item"), "list_name": name})], why="removing a list item")
        for pattern in self._DONE:
            m = pattern.match(s)
            if m and self._has("list_complete"):
                g = m.groupdict()
                item = (g.get("item") or "").strip()
                if not item or item in ("it", "that", "off"):
                    item = _past_to_item(g.get("pre") or "")
                said = g.get("list")
                name = self._list_name(said, snap, resolver) if said else None
                if said and name is None:
                    continue
                if item:
                    args = {"item": item} | ({"list_name": name} if name else {})
                    return TolerantMatch("list_complete", [("list_complete", args)], why="checking off a list item")
        for pattern in self._ADD:
            m = pattern.match(s)
            if not m or not self._has("list_add"):
                continue
            g = m.groupdict()
            item = g["item"].strip()
            said = g.get("list")
            if said is not None:
                name = self._list_name(said, snap, resolver)
                if name is None:
                    continue
                return TolerantMatch("list_add", [("list_add", {"item": _original_words(item), "list_name": name})], why="adding to a list")
            if pattern is self._ADD[-1]:
                continue  # "add X" alone: only when X is not a device ("add the lights" makes no sense anyway)
            if resolver is not None and _names_something(item, resolver):
                continue  # "I need the kitchen light on" is not shopping
            return TolerantMatch("list_add", [("list_add", {"item": _original_words(item)})], why="adding to the shopping list")
        return None

    # ------------------------------------------------------------------ questions

    _Q_START = re.compile(r"^(?:is|are|was|were|did|does|do|has|have|what|whats|what s|which|how|where|wheres|who|tell me|check if|check whether|can you tell me)\b")

    def _question(self, s: str, r: EntityResolver) -> TolerantMatch | None:
        if not self._Q_START.match(s):
            return None
        place, rest = self._place(s, r)
        # temperatures and other readings
        m = re.search(r"\b(?:temperature|how (?:warm|cold|hot|chilly)|degrees)\b", rest)
        if m and self._has("home_get_temperature"):
            target = _target_words(re.sub(r"\b(?:what s|whats|what is|what|how|warm|cold|hot|chilly|is|it|the|temperature|degrees|in|set to|at|set|currently|right now|inside|like)\b", " ", rest))
            args = {**place}
            if target:
                args["name"] = target
            if re.search(r"\b(?:set to|set at|at)\b", rest) and target:
                args["name"] = target
            return TolerantMatch("question", [("home_get_temperature", args)], why="a temperature question")
        m = re.search(r"\b(?:humidity|humid)\b", rest)
        if m and self._has("home_get_sensor"):
            return TolerantMatch("question", [("home_get_sensor", {"device_class": "humidity", **place})], why="a humidity question")
        # "what's playing"
        if re.search(r"\bwhat s playing|whats playing|what is playing|what song\b", rest) and self._has("home_get_state"):
            target = _target_words(re.sub(r"\b(?:what s|whats|what is|playing|song|on|is this)\b", " ", rest))
            args = {"domain": ["media_player"], **place, **({"name": target} if target else {})}
            if not target:
                playing = [e for e in r.snap.entities if e.domain == "media_player" and e.state == "playing"]
                if place.get("area"):
                    area = r.find_area(place["area"])
                    playing = [e for e in playing if area is not None and e.area_id == area.id] or playing
                if playing:
                    args = {"name": playing[0].id}
            return TolerantMatch("question", [("home_get_state", args)], why="what is playing")
        # "which lights are on", "are any lights on upstairs", "is the garage open", "is the robot vacuum docked"
        m = re.match(
            r"^(?:is|are|was|were|did (?:i|we|you) (?:leave)?|check if|check whether|tell me if|can you tell me if)\s+(?P<all>all |any |any of |every )?(?P<body>.+?)\s+"
            r"(?P<state>on|off|open|opened|closed|shut|locked|unlocked|running|playing|home|away|docked|cleaning|dry|wet|charging)(?: (?:right )?now| still)?$",
            rest,
        )
        which = re.match(r"^(?:which|what)\s+(?P<body>.+?)\s+(?:is|are)\s+(?P<state>on|off|open|closed|locked|unlocked|running|playing)$", rest)
        if (m or which) and self._has("home_get_state"):
            g = (m or which).groupdict()  # type: ignore[union-attr]
            body = re.sub(r"^(?:there |the |my |any |all |of |the )+", "", g["body"]).strip()
            body = re.sub(r"\b(?:left|still|currently)\b", "", body).strip()
            state = {"opened": "open", "shut": "closed"}.get(g["state"], g["state"])
            args: dict[str, Any] = {"state": state, **place}
            if body and body not in ("anything", "everything", "something"):
                args["name"] = body
            if g.get("all") and g["all"].strip() in ("all", "every"):
                args["every"] = True
            elif re.search(r"\ball\b", s):
                args["every"] = True
            return TolerantMatch("question", [("home_get_state", args)], why="a state question")
        m = re.match(r"^(?:is there|are there) (?:a |any )?(?P<what>leak|smoke|water|motion|someone|anyone|gas|carbon monoxide)\b", rest)
        if m and self._has("home_get_state"):
            dc = {"leak": "moisture", "water": "moisture", "smoke": "smoke", "motion": "motion", "someone": "occupancy", "anyone": "occupancy",
                  "gas": "gas", "carbon monoxide": "carbon_monoxide"}[m.group("what")]
            return TolerantMatch("question", [("home_get_state", {"domain": ["binary_sensor"], "device_class": [dc], "state": "on", **place})],
                                 why="a sensor question")
        # "where is John", "is Ada home", "where is the vacuum"
        m = re.match(r"^(?:where is|wheres|where s|is) (?P<who>[\w ]+?)(?: home| at home)?$", rest)
        if m and self._has("home_get_state"):
            who = m.group("who")
            res = r.resolve(name=who, domain=["person", "vacuum", "device_tracker"])
            if res.ok or res.reason == "ambiguous":
                return TolerantMatch("question", [("home_get_state", {"name": who, "domain": ["person", "vacuum", "device_tracker"]})], why="where someone is")
        # "what is the thermostat set to", "what's the ... at"
        m = re.match(r"^(?:what s|whats|what is|how much|what are) (?:the |my )?(?P<body>.+?)(?: set to| at| reading| showing| now)?$", rest)
        if m and self._has("home_get_state"):
            body = m.group("body")
            body = re.sub(r"^(?:solar|energy) .*", "solar", body)
            res = r.resolve(name=body, **place)
            if res.ok or res.reason == "ambiguous":
                ents = res.entities or res.candidates
                if ents and all(e.domain == "climate" for e in ents) and self._has("home_get_temperature"):
                    return TolerantMatch("question", [("home_get_temperature", {"name": body, **place})], why="a thermostat question")
                return TolerantMatch("question", [("home_get_state", {"name": body, **place})], why="a reading")
        m = re.match(r"^how much (?P<body>.+?) (?:have we|did we|has been|is being)? ?(?:produced|generated|used|made)?$", rest)
        if m and self._has("home_get_state"):
            res = r.resolve(name=m.group("body"))
            if res.ok:
                return TolerantMatch("question", [("home_get_state", {"name": m.group("body")})], why="a reading")
        return None

    # ------------------------------------------------------------------ places

    def _place(self, s: str, r: EntityResolver, names: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
        """Take "in the kitchen", "upstairs", "in here" out of the text, if they name a place."""
        out: dict[str, str] = {}
        names = names or {}
        m = re.search(r"\b(?:in here|here|in this room|in the room)\b", s)
        if m and r.context_area is not None:
            out["area"] = r.context_area.name
            s = (s[: m.start()] + " " + s[m.end() :]).strip()
        m = re.search(r"\b(?:and|an|end) (?:the |my )?(?P<place>[\w ]+)$", s)  # "turn on the light and bedroom one": "in" misheard
        if m is not None:
            cand = _unmask(m.group("place"), names)
            area = r._areas.get(cand) or r._area_owners.get(cand)
            before = _unmask(s[: m.start()], names)
            if area is not None and not any(f" {k} " in f" {before} " for k in r._areas):
                out["area"] = area.name
                s = s[: m.start()].strip()
        starts = [p.start() for p in re.finditer(r"\b(?=(?:in|on|at|of|for|from|across|around|throughout) )", s)]
        for m in [m for m in (_PLACE_PREP.match(s, pos) for pos in starts) if m is not None]:
            if "area" in out or "floor" in out:
                break
            before = s[: m.start()].split()[-1:] or [""]
            if m.group("prep") == "on" and (not m.group("det") or before[0] in ("turn", "switch", "flip", "put", "power", "click")):
                continue  # "switch on bedroom 1's light": a verb's "on", not a place
            words = m.group("place").split()
            # the longest run of words after the preposition that names an area or a floor
            for k in range(len(words), 0, -1):
                cand = _unmask(" ".join(words[:k]), names)
                cand_floor = cand.removesuffix(" floor") if cand.endswith(" floor") else cand
                area = r._areas.get(cand) or r._area_owners.get(cand)
                floor = r._floors.get(cand) or r._floors.get(cand_floor) or r._floors.get(cand + " floor")
                if area is None and floor is None and len(cand) >= 5:
                    area = r.find_area(cand) if k == len(words) else None
                if area is not None or floor is not None:
                    if "area" in out or "floor" in out:
                        break
                    if area is not None:
                        out["area"] = area.name
                    else:
                        out["floor"] = floor.name  # type: ignore[union-attr]
                    start = m.start()
                    end = m.start("place") + len(" ".join(words[:k]))
                    s = (s[:start] + " " + s[end:]).strip()
                    break
        if "area" not in out and "floor" not in out:
            for key, f in r._floors.items():
                if re.search(rf"(?:^| ){re.escape(key)}(?: |$)", s) and key in ("upstairs", "downstairs", "basement", "outside", "outdoors"):
                    out["floor"] = f.name
                    s = re.sub(rf"(?:^| ){re.escape(key)}(?= |$)", " ", s).strip()
                    break
        if "area" not in out and "floor" not in out and re.search(r"\b(?:outside|outdoors)\b", s):
            area = r._areas.get("outside")
            floor = r._floors.get("outside")
            if area is not None or floor is not None:
                out["area" if area is not None else "floor"] = (area or floor).name  # type: ignore[union-attr]
                s = re.sub(r"\b(?:outside|outdoors)\b", " ", s).strip()
        return out, re.sub(r"\s+", " ", s).strip()

    # ------------------------------------------------------------------ commands

    def _command(self, s: str, r: EntityResolver) -> TolerantMatch | None:
        if re.search(r"\b(?:timer|alarm|remind|minutes?|seconds?|hours?)\b", s):
            return None  # timers belong to the templates and the LLM
        masked, names = _mask(s, r)
        place, masked = self._place(masked, r, names)
        if not place:
            m = re.search(r"\bin (?:the |my |our )?(?P<where>[a-z][\w ]{2,30})$", masked)
            if m is not None and not re.search(r"\b(?:percent|degrees?|here|mode)\b", m.group("where")):
                where = _unmask(m.group("where"), names)
                said = r.resolve(name=where)
                known = r.find_area(where) or r.find_floor(where) or (said.reason in ("ok", "ambiguous") and said.how in ("exact", "fuzzy", "id", "place"))
                if not known:
                    return None  # "in man room one": a place this home does not have, or a misheard one; never "here" instead
        values, masked = _values(masked)
        mode, masked = _modes(masked)
        cues: list[str] = []
        rest = masked
        for pattern, cue in _CUES:
            m = pattern.search(rest)
            while m:
                cues.append(cue)
                if m.groupdict().get("v") is not None:
                    rest = (rest[: m.start("v")] + " " + rest[m.end("v") : m.start("p")] + " " + rest[m.end("p") :]).strip()
                else:
                    rest = (rest[: m.start()] + " " + rest[m.end() :]).strip()
                rest = re.sub(r"\s+", " ", rest)
                m = pattern.search(rest)
        target = _unmask(_target_words(rest), names)
        return self._decide(cues, values, mode, target, target, place, r, _unmask(masked, names))


    def _resolve(self, r: EntityResolver, target: str, place: dict[str, str], domains: list[str] | None, verb: str | None = None,
                 plural: bool | None = None) -> Resolution:
        return r.resolve(name=target or None, domain=domains, verb=verb, plural=plural, **place)

    def _decide(self, cues: list[str], v: _Values, mode: str | None, target: str, mode_target: str, place: dict[str, str],
                r: EntityResolver, text: str) -> TolerantMatch | None:
        c = set(cues)
        self._explicit = bool(c & _DEVICE_VERBS)
        if c & {"set", "turn_on", "start"} and " to " in f" {target} ":
            src = self._source(target, place, r)
            if src is not None:
                return src
        has_value = any(x is not None for x in (v.percent, v.degrees, v.relative_degrees, v.number, v.speed, v.color, v.white))
        if not c and not has_value and mode is None:
            # "movie night", "relax mode": the name of a scene or script alone
            if target:
                res = self._resolve(r, target, place, ["scene", "script"])
                if res.ok and len(res.entities) == 1 and res.how in ("exact", "partial", "fuzzy", "place"):
                    return self._call("turn_on", "home_turn_on", {"name": target, **place}, "a scene or script by name")
            return None
        # which devices does the target mean, whatever the action? (decides what a value is for)
        domains_of = _domains(self._resolve(r, target, place, None)) if target else set()

        def first(*pairs: tuple[bool, Callable[[], TolerantMatch | None]]) -> TolerantMatch | None:
            for cond, fn in pairs:
                if cond:
                    out = fn()
                    if out is not None:
                        return out
            return None

        climate_words = bool(re.search(r"\b(?:thermostat|heating|heat|ac|air con|aircon|air conditioning|heat pump|hvac|air conditioner)\b", text))
        return first(
            # vacuums
            ("clean" in c or ("start" in c and _only(domains_of, "vacuum")) or ("dock" in c) or ("locate" in c)
             or (_only(domains_of, "vacuum") and bool(c & {"pause", "stop", "turn_on", "turn_off", "set"})),
             lambda: self._vacuum(c, target, place, r)),
            # media
            (bool(c & {"next", "previous", "mute", "unmute", "pause", "resume", "volume", "louder", "quieter"})
             or (_only(domains_of, "media_player") and (v.percent is not None or v.number is not None or bool(c & {"up", "down"}))),
             lambda: self._media(c, v, target, place, r, text)),
            # water
            ("water" in c or "close_water" in c, lambda: self._water(c, target, place, r)),
            # climate
            (mode is not None and (_only(domains_of, "climate") or not mode_target or _kind_only(mode_target, "climate") or climate_words),
             lambda: self._hvac(mode, mode_target, place, r)),  # type: ignore[arg-type]
            (bool(c & {"warmer", "cooler"}) and not _only(domains_of, "light"), lambda: self._climate_step(c, v, target, place, r)),
            (v.degrees is not None or v.relative_degrees is not None or ("heat_verb" in c and (v.number is not None or v.percent is not None)),
             lambda: self._climate_value(c, v, target, place, r)),
            ((_only(domains_of, "climate") or (climate_words and not domains_of)) and (v.number is not None or v.percent is not None or bool(c & {"up", "down"})),
             lambda: self._climate_value(c, v, target, place, r)),
            ((_only(domains_of, "climate") or (climate_words and not domains_of)) and "turn_off" in c, lambda: self._hvac("off", target, place, r)),
            # fans
            (bool(c & {"oscillate", "reverse"}) or v.speed is not None
             or (_only(domains_of, "fan") and (bool(c & {"faster", "slower", "up", "down"}) or v.percent is not None or v.number is not None)),
             lambda: self._fan(c, v, target, place, r)),
            (bool(c & {"faster", "slower"}), lambda: self._fan(c, v, target, place, r)),
            # lights
            ("too_dark" in c, lambda: self._checked("turn_on", "home_turn_on", {**({"name": target} if target else {"domain": ["light"]}), **place},
                                                     "it is too dark", r, None if target else ["light"], verb="turn_on")),
            (bool(c & {"too_bright", "dim", "brighten"}) or v.color is not None or v.white is not None
             or (_only(domains_of, "light") and "turn_off" not in c  # "turn off the lights on the 2nd 4" (Whisper's "second floor") sets no brightness
                 and (v.percent is not None or v.number is not None or bool(c & {"warmer", "cooler", "up", "down"}))),
             lambda: self._light(c, v, target, place, r)),
            # scenes, scripts, buttons
            (_only(domains_of, "scene", "script", "button") and bool(c & {"start", "turn_on", "set"}), lambda: self._call("turn_on", "home_turn_on", {"name": target, **place}, "activate")),
            # covers, valves, locks
            (bool(c & {"lock", "lock_up"}), lambda: self._lock(True, c, target, place, r)),
            ("unlock" in c, lambda: self._lock(False, c, target, place, r)),
            (bool(c & {"open", "close"}) or (v.percent is not None and bool(domains_of & {"cover", "valve"})), lambda: self._openclose(c, v, target, place, r, text)),
            ("stop" in c and _only(domains_of, "media_player"), lambda: self._media({"pause"}, v, target, place, r, text)),  # "stop the music": pause, as Home Assistant does
            ("stop" in c and bool(domains_of & {"cover", "valve", "vacuum"}), lambda: self._call("stop", "home_stop", {"name": target, **place}, "stop")),
            ("stop" in c and not target, lambda: self._media({"pause"}, v, target, place, r, text)),
            # on / off
            (bool(c & {"turn_on", "start"}), lambda: self._onoff("turn_on", target, place, r, c)),
            (bool(c & {"turn_off", "stop"}), lambda: self._onoff("turn_off", target, place, r, c)),
            ("toggle" in c and bool(target), lambda: self._onoff("toggle", target, place, r, c)),
            # a value with a set word: "set the office to 60 percent"
            ("set" in c and (v.percent is not None or v.number is not None), lambda: self._set_value(v, target, place, r)),
            (bool(c & {"up", "down"}) and not target, lambda: self._media(c, v, target, place, r, text)),
        )

    # ------------------------------------------------------------------ builders

    def _call(self, intent: str, tool: str, args: dict[str, Any], why: str) -> TolerantMatch | None:
        if not self._has(tool):
            return None
        return TolerantMatch(intent, [(tool, {k: v for k, v in args.items() if v not in (None, "", [])})], why=why)

    def _checked(self, intent: str, tool: str, args: dict[str, Any], why: str, r: EntityResolver, domains: list[str] | None,
                 verb: str | None = None, plural: bool | None = None) -> TolerantMatch | None:
        """The call, if its target resolves (or asks which one); the reason to say when no such device exists."""
        res = r.resolve(name=args.get("name"), area=args.get("area"), floor=args.get("floor"), domain=domains or args.get("domain"), verb=verb, plural=plural)
        if res.ok or res.reason == "ambiguous":
            return self._call(intent, tool, args, why)
        if args.get("name") and res.reason in ("no_name", "no_kind"):
            if not self._explicit or len(str(args["name"]).split()) > 4:
                return None  # no device verb, or a long phrase: not clearly about a device; the LLM may know
            return TolerantMatch(intent, [], reply=_sorry(res), why=f"{why}; no such device")
        if res.reason in ("no_area", "no_floor", "no_kind"):
            return TolerantMatch(intent, [], reply=_sorry(res), why=f"{why}; {res.reason}")
        return None

    def _onoff(self, verb: str, target: str, place: dict[str, str], r: EntityResolver, cues: set[str]) -> TolerantMatch | None:
        tool = {"turn_on": "home_turn_on", "turn_off": "home_turn_off", "toggle": "home_toggle"}[verb]
        if not target and not place:
            return None
        args: dict[str, Any] = {**place}
        if target:
            args["name"] = target
        else:
            args["domain"] = ["light"]  # "lights off in here" without the word: "turn off in the kitchen" means the lights
        if target and _is_everything(target):
            args.pop("name")
            args["domain"] = ["light", "switch", "fan", "media_player", "input_boolean"]
        if verb == "turn_on" and "start" in cues and target:
            ds = _domains(self._resolve(r, target, place, None, verb))
            if ds and ds <= {"lock", "cover"}:
                return None  # "start the garage door"? not a thing to guess at
        return self._checked(verb, tool, args, f"{verb.replace('_', ' ')} {target or args.get('domain')}", r, None, verb=verb)

    def _lock(self, lock: bool, cues: set[str], target: str, place: dict[str, str], r: EntityResolver) -> TolerantMatch | None:
        args: dict[str, Any] = {**place, "domain": ["lock"]}
        if target and not _is_everything(target):
            args["name"] = target
        verb = "turn_on" if lock else "turn_off"
        plural = True if ("lock_up" in cues and not target) or (target and _is_everything(target)) else None
        return self._checked("lock" if lock else "unlock", "home_turn_on" if lock else "home_turn_off", args, "lock" if lock else "unlock", r, ["lock"],
                             verb=verb, plural=plural)

    def _openclose(self, c: set[str], v: _Values, target: str, place: dict[str, str], r: EntityResolver, text: str = "") -> TolerantMatch | None:
        opening = "open" in c and "close" not in c
        args: dict[str, Any] = {**place, "domain": ["cover", "valve"]}
        if target:
            args["name"] = target
        pct = v.percent if v.percent is not None else v.number
        if pct is None and re.search(r"\b(?:a bit|a little|slightly|partly|partially|part of the way|a touch|some more)\b", text):
            res = r.resolve(name=args.get("name"), area=args.get("area"), floor=args.get("floor"), domain=["cover", "valve"], plural=False)
            if res.ok and len(res.entities) == 1 and res.entities[0].attributes.get("current_position") is not None:
                now = int(res.entities[0].attributes["current_position"])
                position = max(0, min(100, now + (25 if opening else -25)))
                return self._checked("set_position", "home_set_position", {**args, "position": position}, "a bit more open or closed", r,
                                     ["cover", "valve"], verb="open" if opening else "close")
        if pct is not None:
            position = int(pct) if opening or "close" not in c else int(100 - pct)
            return self._checked("set_position", "home_set_position", {**args, "position": position}, "set a position", r, ["cover", "valve"],
                                 verb="open" if opening else "close")
        verb = "turn_on" if opening else "turn_off"
        return self._checked("open" if opening else "close", "home_turn_on" if opening else "home_turn_off", args, "open" if opening else "close", r,
                             ["cover", "valve"], verb=verb)

    def _light(self, c: set[str], v: _Values, target: str, place: dict[str, str], r: EntityResolver) -> TolerantMatch | None:
        args: dict[str, Any] = {**place}
        if target:
            args["name"] = target
        pct = v.percent if v.percent is not None else v.number
        if pct is not None:
            args["brightness"] = int(pct)
        elif c & {"dim", "too_bright", "down"}:
            args["brightness_step"] = -25
        elif c & {"brighten", "up"}:
            args["brightness_step"] = 25
        if v.color:
            args["color"] = v.color
        if v.white:
            args["color"] = v.white
        elif "warmer" in c:
            args["color_temp_step"] = -500
        elif "cooler" in c:
            args["color_temp_step"] = 500
        if not any(k in args for k in ("brightness", "brightness_step", "color", "color_temp_step")):
            return None
        return self._checked("light_set", "home_set_light", args, "set a light", r, ["light"])

    def _fan(self, c: set[str], v: _Values, target: str, place: dict[str, str], r: EntityResolver) -> TolerantMatch | None:
        args: dict[str, Any] = {**place, "name": target or "fan"}
        pct = v.percent if v.percent is not None else v.number
        if pct is not None:
            args["percentage"] = int(pct)
        elif v.speed:
            args["speed"] = v.speed
        elif c & {"faster", "up"}:
            args["step"] = 1
        elif c & {"slower", "down"}:
            args["step"] = -1
        if "oscillate" in c:
            args["oscillating"] = not bool(c & {"stop", "turn_off"})
        if "reverse" in c:
            args["direction"] = "reverse"
        if not any(k in args for k in ("percentage", "speed", "step", "oscillating", "direction")):
            return None
        return self._checked("fan_set", "home_set_fan", args, "set a fan", r, ["fan"], verb="turn_on")

    def _climate_step(self, c: set[str], v: _Values, target: str, place: dict[str, str], r: EntityResolver) -> TolerantMatch | None:
        step = v.relative_degrees or v.degrees or 1.0
        if "cooler" in c:
            step = -step
        args: dict[str, Any] = {**place, "change": step}
        if target and not _kind_only(target, "climate"):
            args["name"] = target
        return self._checked("climate_step", "home_set_temperature", args, "warmer or cooler", r, ["climate"], plural=False)

    def _climate_value(self, c: set[str], v: _Values, target: str, place: dict[str, str], r: EntityResolver) -> TolerantMatch | None:
        args: dict[str, Any] = {**place}
        if target and not _kind_only(target, "climate"):
            args["name"] = target
        if v.relative_degrees is not None or (v.degrees is None and v.number is None and bool(c & {"up", "down"})):
            step = v.relative_degrees or 1.0
            args["change"] = -step if c & {"down", "cooler"} else step
        else:
            value = v.degrees if v.degrees is not None else v.number if v.number is not None else v.percent
            if value is None:
                return None
            args["temperature"] = value
        return self._checked("climate_set", "home_set_temperature", args, "set a temperature", r, ["climate"], plural=False)

    def _hvac(self, mode: str, target: str, place: dict[str, str], r: EntityResolver) -> TolerantMatch | None:
        args: dict[str, Any] = {**place, "mode": mode}
        if target and not _kind_only(target, "climate"):
            args["name"] = target
        return self._checked("hvac_mode", "home_set_hvac_mode", args, f"HVAC mode {mode}", r, ["climate"], plural=False)

    def _media(self, c: set[str], v: _Values, target: str, place: dict[str, str], r: EntityResolver, text: str) -> TolerantMatch | None:
        args: dict[str, Any] = {**place}
        if target and target not in ("music", "song", "track", "sound", "volume", "tune", "this song"):
            args["name"] = target
        if "mute" in c or "unmute" in c:
            return self._checked("mute", "home_mute", {**args, "muted": "mute" in c and "unmute" not in c}, "mute", r, ["media_player"], verb="turn_off")
        pct = v.percent if v.percent is not None else v.number
        if pct is not None and ("volume" in c or _is_media(args.get("name"), r) or "set" in c):
            return self._checked("volume_set", "home_set_volume", {**args, "volume": int(pct)}, "set the volume", r, ["media_player"], verb="turn_off")
        if c & {"louder", "quieter", "up", "down"}:
            step = 10 if c & {"louder", "up"} else -10
            return self._checked("volume_step", "home_set_volume", {**args, "step": step}, "volume up or down", r, ["media_player"], verb="turn_off")
        for cue, action in (("next", "next"), ("previous", "previous"), ("pause", "pause"), ("resume", "resume")):
            if cue in c:
                verb = "turn_on" if action == "resume" else "turn_off"
                return self._checked(action, "home_media", {**args, "action": action}, action, r, ["media_player"], verb=verb)
        return None

    def _source(self, target: str, place: dict[str, str], r: EntityResolver) -> TolerantMatch | None:
        """ "switch the TV to Netflix": a media player and one of its sources."""
        from rapidfuzz import fuzz, process  # noqa: PLC0415

        if not self._has("home_select_source"):
            return None
        name, _, source = target.rpartition(" to ")
        source = re.sub(r"^(?:the|a) ", "", source.strip())
        name = name.strip()
        res = r.resolve(name=name or None, domain=["media_player"], plural=False, verb="turn_off", **place)
        ents = res.entities or res.candidates
        if not ents or not source:
            return None
        sources = {normalize(x): x for e in ents for x in e.attributes.get("source_list") or []}
        if not sources or process.extractOne(source, list(sources), scorer=fuzz.WRatio, score_cutoff=80) is None:
            return None
        args = {**place, "source": source} | ({"name": name} if name else {})
        return self._call("select_source", "home_select_source", args, "switch a source")

    def _vacuum(self, c: set[str], target: str, place: dict[str, str], r: EntityResolver) -> TolerantMatch | None:
        args: dict[str, Any] = {}
        if target and target not in ("flat", "house", "apartment", "floor", "home", "place"):
            args["name"] = target
        if "dock" in c:
            action = "return_to_base"
        elif "locate" in c:
            action = "locate"
        elif "pause" in c:
            action = "pause"
        elif c & {"stop", "turn_off"}:
            action = "stop"
        else:
            action = "start"
        if place and "name" not in args:
            # "start vacuuming downstairs": the vacuum there, else the vacuum called like the place
            res = r.resolve(domain=["vacuum"], plural=True, **place)
            if res.ok and res.entities and "area" in place:
                args["area"] = place["area"]
            elif res.ok and len(res.entities) == 1:
                args["name"] = res.entities[0].id
            else:
                args["name"] = place.get("area") or place.get("floor")
        return self._checked(f"vacuum_{action}", "home_vacuum", {**args, "action": action}, f"vacuum {action}", r, ["vacuum"],
                             verb="start" if action == "start" else "turn_off")

    def _water(self, c: set[str], target: str, place: dict[str, str], r: EntityResolver) -> TolerantMatch | None:
        opening = "close_water" not in c
        args: dict[str, Any] = {**place, "domain": ["valve"]}
        if target and target not in ("lawn", "garden", "plants", "grass", "yard", "water"):
            args["name"] = target
        elif target in ("garden", "lawn", "yard") and not place:
            area = r.find_area(target)
            if area is not None:
                args["area"] = area.name
        tool = "home_turn_on" if opening else "home_turn_off"
        return self._checked("open" if opening else "close", tool, args, "water", r, ["valve"], verb="turn_on" if opening else "turn_off", plural=False)

    def _set_value(self, v: _Values, target: str, place: dict[str, str], r: EntityResolver) -> TolerantMatch | None:
        value = v.number if v.number is not None else v.percent
        if not target or value is None:
            return None
        ds = _domains(self._resolve(r, target, place, None))
        if ds & {"input_number", "number"}:
            return self._call("set_value", "home_set_value", {"name": target, "value": value, **place}, "set a number")
        if "light" in ds:
            return self._checked("light_set", "home_set_light", {"name": target, "brightness": int(value), **place}, "set a light", r, ["light"], verb="turn_on")
        return None


# ---------------------------------------------------------------------------- helpers

_DEVICE_VERBS = frozenset(("turn_on", "turn_off", "open", "close", "lock", "unlock", "lock_up", "dim", "brighten", "mute", "unmute", "pause", "resume",
                           "next", "previous", "clean", "dock", "oscillate", "reverse", "faster", "slower", "too_dark", "too_bright", "water", "close_water"))
"""Cues that say a device is meant: only after one of these is "I couldn't find the X" the answer."""

_CUE_WORDS = frozenset("""on off up down back home open close shut lock unlock start stop play pause next previous set turn switch get light mute
run water fill dock clean cleaning heat cool warm dim bright swing reverse end go put make kill skip find where party mode night hold
continue resume fire press ring hit raise lower lift draw extend retract roll pull send tell return base charger volume too""".split())


def _mask(s: str, r: EntityResolver) -> tuple[str, dict[str, str]]:
    """Hide the home's names that contain action words ("Back Garden", "Leaving Home", "Play
    Corner") behind placeholders, so the words are read as a name and not as an action."""
    phrases: set[str] = set(r._areas) | set(r._floors) | {n for n, _e in r._names}
    risky = sorted((p for p in phrases if p and len(p.split()) >= 2 and set(p.split()) & _CUE_WORDS), key=len, reverse=True)
    names: dict[str, str] = {}
    for p in risky:
        pattern = re.compile(rf"(?<!\S){re.escape(p)}(?!\S)")
        if pattern.search(s):
            key = f"zq{len(names)}q"
            names[key] = p
            s = pattern.sub(key, s)
    return s, names


def _unmask(s: str, names: dict[str, str]) -> str:
    for key, value in names.items():
        s = s.replace(key, value)
    return s


def _target_words(s: str) -> str:
    words = s.split()
    while words and words[0] in _FILLER and words[0] not in _KEEP_WORDS:
        words = words[1:]
    while words and words[-1] in _FILLER and words[-1] not in _KEEP_WORDS:
        words = words[:-1]
    return " ".join(words)


def _domains(res: Resolution) -> set[str]:
    return {e.domain for e in (res.entities or res.candidates)}


def _only(domains: set[str], *allowed: str) -> bool:
    return bool(domains) and domains <= set(allowed)


def _kind(target: str, skip: tuple[str, ...] = ("the", "my", "a")):
    """The device kind (:data:`~assistant.home.vocabulary.KIND_WORDS`) ``target``'s words name,
    without the words in ``skip`` ("the lights" → light), or None."""
    from ..home.text import singular  # noqa: PLC0415
    from ..home.vocabulary import KIND_WORDS  # noqa: PLC0415

    return KIND_WORDS.get(" ".join(singular(w) for w in target.split() if w not in skip))


def _kind_name(args: dict[str, Any]) -> bool:
    """Whether a call names its target by a device kind alone ("light", "the lights"), with no area or floor."""
    name = args.get("name")
    return isinstance(name, str) and "area" not in args and "floor" not in args and _kind(normalize(name), ("the", "my", "a", "all")) is not None


def _kind_only(target: str, domain: str) -> bool:
    kind = _kind(target)
    return kind is not None and domain in kind.domains


def _names_something(item: str, r: EntityResolver) -> bool:
    """The words name a device, a room or a kind of device, or say on/off: a command, not an item to buy."""
    words = item.split()
    if words and words[-1] in ("on", "off", "up", "down", "open", "closed", "light", "lights"):
        return True
    if r.find_area(item) is not None:
        return True
    res = r.resolve(name=item)
    return res.ok and res.how in ("exact", "place", "kind", "id")


def _is_media(name: str | None, r: EntityResolver) -> bool:
    if not name:
        return True
    res = r.resolve(name=name, domain=["media_player"])
    return res.ok or res.reason == "ambiguous"


def _is_everything(target: str) -> bool:
    return target in ("everything", "all", "all devices", "every device", "everything else", "all of it", "the lot")


def _sorry(res: Resolution) -> str:
    return res.message or "I couldn't find that device."


def _original_words(item: str) -> str:
    return item.strip()


def _past_to_item(pre: str) -> str:
    """ "I watered the plants" → "watered the plants" (the list matches tolerantly); "I got the bread" → "bread"."""
    pre = pre.strip()
    pre = re.sub(r"^(?:i|we)(?: ve| have| just| already)* ", "", pre)
    pre = re.sub(r"^(?:got|bought|picked up|fetched|grabbed|done|did|finished) (?:the |some )?", "", pre)
    return pre.strip()


def vocabulary() -> frozenset[str]:
    """Every word this tier's patterns and word lists name (two letters or more, and "a", "i"):
    the tolerant tier's side of the home's grammar, for recognition constrained to it
    (:meth:`assistant.controller.rescore.TranscriptRescorer.vocabulary`)."""
    return words_in([v for k, v in globals().items() if k.startswith("_") and k.lstrip("_").isupper()])
