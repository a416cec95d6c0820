"""Urgent triage by meaning, prompt-injection screening for the LLM path, and the disclaimer.

Triage reads a message with a classifier of our own (all-MiniLM-L6-v2 fine-tuned on the train
split of `evals/data/triage.jsonl` by `python -m evals.calibrate`, in `assistant/triage/`); a few
high-precision phrases form a floor under it. It reads the whole message (a long one also in windows of two
sentences, so an emergency at the end of a page of other text is not diluted; a window counts
only if the text around it, up to a screenful, does not read as clearly calm, since two
sentences of a story about last year read out of context like an emergency) and the message
after the user's previous turn ("what should i do" after "i just swallowed 60 tablets"). Which
guidance to give (poison centre, crisis line, emergency number) follows the nearest kind of
emergency among the training messages.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.records import UrgentKind
from corpus.protocols import TextClassifier, TextEncoder

TRIAGE_FILE = Path(__file__).resolve().with_name("triage.json")
TRIAGE_FOLDER = Path(__file__).resolve().with_name("triage")  # the fine-tuned classifier
MAX_TRIAGE_CHARS = 20_000  # the model reads this much of a message; the floor reads it all
LONG = 300  # a message longer than this is also read in windows of two sentences
CONTEXT_CHARS = 1000  # a window is confirmed in up to this much of the text around it
CONFIRM = 0.05  # ... which must read as at least this likely urgent (calm stories: <= 0.01)

DISCLAIMER = (
    "This assistant shares information from its documents only; it is not medical advice. "
    "Talk to a doctor or pharmacist before starting, stopping or changing any supplement or "
    "medicine. In an emergency, call your local emergency number."
)

GUIDANCE: dict[UrgentKind, str] = {
    "emergency": (
        "Call your local emergency number now (911 in the US and Canada, 112 in the EU, "
        "999 in the UK). If the person is not breathing, start CPR if you know how, and follow "
        "the dispatcher's instructions."
    ),
    "poison": (
        "Call Poison Control now (1-800-222-1222 in the US, or your local poison centre) or your "
        "local emergency number (911 / 112 / 999). Do not wait for symptoms, and do not try to "
        "make anyone vomit unless told to. Keep the package to hand."
    ),
    "crisis": (
        "You deserve support right now. If you might act on these thoughts, call your local "
        "emergency number (911 / 112 / 999). In the US you can call or text 988 (Suicide & "
        "Crisis Lifeline); in the UK and Ireland call Samaritans on 116 123; elsewhere, your "
        "local crisis line. If you can, tell someone near you how you feel."
    ),
}

# The floor: phrases that mean an emergency wherever they occur (kept only where the ablation on
# the triage set shows they add recall without false alarms: `python -m evals.ablate`).
FLOOR: tuple[tuple[UrgentKind, re.Pattern[str]], ...] = tuple(
    (group, re.compile(pattern, re.I))
    for group, pattern in (
        (
            "crisis",
            r"\b(kill(ing)? ?my ?self|end(ing)? my (own )?life|"
            r"(want|wanted|going) to die|better off (dead|without me)|"
            r"(don'?t|do not) want to (live|be alive))\b",
        ),
        (
            "emergency",
            r"\b((can'?t|cannot|can not|unable to) breathe?|not breathing|stopped breathing|"
            r"(throat|tongue) (is )?(closing|swelling)|seizure (that )?(won'?t|will not) stop)\b",
        ),
    )
)

_INJECTION = re.compile(
    r"ignore (all |any |the |your |my )?(previous |prior |above |earlier )?(instructions|rules|prompt|guidelines)|"
    r"disregard (the |your |all )?(previous |prior )?(instructions|rules)|system prompt|your (instructions|prompt|rules)\b|"
    r"\b(jailbreak|developer mode|dan mode)\b|pretend (you are|to be)|you are now\b|act as (a|an)\b|"
    r"repeat (the|your) (text|words|instructions) above|reveal (your|the) (prompt|instructions)",
    re.I,
)


@dataclass(frozen=True)
class Urgency:
    """Why a message needs emergency help instead of an answer, and what to do."""

    kind: UrgentKind  # which guidance applies
    message: str
    probability: float = 1.0
    by: str = "model"  # "model" or "floor"


@dataclass(frozen=True)
class TriageModel:
    """The decision threshold, one centroid per kind of guidance (over bge-small vectors), and
    either a logistic model over those vectors or, with `classifier`, the fine-tuned message
    classifier in TRIAGE_FOLDER whose probability the threshold applies to."""

    weights: np.ndarray
    bias: float
    threshold: float
    centroids: dict[UrgentKind, np.ndarray]
    classifier: bool = False

    @classmethod
    def load(cls, path: Path = TRIAGE_FILE) -> TriageModel:
        """The model written by `python -m evals.calibrate`."""
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            weights=np.asarray(data.get("weights", []), dtype=np.float32),
            bias=float(data.get("bias", 0.0)),
            threshold=float(data["threshold"]),
            centroids={k: np.asarray(v, dtype=np.float32) for k, v in data["centroids"].items()},
            classifier=bool(data.get("classifier", False)),
        )

    def probability(self, vector: np.ndarray) -> float:
        """P(urgent) for one message vector."""
        return float(1.0 / (1.0 + np.exp(-(float(vector @ self.weights) + self.bias))))

    def kind(self, vector: np.ndarray) -> UrgentKind:
        """Which guidance fits: the nearest centroid's."""
        return max(self.centroids, key=lambda k: float(vector @ self.centroids[k]))


