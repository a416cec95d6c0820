"""Urgent triage, prompt-injection detection and the one medical disclaimer."""

from __future__ import annotations

import re
from dataclasses import dataclass

DISCLAIMER = (
    "This assistant shares information from its documents only; it is not medical advice. "
    "Talk to a doctor or pharmacist before starting, stopping or changing any supplement or "
    "medicine. In an emergency, call your local emergency number."
)

_EMERGENCY = (
    "Call your local emergency number now (911 in the US and Canada, 112 in the EU, 999 in the UK)."
)
_POISON = (
    "Call Poison Control now (1-800-222-1222 in the US, or your local poison centre) or your "
    "local emergency number (911 / 112 / 999). Do not wait for symptoms, and do not try to make "
    "anyone vomit unless told to."
)
_CRISIS = (
    "You deserve support right now. If you might act on these thoughts, call your local emergency "
    "number (911 / 112 / 999). In the US you can call or text 988 (Suicide & Crisis Lifeline); "
    "in the UK and Ireland call Samaritans on 116 123; elsewhere, your local crisis line."
)


@dataclass(frozen=True)
class Urgency:
    """Why a message needs emergency help instead of an answer, and what to do."""

    kind: str
    message: str


_RULES: tuple[tuple[str, str, str], ...] = (
    (
        "self-harm",
        r"suicid|kill(ing)? (my ?self|me)\b|end(ing)? (my|it) (life|all)|self[- ]?harm|"
        r"hurt(ing)? my ?self|want(ed)? to die|don'?t want to (live|be alive|wake up)|"
        r"better off dead|no reason to live",
        _CRISIS,
    ),
    (
        "poisoning",
        r"overdos|poison|"
        r"\b(swallow(ed)?|ate|eaten|took|taken|drank|consumed|got into)\b[^.?!]{0,60}"
        r"\b(whole|entire|bottle|pack(et)?|jar|handful|all (of )?(the|my|his|her|their)|"
        r"too many|a lot of|lots of|\d{2,} ?(\w+ )?(mg|pills?|tablets?|gummies|capsules?))|"
        r"too many (pills|gummies|tablets|capsules)|"
        r"\b(child|kid|toddler|baby|son|daughter|grandchild)\b[^.?!]{0,50}"
        r"\b(swallowed|ate|eaten|got into|chewed)\b",
        _POISON,
    ),
    (
        "chest pain",
        r"chest (pain|tightness|pressure|hurts)|heart attack|pain in (my|his|her) chest",
        _EMERGENCY,
    ),
    (
        "breathing",
        r"(can'?t|cannot|could ?n'?t|trouble|difficulty|hard to|struggling to|unable to) breath|"
        r"short(ness)? of breath|not breathing|stopped breathing|gasping|choking|"
        r"throat (is )?(swelling|closing)|anaphyla|swollen (tongue|throat|lips)",
        _EMERGENCY,
    ),
    (
        "bleeding",
        r"(heavy|heavily|severe|lots of|a lot of|uncontrolled|won'?t stop|non-?stop) bleed|"
        r"bleed(ing)? (heavily|a lot|badly|won'?t stop|that won'?t stop|everywhere)|"
        r"(vomit|throw)(ing)?( up)? blood|cough(ing)? (up )?blood|fever[^.?!]{0,40}bleed|"
        r"bleed[^.?!]{0,40}fever",
        _EMERGENCY,
    ),
    (
        "collapse",
        r"seizure|convuls|unconscious|unresponsive|passed out|fainted|won'?t wake|can'?t wake (him|her|them|up)|"
        r"face (is )?droop|slurred speech|having a stroke",
        _EMERGENCY,
    ),
)
_COMPILED = tuple((kind, re.compile(pattern, re.I), message) for kind, pattern, message in _RULES)

_INJECTION = re.compile(
    r"ignore (all |any |the |your |my )?(previous |prior |above |earlier )?(instructions|rules|prompt|guidelines)|"
    r"disregard (the |your |all )?(previous |prior )?(instructions|rules)|system prompt|your (instructions|prompt|rules)\b|"
    r"\b(jailbreak|developer mode|dan mode)\b|pretend (you are|to be)|you are now\b|act as (a|an)\b|"
    r"repeat (the|your) (text|words|instructions) above|reveal (your|the) (prompt|instructions)",
    re.I,
)


def triage(question: str) -> Urgency | None:
    """An Urgency when the message describes an emergency, else None."""
    for kind, pattern, message in _COMPILED:
        if pattern.search(question):
            return Urgency(kind, message)
    return None


def is_injection(question: str) -> bool:
    """Does the message try to change the assistant's instructions?"""
    return bool(_INJECTION.search(question))
