"""Who to ask when the documents don't answer: the professional a refusal points to.

A question goes to the kind of professional of its nearest example in meaning (bge-small
cosine): about a child, a pregnancy, a pet, a medicine or product, or anything else (a doctor). The
examples say who a question is about, never whether it is answered: the gate decides that.
"""

from __future__ import annotations

from typing import Literal

from assistant.intent import Examples
from corpus.protocols import TextEncoder

Referral = Literal["paediatrician", "pregnancy", "vet", "pharmacist", "doctor"]

WHO: dict[Referral, str] = {
    "paediatrician": "a paediatrician (children's doctor)",
    "pregnancy": "your obstetrician, midwife or doctor",
    "vet": "a vet",
    "pharmacist": "a pharmacist",
    "doctor": "a doctor or pharmacist",
}

REFERRAL_EXAMPLES: dict[Referral, tuple[str, ...]] = {
    "paediatrician": (
        "how much can I give my 4 year old",
        "is it safe for kids",
        "can my toddler take it",
        "my teenage daughter wants to try it",
        "what dose for a child",
        "is it ok for my baby",
    ),
    "pregnancy": (
        "can I take it while pregnant",
        "is it safe when breastfeeding",
        "we're trying to conceive, is it ok",
        "I'm expecting, should I stop",
        "are they fine during pregnancy",
    ),
    "vet": (
        "can I give it to my dog",
        "is it safe for cats",
        "my horse has a sensitive stomach",
        "what dose for my puppy",
    ),
    "pharmacist": (
        "can I take it with my antidepressant",
        "does it interact with blood thinners",
        "is it ok to mix with alcohol",
        "I'm on medication, can I combine them",
        "which brand should I buy",
        "does the product contain sugar or gluten",
    ),
    "doctor": (
        "how long before bed should I take it",
        "does it help with my headaches",
        "I have a chronic illness, is it ok for me",
        "is it safe for my elderly mother",
        "how many weeks until it works",
        "is another supplement better for sleep",
        "can you get dependent on it",
        "what should I do about my symptoms",
        "what dose did the studies use",
    ),
}
REFERRAL_SIMILARITY = 0.6  # below this for every example, a doctor or pharmacist


class Referrals:
    """Who a question should be taken to."""

    def __init__(
        self, encoder: TextEncoder, examples: dict[Referral, tuple[str, ...]] | None = None
    ) -> None:
        self.examples = Examples(encoder, examples or REFERRAL_EXAMPLES)

    def warm_up(self) -> None:
        """Encode the examples (once)."""
        self.examples.warm_up()

    def __call__(self, question: str, previous: str = "") -> Referral:
        """The nearest kind of professional for this question (read alone, then after the
        previous one), or 'doctor' when no example is close."""
        for text in (question, f"{previous} {question}" if previous else ""):
            if text:
                name, similarity = self.examples.nearest(text)
                if similarity >= REFERRAL_SIMILARITY:
                    return name
        return "doctor"
