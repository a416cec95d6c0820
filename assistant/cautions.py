"""Cautions for questions about safety: "is it safe…" is answered with what the documents warn.

Both halves are read by meaning (bge-small cosine to a few examples), never by a word: does the
question ask whether something is safe, and is a section one of cautions (side effects, safety
considerations, a note for people with a condition)? Section headings are few, so each is read
once per assistant.
"""

from __future__ import annotations

import threading

import numpy as np

from corpus.protocols import TextEncoder

SAFETY_QUESTIONS = (
    "is it safe to take",
    "are there any side effects",
    "is it bad for me",
    "what are the risks",
    "should I be worried about taking it",
    "can it harm me",
    "who should not take it",
)
CAUTION_HEADINGS = (
    "Side effects",
    "Safety considerations",
    "Precautions and warnings",
    "Risks",
    "Who should avoid it",
    "Important note for people with conditions",
)
ASKS_SAFETY = 0.67  # bge-small cosine; chosen on the blind set's dev split
CAUTION_SECTION = 0.7


class Cautions:
    """Which questions ask about safety, and which sections hold the documents' cautions."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder
        self._questions: np.ndarray | None = None
        self._headings: np.ndarray | None = None
        self._sections: dict[str, bool] = {}
        self._lock = threading.Lock()  # the app answers several users at once

    def warm_up(self) -> None:
        """Encode the examples (once)."""
        if self._questions is None:
            self._headings = self.encoder.encode(list(CAUTION_HEADINGS))
            self._questions = self.encoder.encode(list(SAFETY_QUESTIONS))

    def asked(self, question: str) -> bool:
        """Does this question ask whether something is safe?"""
        self.warm_up()
        assert self._questions is not None
        vector = self.encoder.encode([question])[0]
        return float(np.max(self._questions @ vector)) >= ASKS_SAFETY

    def section(self, heading: str) -> bool:
        """Is a section with this heading one of cautions?"""
        with self._lock:
            known = self._sections.get(heading)
        if known is None:
            self.warm_up()
            assert self._headings is not None
            vector = self.encoder.encode([heading])[0]
            known = float(np.max(self._headings @ vector)) >= CAUTION_SECTION
            with self._lock:
                self._sections[heading] = known
        return known
