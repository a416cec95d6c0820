"""The seams between the parts: small Protocols, so a fake can stand in for any of them.

The real classes are `corpus.embeddings.Embedder`, `corpus.models.SentenceEncoder` and
`CrossEncoder`, and `corpus.store.Store`; the fast tests use `tests/fakes.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from corpus.records import Chunk, Sentence


@runtime_checkable
class TextEncoder(Protocol):
    """Turns texts into unit vectors (bge-small: triage, intents, the ingest screen)."""

    def warm_up(self) -> None:
        """Load the model (a no-op when loaded)."""
        ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One vector per text."""
        ...


@runtime_checkable
@runtime_checkable
class TextClassifier(Protocol):
    """P(yes) for single texts (the triage model, the ingest screen)."""

    def warm_up(self) -> None:
        """Load the model (a no-op when loaded)."""
        ...

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """One probability per text."""
        ...


class Reranker(Protocol):
    """Scores (question, passage) pairs: a higher logit means a better answer."""

    def warm_up(self) -> None:
        """Load the model (a no-op when loaded)."""
        ...

    def score(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """One relevance logit per passage."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """The model the index is embedded with: chunks, sentences and queries share its space."""

    @property
    def space(self) -> str:
        """Names the vector space; an index built in another space must be re-embedded."""
        ...

    def warm_up(self) -> None:
        """Load the model."""
        ...

    def encode(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Unit vectors for texts, in batches."""
        ...

    def embed_query(self, text: str) -> list[float]:
        """The unit vector of one query."""
        ...


@runtime_checkable
class Index(Protocol):
    """What answering reads of an index: live chunks, their vectors and sentences, its stamp."""

    def current(self) -> Index:
        """This index, or a fresh handle when another process has changed it."""
        ...

    def readable(self) -> bool:
        """Are the index files still there?"""
        ...

    def generation(self) -> str:
        """A token that changes whenever the set of live versions changes."""
        ...

    def profile(self) -> str:
        """How the index was built: embedding space, and sentences or search-only."""
        ...

    def live_chunks(self) -> list[Chunk]:
        """All chunks of live versions."""
        ...

    def search(self, vector: Sequence[float], k: int) -> list[tuple[str, float]]:
        """Nearest chunks: (chunk id, cosine similarity), best first."""
        ...

    def chunk_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors of these chunks, by id."""
        ...

    def sentences_with_vectors(self, ids: Sequence[str]) -> list[tuple[Sentence, np.ndarray]]:
        """Stored sentences with their vectors, in the order asked."""
        ...
