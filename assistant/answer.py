"""Evidence scoring, the answerability gate and the extractive composer.

Every quotable sentence of the retrieved passages is a candidate. A cheap score (bi-encoder
cosine plus the question's words) keeps the best few; a cross-encoder then reads the question
against each of them, with its section heading, and a small logistic model calibrated on data
nobody here wrote (`python -m evals.calibrate`) turns that evidence into the probability that
the sentence answers the question, and a second one, over the best evidence of all candidates,
into the probability that the documents answer it at all. The gate refuses below that model's
threshold; the composer leads with the most probable sentence and quotes each other sentence
that passes on its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from assistant.citations import citation, claim_text
from assistant.lexicon import Vocabulary, index_terms, is_rare, key_terms, numbers, tokens
from assistant.records import Claim, Draft
from assistant.retrieval import Passage
from corpus.models import reading_text
from corpus.protocols import Index, Reranker
from corpus.records import Sentence

GATE_FILE = Path(__file__).resolve().with_name("gate.json")
PREFILTER = 10  # sentences the reader reads per question (~18 ms each; 8 missed the dose)
MAX_SENTENCES = 4
OTHER_SIDE_MARGIN = 1.5  # cross-encoder logits: another document's view this close is shown too
SENTENCE_FEATURES = (
    "relevance",
    "similarity",
    "passage",
    "overlap",
    "rare_missing",
    "numbers_missing",
)
QUESTION_FEATURES = tuple(f"best_{name}" for name in SENTENCE_FEATURES)


@dataclass(frozen=True)
class Candidate:
    """A sentence of a retrieved passage, with the evidence that it answers the question."""

    sentence: Sentence
    vector: np.ndarray
    passage: Passage
    similarity: float  # bi-encoder cosine, question vs sentence
    coverage: float  # IDF-weighted share of the question's words in the heading and sentence
    relevance: float = 0.0  # cross-encoder logit, question vs heading + sentence
    rare_missing: int = 0  # rare words of the question found nowhere in the passage
    numbers_missing: int = 0  # numbers of the question absent from the sentence
    probability: float = 0.0  # the sentence model's estimate that this sentence answers

    def features(self) -> dict[str, float]:
        """The sentence model's inputs (SENTENCE_FEATURES)."""
        return {
            "relevance": self.relevance,
            "similarity": self.similarity,
            "passage": self.passage.dense,
            "overlap": self.coverage,
            "rare_missing": -float(self.rare_missing),  # negated: for every feature, more is better
            "numbers_missing": -float(self.numbers_missing),
        }

    @property
    def score(self) -> float:
        """The cheap pre-score that decides which sentences the cross-encoder reads."""
        return self.similarity + 0.5 * self.coverage


@dataclass(frozen=True)
class Logistic:
    """A logistic model over named features, standardised, with its decision threshold."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Logistic:
        """Read the form `to_json` writes."""
        return cls(
            tuple(data["features"]),
            tuple(float(x) for x in data["mean"]),
            tuple(float(x) for x in data["scale"]),
            tuple(float(x) for x in data["weights"]),
            float(data["bias"]),
            float(data["threshold"]),
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "weights": list(self.weights),
            "bias": self.bias,
            "threshold": self.threshold,
        }

    def probability(self, values: Mapping[str, float]) -> float:
        """The model's probability for these feature values."""
        z = self.bias + sum(
            w * (values[name] - m) / s
            for name, m, s, w in zip(
                self.features, self.mean, self.scale, self.weights, strict=True
            )
        )
        return float(1.0 / (1.0 + np.exp(-z)))


