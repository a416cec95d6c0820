"""The door: every question and history turn is normalised and bounded once, before anything reads it.

Normalising means NFKC (full-width letters, ligatures and non-breaking spaces become plain),
curly quotes folded to straight ones, zero-width and bidirectional control characters removed,
and whitespace collapsed, so "I can’t  breathe" reads exactly like "I can't breathe".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

MAX_QUESTION_CHARS = 2000
MAX_TURNS = 6  # only the last few turns are read
MAX_TURN_CHARS = 1000  # each one capped
_QUOTES = str.maketrans(
    {"‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'", "“": '"', "”": '"', "„": '"', "″": '"'}
)
_INVISIBLE = re.compile("[\u200c-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")

Turn = Mapping[str, str]
# Cyrillic and Greek letters drawn like Latin ones (from Unicode's confusables.txt), used only in
# words that also hold Latin letters.
_LOOKALIKES = str.maketrans(
    "аеорсухіјѕԁӏһԛԝАВЕКМНОРСТХІЈЅοαινρτυκΑΒΕΗΙΚΜΝΟΡΤΥΧΖ",
    "aeopcyxijsdlhqwABEKMHOPCTXIJSoaivptukABEHIKMNOPTYXZ",
)
_MIXED = re.compile(r"\w*[a-zA-Z]\w*")


def normalise(text: str) -> str:
    """NFKC, straight quotes, no invisible or bidi controls, single spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = _INVISIBLE.sub("", text.replace("\u200b", " "))
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates become '?'
    text = _MIXED.sub(lambda m: m[0].translate(_LOOKALIKES), text)
    return " ".join(text.split())


def problem(question: object, history: object = None) -> str | None:
    """Why a message (or its history) is not something we can read, or None when it is."""
    if not isinstance(question, str) or not question.strip():
        return "Please type a question."
    if len(question) > MAX_QUESTION_CHARS:
        return (
            f"That message is {len(question):,} characters long; "
            f"please keep questions under {MAX_QUESTION_CHARS:,}."
        )
    if any("\ud800" <= ch <= "\udfff" for ch in question):
        return "That message holds a broken character (a lone UTF-16 surrogate); please retype it."
    if history is not None and (
        not isinstance(history, Sequence) or isinstance(history, str | bytes)
    ):
        return (
            f"The history must be a list of {{role, content}} turns, not {type(history).__name__}."
        )
    return None


def bounded_history(history: object) -> list[dict[str, str]]:
    """The last MAX_TURNS well-formed turns, each normalised and capped; malformed turns are ignored."""
    if not isinstance(history, Sequence) or isinstance(history, str | bytes):
        return []
    turns = []
    for turn in list(history)[-MAX_TURNS:]:
        if (
            isinstance(turn, Mapping)
            and turn.get("role") in ("user", "assistant")
            and isinstance(turn.get("content"), str)
        ):
            turns.append(
                {"role": turn["role"], "content": normalise(turn["content"][:MAX_TURN_CHARS])}
            )
    return turns
