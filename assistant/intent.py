"""Messages that are not questions about the documents: small talk and requests for an overview.

A message is read as one of them when its nearest example is close in meaning (bge-small cosine)
and the gate did not find an answer first. No single word decides.
"""

from __future__ import annotations

from typing import Literal

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


class Intents:
    """Which kind of non-question a message is, if any; the examples are encoded on first use."""

    def __init__(self, encoder: TextEncoder, examples: dict[Intent, tuple[str, ...]] | None = None):
        self.encoder = encoder
        self.examples = examples or INTENT_EXAMPLES
        self._vectors: dict[Intent, np.ndarray] = {}

    def __call__(self, message: str) -> Intent | None:
        """'smalltalk' or 'overview' when the message is that close to one of their examples."""
        if not self._vectors:
            self._vectors = {k: self.encoder.encode(list(v)) for k, v in self.examples.items()}
        vector = self.encoder.encode([message])[0]
        best = {name: float(np.max(vectors @ vector)) for name, vectors in self._vectors.items()}
        name = max(best, key=best.__getitem__)
        return name if best[name] >= INTENT_SIMILARITY else None
