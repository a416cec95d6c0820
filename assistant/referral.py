"""Who to ask when the documents don't answer: the professional a refusal points to.

Who a question is about (a child, a pregnancy, an animal, a medicine or product, or an adult's
own health) is read by a softmax regression on the question's meaning (bge-small vectors),
fitted at warm-up on `referrals.jsonl`: 30 short examples written with the first version, and
90 chatty messages written blind by a helper (R1), many about the gut, sleep or an older
relative so that the topic does not decide. It replaced the nearest single example, which sent
"been getting a stomach ache since i upped my melatonin" to a vet (nearest: "my horse has a
sensitive stomach"): on 90 messages another helper wrote blind (`evals/data/referrals_blind.jsonl`,
never fitted on) it names the labeller's professional for 0.933 of them, against 0.711; on the
blind set's refused questions, 0.904 against 0.923. The labels say who a question is about,
never whether it is answered: the gate decides that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from assistant.intent import Learned
from corpus.protocols import TextEncoder

Referral = Literal["doctor", "paediatrician", "pregnancy", "vet", "pharmacist"]
KINDS: tuple[Referral, ...] = get_args(Referral)

WHO: dict[Referral, str] = {
    "paediatrician": "a paediatrician (children's doctor)",
    "pregnancy": "your obstetrician, midwife or doctor",
    "vet": "a vet",
    "pharmacist": "a pharmacist",
    "doctor": "a doctor or pharmacist",
}
EXAMPLES = Path(__file__).resolve().with_name("referrals.jsonl")


class Referrals:
    """Who a question should be taken to."""

    def __init__(self, encoder: TextEncoder, examples: Path = EXAMPLES) -> None:
        self.model = Learned(encoder, examples, KINDS)

    def warm_up(self) -> None:
        """Encode the examples and fit the regression (once)."""
        self.model.warm_up()

    def __call__(self, question: str, previous: str = "") -> Referral:
        """Who this question is about (read alone, then after the previous one): a child, a
        pregnancy, an animal or a medicine sends it to them; anything else to a doctor."""
        for text in (question, f"{previous} {question}" if previous else ""):
            if text and (kind := self.model.label(text)) != "doctor":
                return kind
        return "doctor"
