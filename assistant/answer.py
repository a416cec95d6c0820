"""The answerability gate, the extractive composer and citation building."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from assistant.lexicon import Vocabulary, index_terms, soft_terms
from assistant.records import Citation
from assistant.retrieval import Passage
from corpus.records import Sentence

MIN_SIMILARITY = 0.35  # best sentence cosine below this: the evidence is not about the question
MAX_SENTENCES = 4
_ASKS_AMOUNT = re.compile(r"\b(dose|doses|how much|how many|amount|mg|milligrams?|cfu)\b", re.I)
_AMOUNT = re.compile(
    r"\d(?:[\d.,]*)\s*(?:-|–|to)?\s*\d*\s*(?:mg|milligrams?|mcg|g|billion|million|cfu|%)\b", re.I
)
_DOC_REFERENCE = re.compile(r"\s*(?:\[\d+(?:[-–,]\s?\d+)*\])+")


@dataclass(frozen=True)
class Candidate:
    """A sentence of a retrieved passage, scored against the question."""

    sentence: Sentence
    vector: np.ndarray
    passage: Passage
    similarity: float
    coverage: float

    bonus: float = 0.0

    @property
    def score(self) -> float:
        """Meaning first, with the question's own words as a strong second signal."""
        return self.similarity + 0.5 * self.coverage + self.bonus


@dataclass(frozen=True)
class Verdict:
    """The gate's decision, and a reason a person can read."""

    answerable: bool
    reason: str
    unknown: tuple[str, ...] = ()


@dataclass(frozen=True)
class Draft:
    """A composed answer before the disclaimer and status are attached."""

    text: str
    citations: tuple[Citation, ...]
    made_by: str = "extractive"


class Generator(Protocol):
    """Turns a question and its evidence into cited text (extractive by default, an LLM optionally)."""

    def compose(self, question: str, candidates: Sequence[Candidate]) -> Draft:
        """Write the answer from these scored sentences."""
        ...


def term_coverage(
    terms: dict[str, str], text_terms: set[str], vocabulary: Vocabulary, *, weighted: bool = False
) -> float:
    """Fraction of the question's key terms found (with their variants) in a text's terms.

    Weighted, each term counts by its IDF, so the rare word of a question matters most.
    """
    if not terms:
        return 0.0
    weights = {t: vocabulary.weight(t) if weighted else 1.0 for t in terms}
    hits = sum(
        w for t, w in weights.items() if t in text_terms or vocabulary.variants(t) & text_terms
    )
    return hits / sum(weights.values())


def candidates(
    terms: dict[str, str],
    qvec: np.ndarray,
    passages: Sequence[Passage],
    store: Any,
    vocabulary: Vocabulary,
    question: str = "",
) -> list[Candidate]:
    """Every quotable sentence of the passages, scored; a sentence shared by chunks appears once.

    A sentence is read with its section heading ('Melatonin Side Effects' says what 'some people
    feel dizzy' is about); a question asking 'how much' favours sentences that give an amount.
    """
    wants_amount = bool(_ASKS_AMOUNT.search(question))
    asking = soft_terms(question)
    owner: dict[str, Passage] = {}
    for passage in passages:
        for sentence_id in passage.chunk.sentence_ids:
            owner.setdefault(sentence_id, passage)
    found = []
    for sentence, vector in store.sentences_with_vectors(list(owner)):
        if not quotable(sentence.text):
            continue
        section = owner[sentence.id].chunk.section or ""
        found.append(
            Candidate(
                sentence=sentence,
                vector=vector,
                passage=owner[sentence.id],
                similarity=float(vector @ qvec),
                coverage=term_coverage(
                    terms, set(index_terms(f"{section} {sentence.text}")), vocabulary, weighted=True
                ),
                bonus=(0.15 if wants_amount and _AMOUNT.search(sentence.text) else 0.0)
                + 0.1 * term_coverage(asking, set(index_terms(sentence.text)), vocabulary),
            )
        )
    return sorted(found, key=lambda c: -c.score)


def quotable(sentence: str) -> bool:
    """Can this sentence stand alone as a claim? Not a link line, not a dangling 'as follows:'."""
    return "http" not in sentence and "www." not in sentence and not sentence.rstrip().endswith(":")


