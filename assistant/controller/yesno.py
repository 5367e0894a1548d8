"""Reading a spoken or typed answer to a yes/no question: yes, no, or unclear.

Confirmations guard unlocking, disarming, opening the garage and sending a request off the
device, so the answer is parsed with a grammar (hassil sentence templates, the same engine as the
fast path) that must match the *whole* answer: "absolutely not", "that's not correct", "I'm not
sure" and "are you sure?" are not yes. Anything the templates do not cover is ``unclear``; the
dialog then asks once more and, still unclear, refuses.
"""

from __future__ import annotations

import enum
import functools
import re

__all__ = ["Answer", "parse_yes_no"]


class Answer(str, enum.Enum):
    YES = "yes"
    NO = "no"
    UNCLEAR = "unclear"


_FILLER = "[(oh|well|um|uh|er|ok|okay|so|hey|jarvis|hey jarvis)] "
_POLITE = " [(please|thanks|thank you|jarvis|mate|then|now)]"

_YES = [
    "(yes|yeah|yep|yup|yah|ya|aye|yes yes|yeah yeah|sure|sure thing|certainly|definitely|absolutely|of course|indeed|affirmative|correct|right|that's right|that is right|"
    "that's correct|that is correct|exactly|ok|okay|alright|all right|fine|uh huh|mm hmm|you bet|why not|please|please do|yes please|do it|do that|"
    "go ahead|go for it|go on|proceed|confirm|confirmed|i confirm|i'm sure|i am sure|yes i'm sure|yes i am sure|let's do it|let's go|make it so|"
    "sounds good|that's fine|that is fine|i do|yes i do|yes do it|yes go ahead|yeah go ahead|yeah do it|ok do it|okay do it|sure go ahead|"
    "yes unlock it|yes open it|yes lock it|yes send it|yes ask it|yes, please)",
]
_NO = [
    "(no|nope|nah|no no|no no no|nope nope|no thanks|no thank you|not now|not yet|not really|negative|don't|do not|don't do it|don't do that|do not do that|"
    "no don't|no do not|no don't do it|cancel|cancel that|cancel it|stop|stop it|abort|never mind|nevermind|forget it|forget about it|leave it|"
    "leave it alone|absolutely not|definitely not|certainly not|of course not|no way|no chance|not at all|that's not right|that is not right|"
    "that's not correct|that is not correct|that's wrong|that is wrong|wrong|hold on|wait|wait a second|wait a minute|i changed my mind|"
    "i don't think so|i do not think so|better not|rather not|i'd rather not|i would rather not|no i don't|no i'm not sure|please don't|"
    "please do not|don't unlock it|don't open it|don't send it|keep it locked|keep it closed|keep it on the device)",
]


@functools.lru_cache(maxsize=1)
def _intents():
    from hassil import Intents  # noqa: PLC0415

    def sentences(templates: list[str]) -> list[str]:
        return [_FILLER + t + _POLITE for t in templates]

    return Intents.from_dict({"language": "en", "intents": {
        "Yes": {"data": [{"sentences": sentences(_YES)}]},
        "No": {"data": [{"sentences": sentences(_NO)}]},
    }})


def _clean(text: str) -> str:
    t = text.casefold().replace("’", "'")
    t = re.sub(r"[^\w\s']", " ", t)
    return re.sub(r"\s+", " ", t).strip()


def parse_yes_no(text: str) -> Answer:
    """Yes, no or unclear, by the whole answer (see the module docstring).

    Examples: "yes please" → YES; "go ahead" → YES; "no, don't" → NO; "absolutely not" → NO;
    "I'm not sure" → UNCLEAR; "are you sure?" → UNCLEAR; "" → UNCLEAR.
    """
    from hassil import recognize  # noqa: PLC0415

    t = _clean(text)
    if not t:
        return Answer.UNCLEAR
    if text.strip().endswith("?"):
        return Answer.UNCLEAR  # a question back ("are you sure?", "which door?") is not an answer
    result = recognize(t, _intents())
    if result is None:
        return Answer.UNCLEAR
    return Answer.YES if result.intent.name == "Yes" else Answer.NO