@dataclass(frozen=True)
class Gate:
    """Two calibrated models: does a sentence answer, and do the documents answer at all."""

    sentence: Logistic  # ranks sentences; a sentence above its threshold answers on its own
    question: Logistic  # over the best evidence of all candidates: answer or refuse
    trained_on: str = ""

    @classmethod
    def load(cls, path: Path = GATE_FILE) -> Gate:
        """The gate written by `python -m evals.calibrate`."""
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            Logistic.from_json(data["sentence"]),
            Logistic.from_json(data["question"]),
            str(data.get("trained_on", "")),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON form `load` reads."""
        return {
            "trained_on": self.trained_on,
            "sentence": self.sentence.to_json(),
            "question": self.question.to_json(),
        }

    def uses(self) -> set[str]:
        """The sentence features either model reads."""
        return set(self.sentence.features) | {
            f.removeprefix("best_") for f in self.question.features
        }

    def passes(self, candidate: Candidate) -> bool:
        """Does this sentence, on its own evidence, answer the question?"""
        return candidate.probability >= self.sentence.threshold


def question_features(scored: Sequence[Candidate]) -> dict[str, float]:
    """The best value of each sentence feature over all candidates (QUESTION_FEATURES)."""
    rows = [c.features() for c in scored]
    return {
        f"best_{name}": max((r[name] for r in rows), default=-10.0) for name in SENTENCE_FEATURES
    }


@dataclass(frozen=True)
class Answerability:
    """The gate's decision on a question, and the best evidence it saw."""

    answerable: bool
    probability: float
    best: Candidate | None = None


class Generator(Protocol):
    """Turns a question and its evidence into cited text (extractive by default, an LLM optionally)."""

    def compose(self, question: str, candidates: Sequence[Candidate]) -> Draft:
        """Write the answer from these scored sentences."""
        ...


def term_coverage(terms: dict[str, str], text_terms: set[str], vocabulary: Vocabulary) -> float:
    """IDF-weighted share of the question's terms found (with typo variants) in a text's terms."""
    if not terms:
        return 0.0
    weights = {t: vocabulary.weight(t) for t in terms}
    hits = sum(
        w for t, w in weights.items() if t in text_terms or vocabulary.variants(t) & text_terms
    )
    return hits / sum(weights.values())


def rare_words(question: str) -> dict[str, str]:
    """The question's words that are rare in general English: stem -> word."""
    return {s: w for s, w in key_terms(question).items() if not w[:1].isdigit() and is_rare(w)}


def missing(terms: dict[str, str], text_terms: set[str], vocabulary: Vocabulary) -> list[str]:
    """The terms absent from a text even allowing a typo or a word-family variant."""
    return [
        word
        for t, word in terms.items()
        if t not in text_terms and not (vocabulary.variants(t) & text_terms)
    ]


def candidates(
    question: str,
    qvec: np.ndarray,
    passages: Sequence[Passage],
    store: Index,
    vocabulary: Vocabulary,
    reranker: Reranker,
    gate: Gate,
    limit: int = PREFILTER,
) -> list[Candidate]:
    """The quotable sentences of the passages, best evidence first; each sentence appears once.

    A sentence is read with its section heading (or, without one, the document's title):
    'Melatonin Side Effects' says what 'some people feel dizzy' is about.
    """
    owner: dict[str, Passage] = {}
    for passage in passages:
        for sentence_id in passage.chunk.sentence_ids:
            owner.setdefault(sentence_id, passage)
    terms = key_terms(question)
    used = gate.uses()  # features the shipped gate does not read are not computed
    rare = rare_words(question) if "rare_missing" in used else {}
    asked_numbers = numbers(question) if "numbers_missing" in used else set()
    passage_terms: dict[str, set[str]] = {}
    found = []
    for sentence, vector in store.sentences_with_vectors(list(owner)):
        if sentence.flagged or not quotable(sentence.text):
            continue  # flagged at ingest: an instruction to an assistant is never quoted
        passage = owner[sentence.id]
        chunk = passage.chunk
        if rare and chunk.id not in passage_terms:
            passage_terms[chunk.id] = set(
                index_terms(f"{chunk.title} {heading(chunk)} {chunk.text}")
            )
        found.append(
            Candidate(
                sentence=sentence,
                vector=vector,
                passage=passage,
                similarity=float(vector @ qvec),
                coverage=term_coverage(
                    terms, set(index_terms(f"{heading(chunk)} {sentence.text}")), vocabulary
                ),
                rare_missing=len(missing(rare, passage_terms[chunk.id], vocabulary)) if rare else 0,
                numbers_missing=len(asked_numbers - set(tokens(sentence.text)))
                if asked_numbers
                else 0,
            )
        )
    found.sort(key=lambda c: -c.score)
    shortlist = found[:limit]
    logits = reranker.score(question, [reading(c) for c in shortlist])
    scored = [replace(c, relevance=float(r)) for c, r in zip(shortlist, logits, strict=True)]
    scored = [replace(c, probability=gate.sentence.probability(c.features())) for c in scored]
    return sorted(scored, key=lambda c: (-c.probability, -c.relevance))