def judge(terms: dict[str, str], scored: Sequence[Candidate], vocabulary: Vocabulary) -> Verdict:
    """Answer only when the evidence covers the question's key terms and is close in meaning."""
    if not terms:
        return Verdict(False, "no-topic")
    unknown = tuple(word for t, word in terms.items() if not vocabulary.knows(t))
    if unknown:
        return Verdict(False, "unknown-terms", unknown)
    needed = 1.0 if len(terms) <= 3 else 0.75 if len(terms) == 4 else 0.6
    evidence: dict[str, set[str]] = {}
    for c in scored:  # only quotable sentences count as evidence, with their section heading
        chunk = c.passage.chunk
        evidence.setdefault(chunk.id, set(index_terms(chunk.section or ""))).update(
            index_terms(c.sentence.text)
        )
    best_chunk = max(
        (term_coverage(terms, words, vocabulary) for words in evidence.values()), default=0.0
    )
    if best_chunk < needed:
        return Verdict(False, "not-together")
    if not scored or scored[0].similarity < MIN_SIMILARITY:
        return Verdict(False, "weak-evidence")
    return Verdict(True, "covered")


def claim_text(sentence: str) -> str:
    """A quoted sentence as a claim: the document's own [1][2] references removed."""
    return _DOC_REFERENCE.sub("", sentence).strip()


class ExtractiveGenerator:
    """The embedded default: the best few source sentences, verbatim, each with its marker."""

    def compose(self, question: str, candidates: Sequence[Candidate]) -> Draft:
        """Pick, order and cite the sentences that best answer the question."""
        chosen = select(candidates)
        citations, lines = [], []
        for n, c in enumerate(chosen, 1):
            chunk = c.passage.chunk
            citations.append(
                Citation(
                    n=n,
                    doc_id=chunk.doc_id,
                    source=chunk.source,
                    title=chunk.title,
                    kind=chunk.kind,
                    section=chunk.section,
                    quote=c.sentence.text,
                    start=c.sentence.start,
                    end=c.sentence.end,
                    chunk_id=chunk.id,
                    passage=chunk.text,
                )
            )
            lines.append(f"- *{chunk.kind.capitalize()}:* {claim_text(c.sentence.text)} [{n}]")
        return Draft("\n".join(lines), tuple(citations))


def select(scored: Sequence[Candidate]) -> list[Candidate]:
    """The best sentence, close runners-up, and each other document's best when it is close."""
    if not scored:
        return []
    best = scored[0]
    chosen: list[Candidate] = [best]

    def novel(c: Candidate) -> bool:
        return all(
            float(c.vector @ o.vector) < 0.9 and c.sentence.text != o.sentence.text for o in chosen
        )

    ids = best.passage.chunk.sentence_ids
    at = ids.index(best.sentence.id) if best.sentence.id in ids else -1
    following = ids[at + 1] if 0 <= at < len(ids) - 1 else None
    for c in scored[1:]:  # the sentence that continues the best one, when it is on topic too
        if (
            c.sentence.id == following
            and c.score >= best.score * 0.7
            and c.coverage > 0
            and novel(c)
        ):
            chosen.append(c)
    docs_seen = {best.passage.chunk.doc_id}
    for c in scored[1:]:  # the other side of the story: another document's best, if relevant
        doc = c.passage.chunk.doc_id
        if doc in docs_seen:
            continue
        docs_seen.add(doc)
        if c.score >= best.score * 0.8 and c.coverage >= best.coverage * 0.66 and novel(c):
            chosen.append(c)
    for c in scored[1:]:
        if len(chosen) >= MAX_SENTENCES:
            break
        if (
            c.score >= best.score * 0.85
            and c.coverage >= best.coverage * 0.8
            and c.similarity >= MIN_SIMILARITY
            and novel(c)
        ):
            chosen.append(c)
    first_seen = {}
    for c in chosen:
        first_seen.setdefault(c.passage.chunk.doc_id, len(first_seen))
    return sorted(chosen, key=lambda c: (first_seen[c.passage.chunk.doc_id], c.sentence.start))
