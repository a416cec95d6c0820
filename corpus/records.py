"""The records shared by ingest and assistant: frozen dataclasses, nothing else."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sentence:
    """One sentence (or list item) of a document; offsets index the document's text."""

    id: str
    text: str
    start: int
    end: int
    content_hash: str
    lead: int = 0  # a list's lead-in ("it regulates:") is embedded without its items
    flagged: bool = False  # reads as an instruction to an assistant: never quoted

    def embedding_text(self) -> str:
        """What the model embeds: the whole sentence, or just the lead-in of a list."""
        return self.text[: self.lead] if self.lead else self.text


@dataclass(frozen=True)
class Chunk:
    """A retrieval unit: consecutive sentences of one section of one document version."""

    id: str
    doc_id: str
    source: str
    title: str
    kind: str
    section: str | None
    text: str
    start: int
    end: int
    content_hash: str
    version: str
    sentence_ids: tuple[str, ...] = ()
    withheld: tuple[str, ...] = ()  # its sentences flagged at ingest, shown struck, never quoted

    def embedding_text(self) -> str:
        """What the model embeds: the section heading gives the passage its context."""
        return f"{self.section}\n{self.text}" if self.section else self.text


@dataclass(frozen=True)
class DocumentEntry:
    """The live version of one source document, as published in the index."""

    source: str
    doc_id: str
    title: str
    kind: str
    version: str
    chunks: int
    sentences: int
    ingested_at: str
    url: str = ""  # the original's address, from sources.toml (http or https only)


@dataclass(frozen=True)
class Flagged:
    """A sentence of a live document that ingest flagged as an instruction to an assistant."""

    source: str
    text: str
