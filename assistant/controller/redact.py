"""Desensitising what leaves the device: personal data → placeholders, mapped back locally.

Before a request goes to a remote model, :class:`Redactor` replaces

* the home's device, area and floor names, and entity ids (``<DEVICE_1>``, ``<AREA_1>``, ``<ENTITY_1>``),
* people's names (person entities, and ``remote.private_terms`` from the config) (``<PERSON_1>``),
* e-mail addresses, phone numbers, street addresses, coordinates and IP addresses
  (``<EMAIL_1>``, ``<PHONE_1>``, ``<ADDRESS_1>``, ``<LOCATION_1>``, ``<IP_1>``),

in the request and in the tool schemas sent with it. The remote model can still use the tools
(``home_turn_on(name="<DEVICE_1>")``): placeholders in its answer and its tool arguments are
replaced by the real values on the way back, on the device.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

__all__ = ["Redactor"]

_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("EMAIL", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("IP", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")),
    ("LOCATION", re.compile(r"-?\b\d{1,3}\.\d{3,}\s*[,;]\s*-?\d{1,3}\.\d{3,}\b")),
    ("PHONE", re.compile(r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]?\d{2,4}){2,4}(?![\w.])")),
    ("ADDRESS", re.compile(
        r"\b\d{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Drive|Dr|Boulevard|Blvd|Way|Court|Ct|Place|Pl|Square|Sq|Terrace)\b\.?"
    )),
]


def _plausible(kind: str, value: str) -> bool:
    """Phone numbers need 7+ digits and a separator or a leading +; plain numbers are left alone."""
    if kind == "PHONE":
        digits = sum(c.isdigit() for c in value)
        return digits >= 7 and (value.strip().startswith("+") or any(c in value for c in " .-()"))
    return True


class Redactor:
    """One request's placeholders.

    Args:
        devices: Device names and aliases to hide.
        areas: Area and floor names to hide.
        entity_ids: Entity ids to hide.
        people: Names of people to hide.
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
        for kind, values in (("ENTITY", entity_ids), ("DEVICE", devices), ("AREA", areas), ("PERSON", people)):
            for v in values:
                v = str(v).strip()
                if len(v) >= 2:
                    terms.append((kind, v))
        # longest first, so "Living Room Lamp" wins over "Living Room"
        terms.sort(key=lambda kv: -len(kv[1]))
        self._terms = terms
        self._term_re = (
            re.compile("|".join(rf"(?<![\w<]){re.escape(v)}(?![\w>])" for _, v in terms), re.IGNORECASE) if terms else None
        )
        self._kind_of = {v.casefold(): k for k, v in terms}

    def _placeholder(self, kind: str, value: str) -> str:
        key = value.casefold()
        if key in self._forward:
            return self._forward[key]
        self._counts[kind] = self._counts.get(kind, 0) + 1
        ph = f"<{kind}_{self._counts[kind]}>"
        self._forward[key] = ph
        self._back[ph] = value
        return ph

    def redact(self, text: str) -> str:
        """Text with personal data replaced by placeholders."""
        for kind, pattern in _PATTERNS:
            text = pattern.sub(lambda m, k=kind: self._placeholder(k, m.group(0)) if _plausible(k, m.group(0)) else m.group(0), text)
        if self._term_re is not None:
            text = self._term_re.sub(lambda m: self._placeholder(self._kind_of[m.group(0).casefold()], m.group(0)), text)
        return text

    def redact_value(self, value: Any) -> Any:
        """Redact strings inside JSON-like data (tool schemas, enums)."""
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