_LEET = str.maketrans("013457@$", "oieastas")
_LEET_WORD = re.compile(r"\b(?=(?:\w*[a-z]){3})(?=\w*[0-9@$])[\w@$]+", re.I)  # 3+ letters


def spelt_out(text: str) -> str:
    """The message with its pictures named and its leetspeak read as letters: "💊💊 😵" becomes
    "pill pill face with crossed-out eyes", "su1c1de" becomes "suicide"."""
    named = "".join(
        f" {unicodedata.name(ch, '').lower()} " if unicodedata.category(ch) == "So" else ch
        for ch in text
    )
    return " ".join(_LEET_WORD.sub(lambda m: m[0].translate(_LEET), named).split())


def readings(text: str, history: Sequence[Mapping[str, str]] = ()) -> list[tuple[str, str]]:
    """What the model reads of a (normalised) message, each with the context that must confirm
    it ('' for none): the whole of it, also spelt out (`spelt_out`); windows of two sentences
    when it is long, each confirmed by the text around it; and, after a user turn, the previous
    user turn with it."""
    if len(text) > MAX_TRIAGE_CHARS:  # its beginning and its end, where a plea would be
        text = f"{text[: MAX_TRIAGE_CHARS // 2]} {text[-MAX_TRIAGE_CHARS // 2 :]}"
    out = [(text, ""), (spelt_out(text), "")]
    if len(text) > LONG:
        from corpus.sentences import sentences

        parts = sentences(text)
        for i in range(max(1, len(parts) - 1)):
            out.append((" ".join(parts[i : i + 2]), around(parts, i, i + 2)))
    said = [t["content"] for t in history if t.get("role") == "user" and t.get("content")]
    if said:
        out.append((f"{said[-1][-LONG:]} {text[:LONG]}", ""))
    return list(dict.fromkeys(r for r in out if r[0].strip()))


def around(parts: Sequence[str], start: int, end: int, limit: int = CONTEXT_CHARS) -> str:
    """The sentences parts[start:end] with their neighbours, added on both sides in turn while
    the whole stays under `limit` characters."""
    size = sum(len(p) + 1 for p in parts[start:end])
    grew = True
    while grew:
        grew = False
        if start > 0 and size + len(parts[start - 1]) < limit:
            start -= 1
            size += len(parts[start]) + 1
            grew = True
        if end < len(parts) and size + len(parts[end]) < limit:
            size += len(parts[end]) + 1
            end += 1
            grew = True
    return " ".join(parts[start:end])


_WORD = re.compile(r"[^\W\d_]{2,}")


def has_words(text: str) -> bool:
    """Does the reading hold a word the model can read (one wordfreq knows, or any word in a
    non-Latin script)? A run of "xxxx…" has none, and the classifier, never trained on such
    junk, gave it 0.97."""
    from wordfreq import zipf_frequency

    return any(
        not w.isascii() or zipf_frequency(w.lower(), "en") > 0 for w in _WORD.findall(text[:2000])
    )


def floor(text: str) -> UrgentKind | None:
    """The guidance group of the first floor phrase in the text, or None."""
    for group, pattern in FLOOR:
        if pattern.search(text):
            return group
    return None


class Triage:
    """Decides whether a (normalised) message describes an emergency; `warm_up()` loads."""

    def __init__(
        self,
        encoder: TextEncoder,
        model: TriageModel | None = None,
        *,
        classifier: TextClassifier | None = None,
        use_model: bool = True,
        use_floor: bool = True,
    ) -> None:
        self.encoder = encoder
        self.model = model
        self.classifier = classifier
        self.use_model = use_model
        self.use_floor = use_floor

    def warm_up(self) -> None:
        """Load the calibrated model, its classifier and the encoder."""
        if self.model is None:
            self.model = TriageModel.load()
        if self.model.classifier and self.classifier is None:
            from corpus.models import MessageClassifier

            self.classifier = MessageClassifier(TRIAGE_FOLDER)
        if self.classifier is not None:
            self.classifier.warm_up()
        self.encoder.warm_up()

    def __call__(self, text: str, history: Sequence[Mapping[str, str]] = ()) -> Urgency | None:
        """An Urgency when the message (read with the user's previous turn) describes an
        emergency, else None."""
        pieces = [r for r in readings(text, history) if has_words(r[0])]
        group = (
            next((g for g in map(floor, [text, *(r for r, _ in pieces[1:])]) if g), None)
            if self.use_floor
            else None
        )
        if group is not None:
            return Urgency(group, GUIDANCE[group], 1.0, "floor")
        if not self.use_model or not pieces:
            return None
        if self.model is None:
            self.warm_up()
        assert self.model is not None
        texts = list(dict.fromkeys([r for r, _ in pieces] + [c for _, c in pieces if c]))
        if self.classifier is not None:
            chance = dict(zip(texts, map(float, self.classifier.probabilities(texts)), strict=True))
        else:
            vectors = self.encoder.encode(texts)
            chance = {t: self.model.probability(v) for t, v in zip(texts, vectors, strict=True)}
        # a window of a long message counts only where the text around it is not clearly calm
        counted = [r for r, c in pieces if not c or chance[c] >= CONFIRM]
        best = max(counted, key=chance.__getitem__, default="")
        if not best or chance[best] < self.model.threshold:
            return None
        group = self.model.kind(self.encoder.encode([best])[0])
        return Urgency(group, GUIDANCE[group], chance[best], "model")


def is_injection(question: str) -> bool:
    """Does the message try to change an LLM's instructions? (Only the LLM path asks.)"""
    return bool(_INJECTION.search(question))
