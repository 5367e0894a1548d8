"""Desensitising what leaves the device: personal data → placeholders, mapped back locally.

Before a request goes to a remote model, :class:`Redactor` replaces

* the home's device, area and floor names, and entity ids (``<DEVICE_1>``, ``<AREA_1>``, ``<ENTITY_1>``),
* people's names (person entities, and ``remote.private_terms`` from the config), whole or any
  part of them, in any order, with any spacing ("Alice Smith", "Smith, Alice", "alice") (``<PERSON_1>``),
* e-mail addresses, also spelled out ("alice at example dot com") (``<EMAIL_1>``),
* phone numbers with or without separators, national or international (``phonenumbers``, the
  port of Google's libphonenumber, for every number it finds valid; and any run of 7–15 digits,
  since a false alarm costs less than a leak) (``<PHONE_1>``),
* payment card numbers (13–19 digits passing the Luhn check) (``<CARD_1>``),
* street addresses in any case ("12 elm street", "12 Elm St.") (``<ADDRESS_1>``),
* coordinates, IPv4 and IPv6 addresses (``<LOCATION_1>``, ``<IP_1>``),

in the request, in the tool schemas sent with it, and in tool results sent back. The remote
model can still use the tools (``home_turn_on(name="<DEVICE_1>")``): placeholders in its answer
and its tool arguments are replaced by the real values on the way back, on the device.

Presidio (Microsoft's PII framework) was evaluated for this: its recognisers for these patterns
are regular expressions and ``phonenumbers`` as here, and its name detection needs a spaCy
language model that is downloaded from GitHub at install time, which a device that must work
offline cannot rely on; people's names are instead known (person entities, ``private_terms``).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Iterable

__all__ = ["Redactor"]

_STREET = (r"street|st|road|rd|avenue|ave|lane|ln|drive|dr|boulevard|blvd|way|court|ct|place|pl|square|sq|terrace|close|crescent|cres|"
           r"grove|gardens|gdns|hill|parkway|pkwy|highway|hwy|row|mews|walk")
_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("EMAIL", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("EMAIL", re.compile(r"\b[\w.+-]+\s*(?:\(at\)|\[at\]|\bat\b)\s*[\w-]+(?:\s*(?:\(dot\)|\[dot\]|\bdot\b)\s*[\w-]+)+\b", re.I)),
    ("LOCATION", re.compile(r"-?\b\d{1,3}\.\d{3,}\s*[,;]\s*-?\d{1,3}\.\d{3,}\b")),
    ("IP", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")),
    ("IP", re.compile(r"(?<![\w:])(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?![\w:])", re.I)),
    ("ADDRESS", re.compile(rf"\b\d{{1,5}}[a-z]?\s+(?:[a-z][\w'-]*\.?\s+){{1,3}}(?:{_STREET})\b\.?", re.I)),
    ("CARD", re.compile(r"(?<![\w.])\d(?:[ -]?\d){12,18}(?![\w.])")),
    ("PHONE", re.compile(r"(?<![\w.])\+?\(?\d(?:[\s().-]{0,2}\d){6,14}(?![\w.])")),
]
_NOT_A_PHONE = re.compile(r"^\s*(?:%|percent|degrees?|°|minutes?|seconds?|hours?|days?|km|kilomet|miles?|kg|grams?|ml|litres?|liters?)", re.I)
_PHONE_REGIONS = ("US", "GB", "DE", "FR", "NL", "ES", "IT", "AU", "CA", "IN")


def _luhn(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _plausible(kind: str, value: str, after: str) -> bool:
    digits = re.sub(r"\D", "", value)
    if kind == "CARD":
        return 13 <= len(digits) <= 19 and _luhn(digits)
    if kind == "PHONE":
        return 7 <= len(digits) <= 15 and not _NOT_A_PHONE.match(after)
    if kind == "IP" and ":" in value:
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            return False
        return value.count(":") >= 2 and any(c.isdigit() or c in "abcdefABCDEF" for c in value.replace(":", ""))
    if kind == "IP":
        return all(0 <= int(p) <= 255 for p in value.split("."))
    return True


def _phone_spans(text: str) -> list[tuple[int, int]]:
    """Numbers libphonenumber finds valid in any of a few regions."""
    try:
        import phonenumbers  # noqa: PLC0415
    except ImportError:  # the pattern above still catches 7–15 digit runs
        return []
    spans = set()
    for region in _PHONE_REGIONS:
        for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
            spans.add((m.start, m.end))
    return sorted(spans)


class Redactor:
    """One request's placeholders.

    Args:
        devices: Device names and aliases to hide.
        areas: Area and floor names to hide.
        entity_ids: Entity ids to hide.
        people: Names of people to hide (each part of a name is hidden too: "Alice Smith" hides
            "Alice" and "Smith").
    """

    def __init__(
        self,
        devices: Iterable[str] = (),
        areas: Iterable[str] = (),
        entity_ids: Iterable[str] = (),
        people: Iterable[str] = (),
    ) -> None:
        self._forward: dict[str, str] = {}
        self._back: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        terms: list[tuple[str, str]] = []
        people = [" ".join(str(p).split()) for p in people]
        for kind, values in (("ENTITY", entity_ids), ("DEVICE", devices), ("AREA", areas), ("PERSON", people)):
            for v in values:
                v = " ".join(str(v).split())
                if len(v) >= 2:
                    terms.append((kind, v))
        for p in people:  # parts of a person's name, and the name the other way round
            parts = [w.strip(",.") for w in p.split() if len(w.strip(",.")) >= 3 and w[:1].isalpha()]
            if len(parts) >= 2:
                terms.append(("PERSON", f"{parts[-1]} {' '.join(parts[:-1])}"))
                terms.append(("PERSON", f"{parts[-1]}, {' '.join(parts[:-1])}"))
            terms.extend(("PERSON", w) for w in parts if len(parts) >= 2)
        # longest first, so "Living Room Lamp" wins over "Living Room"
        terms.sort(key=lambda kv: -len(kv[1]))
        self._terms = terms
        self._term_re = (
            re.compile("|".join(rf"(?<![\w<]){_spaced(v)}(?![\w>])" for _, v in terms), re.IGNORECASE) if terms else None
        )
        self._kind_of = {_key(v): k for k, v in reversed(terms)}

    def _placeholder(self, kind: str, value: str) -> str:
        key = _key(value)
        if key in self._forward:
            return self._forward[key]
        self._counts[kind] = self._counts.get(kind, 0) + 1
        ph = f"<{kind}_{self._counts[kind]}>"
        self._forward[key] = ph
        self._back[ph] = value
        return ph

    def redact(self, text: str) -> str:
        """Text with personal data replaced by placeholders."""
        spans = _phone_spans(text)
        for start, end in reversed(spans):
            text = text[:start] + self._placeholder("PHONE", text[start:end]) + text[end:]
        for kind, pattern in _PATTERNS:
            text = pattern.sub(
                lambda m, k=kind: self._placeholder(k, m.group(0)) if _plausible(k, m.group(0), m.string[m.end():]) else m.group(0), text)
        if self._term_re is not None:
            text = self._term_re.sub(lambda m: self._placeholder(self._kind_of.get(_key(m.group(0)), "PERSON"), m.group(0)), text)
        return text

    def redact_value(self, value: Any) -> Any:
        """Redact strings inside JSON-like data (tool schemas, enums, tool results)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            return [self.redact_value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.redact_value(v) for k, v in value.items()}
        return value

    def restore(self, value: Any) -> Any:
        """Placeholders in text or JSON-like data → the real values (on the device)."""
        if isinstance(value, str):
            return re.sub(r"<[A-Z]+_\d+>", lambda m: self._back.get(m.group(0), m.group(0)), value)
        if isinstance(value, list):
            return [self.restore(v) for v in value]
        if isinstance(value, dict):
            return {k: self.restore(v) for k, v in value.items()}
        return value

    @property
    def mapping(self) -> dict[str, str]:
        """Placeholder → real value (kept on the device, never sent)."""
        return dict(self._back)


def _key(value: str) -> str:
    return " ".join(value.casefold().replace(",", " ").split())


def _spaced(term: str) -> str:
    """A regex for a term with any run of whitespace (and an optional comma) between its words."""
    return r"[\s,]+".join(re.escape(w) for w in term.replace(",", " ").split())
