"""Messages that are not questions about the documents: small talk and requests for an overview.

A message is read as one of them when its nearest example is close in meaning (bge-small cosine)
and the gate did not find an answer first. No single word decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Generic, Literal, TypeVar

import numpy as np

from corpus.protocols import TextEncoder

Intent = Literal["smalltalk", "overview"]

INTENT_EXAMPLES: dict[Intent, tuple[str, ...]] = {
    "smalltalk": (
        "hi",
        "hello there",
        "hey, how are you?",
        "good morning",
        "thanks!",
        "thank you so much, that helps",
        "ok cool",
        "great, got it",
        "bye",
        "you're awesome",
    ),
    "overview": (
        "what do these documents cover?",
        "summarize the documents",
        "what topics can I ask you about?",
        "what are your sources?",
        "give me an overview of what you know",
        "what is in your articles?",
    ),
}
INTENT_SIMILARITY = 0.8


K = TypeVar("K", bound=str)


class Examples(Generic[K]):
    """Labelled example texts; how close in meaning (bge-small cosine) a text comes to each
    label's nearest example. The examples are encoded on first use, once."""

    def __init__(self, encoder: TextEncoder, examples: Mapping[K, Sequence[str]]) -> None:
        self.encoder = encoder
        self.examples = examples
        self._vectors: dict[K, np.ndarray] = {}

    def warm_up(self) -> None:
        """Encode the examples (once)."""
        if not self._vectors:
            self._vectors = {k: self.encoder.encode(list(v)) for k, v in self.examples.items()}

    def similarity(self, text: str) -> dict[K, float]:
        """Each label's best cosine to the text (a single text's vector is cached by the encoder)."""
        self.warm_up()
        vector = self.encoder.encode([text])[0]
        return {label: float(np.max(v @ vector)) for label, v in self._vectors.items()}

    def nearest(self, text: str) -> tuple[K, float]:
        """The label of the text's nearest example, and its cosine."""
        scores = self.similarity(text)
        label = max(scores, key=scores.__getitem__)
        return label, scores[label]


class Intents:
    """Which kind of non-question a message is, if any."""

    def __init__(self, encoder: TextEncoder, examples: dict[Intent, tuple[str, ...]] | None = None):
        self.examples = Examples(encoder, examples or INTENT_EXAMPLES)

    def __call__(self, message: str) -> Intent | None:
        """'smalltalk' or 'overview' when the message is that close to one of their examples."""
        name, similarity = self.examples.nearest(message)
        return name if similarity >= INTENT_SIMILARITY else None
