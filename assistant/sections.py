"""What a question asks for and what a section holds, read by meaning (bge-small cosine to a
few examples), never by a word.

- A question about safety ("is it safe…") is also answered with the documents' cautions: the
  sentences of sections about side effects, safety or a note for people with a condition.
- A reference list is not a claim: its lines ("Song GH et al., Gut (2005).") are quoted only
  when the question asks for sources.

Section headings are few, so each is read once per assistant.
"""

from __future__ import annotations

import threading
from typing import Literal

from assistant.intent import Examples
from corpus.protocols import TextEncoder

Kind = Literal["safety", "sources", "cautions", "references"]

EXAMPLES: dict[Kind, tuple[str, ...]] = {
    "safety": (  # questions
        "is it safe to take",
        "are there any side effects",
        "is it bad for me",
        "what are the risks",
        "should I be worried about taking it",
        "can it harm me",
        "who should not take it",
    ),
    "sources": (  # questions
        "which studies say that",
        "what are your sources",
        "where does this come from, any references?",
        "which papers did the blog cite",
        "what research is this based on",
    ),
    "cautions": (  # section headings
        "Side effects",
        "Safety considerations",
        "Precautions and warnings",
        "Risks",
        "Who should avoid it",
        "Important note for people with conditions",
    ),
    "references": (  # section headings
        "References",
        "Sources",
        "Bibliography",
        "Further reading",
        "Works cited",
        "Citations and studies cited",
    ),
}
# bge-small cosine to the nearest example. Questions: chosen on the blind set's dev split;
# headings: this corpus's caution headings score 0.71-0.89 and its others at most 0.69;
# "References" scores 0.99 as a reference list and every other heading at most 0.69.
SIMILARITY: dict[Kind, float] = {"safety": 0.67, "sources": 0.8, "cautions": 0.7, "references": 0.8}


class Sections:
    """Reads questions (safety? sources?) and section headings (cautions? references?)."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.examples = Examples(encoder, EXAMPLES)
        self._headings: dict[tuple[Kind, str], bool] = {}
        self._lock = threading.Lock()  # the app answers several users at once

    def warm_up(self) -> None:
        """Encode the examples (once)."""
        self.examples.warm_up()

    def _is(self, kind: Kind, text: str) -> bool:
        return self.examples.similarity(text)[kind] >= SIMILARITY[kind]

    def asks_safety(self, question: str) -> bool:
        """Does this question ask whether something is safe?"""
        return self._is("safety", question)

    def asks_sources(self, question: str) -> bool:
        """Does this question ask for the documents' sources or studies?"""
        return self._is("sources", question)

    def heading_is(self, kind: Literal["cautions", "references"], heading: str) -> bool:
        """Is a section with this heading one of cautions, or a reference list? (Remembered:
        headings are few, and the encoder keeps only recent texts.)"""
        with self._lock:
            known = self._headings.get((kind, heading))
        if known is None:
            known = self._is(kind, heading)
            with self._lock:
                self._headings[(kind, heading)] = known
        return known
