"""Citations: built in one place, and checked before any answer leaves the assistant."""

from __future__ import annotations

import re
from dataclasses import replace

from assistant.records import Citation, Draft
from corpus.records import Chunk, Sentence

_DOC_REFERENCE = re.compile(r"\s*(?:\[\d+(?:[-–,]\s?\d+)*\])+")


def claim_text(sentence: str) -> str:
    """A quoted sentence as a claim: the document's own [1][2] references removed."""
    return _DOC_REFERENCE.sub("", sentence).strip()


def citation(n: int, chunk: Chunk, sentence: Sentence) -> Citation:
    """The numbered citation of one quoted sentence (the only place a Citation is built)."""
    return Citation(
        n=n,
        doc_id=chunk.doc_id,
        source=chunk.source,
        title=chunk.title,
        kind=chunk.kind,
        section=chunk.section,
        quote=sentence.text,
        start=sentence.start,
        end=sentence.end,
        chunk_id=chunk.id,
        passage=chunk.text,
        withheld=chunk.withheld,
    )


def verbatim(citation: Citation) -> bool:
    """Is the quote, whitespace aside, word for word in the passage it cites?"""
    return " ".join(citation.quote.split()) in " ".join(citation.passage.split())


def check_citations(draft: Draft) -> Draft:
    """Keep only claims whose sources all resolve to verbatim quotes, and only the sources used."""
    verified = {c.n for c in draft.citations if verbatim(c)}
    claims = tuple(c for c in draft.claims if c.cites and set(c.cites) <= verified)
    used = {n for c in claims for n in c.cites}
    return replace(draft, claims=claims, citations=tuple(c for c in draft.citations if c.n in used))
