"""What the assistant returns: frozen records with their JSON form (the CLI contract)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["answered", "refused", "urgent", "error"]
UrgentKind = Literal["emergency", "poison", "crisis"]  # which guidance applies (safety.GUIDANCE)
Reason = Literal[
    "", "not-covered", "not-english", "smalltalk", "overview", "emergency", "poison", "crisis"
]
Writer = Literal["", "extractive", "llm"]
FallbackKind = Literal["server", "unsupported", "instructions", "unavailable"]


@dataclass(frozen=True)
class Citation:
    """One numbered source of an answer: a verbatim quote and where it comes from."""

    n: int
    doc_id: str
    source: str
    title: str
    kind: str
    section: str | None
    quote: str
    start: int
    end: int
    chunk_id: str
    passage: str
    withheld: tuple[str, ...] = ()  # sentences of the passage flagged at ingest: never quoted

    def to_json(self) -> dict[str, object]:
        """Contract fields plus kind, offsets and the passage the quote sits in."""
        return {
            "n": self.n,
            "doc_id": self.doc_id,
            "source": self.source,
            "title": self.title,
            "kind": self.kind,
            "section": self.section,
            "quote": self.quote,
            "start": self.start,
            "end": self.end,
            "chunk_id": self.chunk_id,
            "passage": self.passage,
        }


@dataclass(frozen=True)
class Claim:
    """One sentence of an answer and the numbered sources it cites.

    `label` names who says it (a quoted document's kind, e.g. "Commercial article"); it is
    empty for a sentence an LLM wrote.
    """

    text: str
    cites: tuple[int, ...]
    label: str = ""


@dataclass(frozen=True)
class Fallback:
    """Why an LLM-configured answer shows the documents' own sentences instead.

    `server`: the LLM server failed; `unsupported`: no sentence it wrote was supported by its
    quote; `instructions`: the question reads as instructions to an LLM; `unavailable`: the
    server failed repeatedly, so the LLM is not asked for a while.
    """

    kind: FallbackKind
    detail: str  # one human sentence, e.g. "the LLM (smollm2) did not answer (ConnectError)"


@dataclass(frozen=True)
class Answer:
    """A response of any status; every one carries the disclaimer."""

    status: Status
    answer: str
    citations: tuple[Citation, ...]
    disclaimer: str
    query: str = ""
    error: str | None = None
    latency_ms: float = 0.0
    reason: Reason = ""
    made_by: Writer = ""  # who wrote the claims of an answered question
    fallback: Fallback | None = None  # set when an LLM was asked for but quotes are shown
    suggestions: tuple[str, ...] = ()  # questions the documents answer, near this one
    claims: tuple[Claim, ...] = ()  # an answered question's sentences, for renderers
    removed: tuple[str, ...] = ()  # an LLM's sentences the claim check took out

    @property
    def generator(self) -> str:
        """The JSON `generator` field: who wrote it, and why quotes replaced an LLM's text."""
        if self.fallback is not None:
            return f"extractive (fallback: {self.fallback.detail})"
        return self.made_by

    def to_json(self, id: str | None = None) -> dict[str, object]:
        """The `python -m assistant ask --json` contract (plus the retrieval query used)."""
        data: dict[str, object] = {} if id is None else {"id": id}
        data.update(
            status=self.status,
            answer=self.answer,
            citations=[c.to_json() for c in self.citations],
            disclaimer=self.disclaimer,
            latency_ms=round(self.latency_ms, 2),
            query=self.query,
        )
        if self.generator:
            data["generator"] = self.generator
        if self.suggestions:
            data["suggestions"] = list(self.suggestions)
        if self.error is not None:
            data["error"] = self.error
        return data


@dataclass(frozen=True)
class Draft:
    """A composed answer before the disclaimer and status are attached."""

    claims: tuple[Claim, ...]
    citations: tuple[Citation, ...]
    made_by: Writer = "extractive"
    fallback: Fallback | None = None
    removed: tuple[str, ...] = ()  # an LLM's sentences the claim check took out
