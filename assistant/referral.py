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

import json
from pathlib import Path
from typing import Literal, get_args

import numpy as np

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
L2 = 1e-3  # weight decay of the fit (tried 1e-2: the held-out set fell to 0.922)
STEPS = 800  # full-batch gradient steps; the fit is a few milliseconds


def fit(vectors: np.ndarray, labels: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights and biases of an L2-regularised softmax regression, by gradient descent."""
    targets = np.eye(classes)[labels]
    weights = np.zeros((vectors.shape[1], classes))
    bias = np.zeros(classes)
    for _ in range(STEPS):
        logits = vectors @ weights + bias
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - targets) / len(vectors)
        weights -= 2.0 * (vectors.T @ grad + L2 * weights)
        bias -= 2.0 * grad.sum(axis=0)
    return weights, bias


class Referrals:
    """Who a question should be taken to."""

    def __init__(self, encoder: TextEncoder, examples: Path = EXAMPLES) -> None:
        self.encoder = encoder
        self.path = examples
        self._model: tuple[np.ndarray, np.ndarray] | None = None

    def warm_up(self) -> None:
        """Encode the examples and fit the regression (once)."""
        self._fitted()

    def _fitted(self) -> tuple[np.ndarray, np.ndarray]:
        if self._model is None:
            rows = [json.loads(line) for line in self.path.read_text("utf-8").splitlines()]
            vectors = self.encoder.encode([r["question"] for r in rows])
            labels = np.array([KINDS.index(r["label"]) for r in rows])
            self._model = fit(np.asarray(vectors, dtype=np.float64), labels, len(KINDS))
        return self._model

    def kind(self, text: str) -> Referral:
        """The most likely kind of professional for one text."""
        weights, bias = self._fitted()
        return KINDS[int(np.argmax(self.encoder.encode([text])[0] @ weights + bias))]

    def __call__(self, question: str, previous: str = "") -> Referral:
        """Who this question is about (read alone, then after the previous one): a child, a
        pregnancy, an animal or a medicine sends it to them; anything else to a doctor."""
        for text in (question, f"{previous} {question}" if previous else ""):
            if text and (kind := self.kind(text)) != "doctor":
                return kind
        return "doctor"
