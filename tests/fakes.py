"""Fakes for the fast lane: a hashing embedder, a keyword reranker and an in-memory index.

Each satisfies a Protocol of `corpus/protocols.py` (like simonw/llm's `EmbedDemo`), so the
assistant's logic runs without a model, Chroma or a server.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence

import numpy as np

from corpus.records import Chunk, Sentence
from ingest.chunking import chunk_document
from ingest.loaders import LoadedDocument, plain_blocks

DIMENSION = 256


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


class HashEmbedder:
    """Bag-of-words vectors: each word hashed to one of 256 dimensions, then normalised."""

    space = "fake-hash:256"

    def warm_up(self) -> None:
        """Nothing to load."""

    def encode(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """One unit vector per text (the zero text gets a fixed unit vector)."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _words(text):
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % DIMENSION] += 1.0
            norm = float(np.linalg.norm(out[row]))
            if norm:
                out[row] /= norm
            else:
                out[row, 0] = 1.0
        if progress:
            progress(len(texts))
        return out

    def embed_query(self, text: str) -> list[float]:
        """The unit vector of one query."""
        return self.encode([text])[0].tolist()


class KeywordReranker:
    """Logits from shared words: 8 times the share of the question's words in the passage - 4."""

    def warm_up(self) -> None:
        """Nothing to load."""

    def score(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """One logit per passage."""
        asked = set(_words(question))
        return np.array(
            [8.0 * len(asked & set(_words(p))) / max(len(asked), 1) - 4.0 for p in passages],
            dtype=np.float32,
        )


class MemoryIndex:
    """The `Index` protocol over chunks and sentences held in memory."""

    def __init__(self, embedder: HashEmbedder, documents: dict[str, str]) -> None:
        self.chunks: list[Chunk] = []
        self.sentences: dict[str, Sentence] = {}
        for n, (source, text) in enumerate(sorted(documents.items())):
            doc = LoadedDocument(
                text=text, blocks=tuple(plain_blocks(text)), title=None, plain=True
            )
            _, chunks, sentences = chunk_document(
                doc, source=source, doc_id=source.rsplit(".", 1)[0], title=None,
                kind="article", version=f"v{n}",
            )  # fmt: skip
            self.chunks += chunks
            self.sentences.update({s.id: s for s in sentences})
        self.chunk_matrix = embedder.encode([c.embedding_text() for c in self.chunks])
        self.sentence_vectors = dict(
            zip(
                self.sentences,
                embedder.encode([s.embedding_text() for s in self.sentences.values()]),
                strict=True,
            )
        )
        self.space = embedder.space

    def current(self) -> MemoryIndex:
        """Nothing else writes to memory."""
        return self

    def readable(self) -> bool:
        """Always there."""
        return True

    def generation(self) -> str:
        """One generation for the index's lifetime."""
        return "g1"

    def profile(self) -> str:
        """Built in the fake embedder's space, with sentences."""
        return f"{self.space}|sentences"

    def live_chunks(self) -> list[Chunk]:
        """Every chunk."""
        return list(self.chunks)

    def search(self, vector: Sequence[float], k: int) -> list[tuple[str, float]]:
        """Exact cosine search."""
        scores = self.chunk_matrix @ np.asarray(vector, dtype=np.float32)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(self.chunks[i].id, float(scores[i])) for i in order]

    def chunk_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors of these chunks."""
        position = {c.id: i for i, c in enumerate(self.chunks)}
        return {i: self.chunk_matrix[position[i]] for i in ids if i in position}

    def sentences_with_vectors(self, ids: Sequence[str]) -> list[tuple[Sentence, np.ndarray]]:
        """Sentences with their vectors, in the order asked."""
        return [(self.sentences[i], self.sentence_vectors[i]) for i in ids if i in self.sentences]