def reading(candidate: Candidate) -> str:
    """How the cross-encoder reads a sentence: who writes it, under which heading.

    A question about "the blogger" scores the blog's "I take just 1 mg" sentence far higher
    when the sentence is introduced as the author's own words (on the eval set's dev split:
    the right sentence first for 80% of answerable questions, against 74% with the heading
    alone).
    """
    chunk = candidate.passage.chunk
    return reading_text(chunk.kind, heading(chunk), candidate.sentence.text)


def heading(chunk: Any) -> str:
    """What a passage is about: its section heading, else its document's title."""
    return chunk.section or chunk.title or ""


def quotable(sentence: str) -> bool:
    """Can this sentence stand alone as a claim? Not a link line, not a dangling 'as follows:'."""
    return "http" not in sentence and "www." not in sentence and not sentence.rstrip().endswith(":")


def judge(scored: Sequence[Candidate], gate: Gate) -> Answerability:
    """Answer only when the best evidence over all candidates passes the calibrated gate."""
    if not scored:
        return Answerability(False, 0.0)
    p = gate.question.probability(question_features(scored))
    return Answerability(p >= gate.question.threshold, p, scored[0])


class ExtractiveGenerator:
    """The embedded default: the sentences that answer, verbatim, each with its marker."""

    def __init__(self, gate: Gate | None = None) -> None:
        self.gate = gate  # None: the calibrated gate, read on first use

    def compose(
        self,
        question: str,
        candidates: Sequence[Candidate],
        cautions: Sequence[Candidate] = (),
        parts: Sequence[Candidate] = (),
    ) -> Draft:
        """Quote the answering sentences, the best first, each attributed and cited; `parts`
        (the answers to a message's other questions) and `cautions` (for a question about
        safety) are quoted after the lead."""
        if self.gate is None:
            self.gate = Gate.load()
        chosen = select(candidates, self.gate, cautions, parts)
        citations = tuple(citation(n, c.passage.chunk, c.sentence) for n, c in enumerate(chosen, 1))
        claims = tuple(
            Claim(claim_text(c.sentence.text), (n,), c.passage.chunk.kind.capitalize())
            for n, c in enumerate(chosen, 1)
        )
        return Draft(claims, citations)


def select(
    scored: Sequence[Candidate],
    gate: Gate,
    cautions: Sequence[Candidate] = (),
    parts: Sequence[Candidate] = (),
) -> list[Candidate]:
    """The best sentence first; then each other sentence that passes the gate on its own.

    The answers to the message's other questions (`parts`) come first; another document's best
    sentence is included when it passes, or when the cross-encoder rates it nearly as relevant
    as the lead (the documents may differ, as on the dose); the documents' cautions, when the
    question asks about safety; near-duplicates of a chosen sentence are not.
    """
    if not scored:
        return []
    best = scored[0]
    chosen: list[Candidate] = [best]

    def novel(c: Candidate) -> bool:
        return all(
            float(c.vector @ o.vector) < 0.9 and c.sentence.text != o.sentence.text for o in chosen
        )

    for c in parts:
        if len(chosen) < MAX_SENTENCES and novel(c):
            chosen.append(c)
    docs = {c.passage.chunk.doc_id for c in chosen}
    for c in scored[1:]:  # the other side of the story
        close = c.relevance >= best.relevance - OTHER_SIDE_MARGIN
        if c.passage.chunk.doc_id not in docs and (gate.passes(c) or close) and novel(c):
            docs.add(c.passage.chunk.doc_id)
            chosen.append(c)
    for c in cautions:
        if len(chosen) < MAX_SENTENCES and novel(c):
            chosen.append(c)
    for c in scored[1:]:
        if len(chosen) >= MAX_SENTENCES:
            break
        if gate.passes(c) and novel(c):
            chosen.append(c)
    lead = [best]
    rest = sorted(
        chosen[1:],
        key=lambda c: (c.passage.chunk.doc_id != best.passage.chunk.doc_id, c.sentence.start),
    )
    return lead + rest
