"""Messages that are not questions about the documents: small talk and requests for an overview.

A softmax regression on the message's meaning (bge-small vectors) reads it as a question, small
talk, a request for an overview or an instruction to the assistant (write code, show your prompt:
it is then read as a question, and the gate refuses it unless the documents answer). It is fitted
at warm-up on `intents.jsonl`: 16 examples of the first version, 160 messages written blind by one
helper (I1: greetings with a vague request for help, thanks, questions about the bot, questions
that start with "hi" or are one word long) and 70 instructions by another (I3). Small talk it is
sure of is answered before the documents are read; otherwise the documents are read first, and
likely small talk or an overview only replaces a refusal. On 190 messages two other helpers wrote
blind (`evals/data/intents_blind.jsonl`, I2 and I4) it routes 0.895 right, against 0.758 for the
nearest example above a cosine of 0.8, which took "hello there, can you help me?" for a question
and refused it; no question of the eval sets is routed away from the documents. `Examples` (the
nearest example) is what `sections.py` uses. No single word decides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Generic, Literal, TypeVar

import numpy as np

from corpus.protocols import TextEncoder

Intent = Literal["smalltalk", "overview"]

INTENT_FILE = Path(__file__).resolve().with_name("intents.jsonl")
L2 = 1e-3  # weight decay of a `Learned` fit (1e-2 named the held-out referrals worse: 0.922)
STEPS = 800  # full-batch gradient steps
SURE = 0.9  # small talk this likely is answered before the documents are read
LIKELY = 0.7  # and this likely, instead of a refusal (below it, "repeat the text above")


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


class Learned(Generic[K]):
    """A softmax regression on texts' meaning (bge-small vectors), fitted at warm-up, in a few
    milliseconds, on labelled examples: a JSONL file of {"text", "label"} rows."""

    def __init__(self, encoder: TextEncoder, path: Path, labels: Sequence[K]) -> None:
        self.encoder = encoder
        self.path = path
        self.labels = tuple(labels)
        self._model: tuple[np.ndarray, np.ndarray] | None = None

    def warm_up(self) -> None:
        """Encode the examples and fit (once)."""
        self._fitted()

    def _fitted(self) -> tuple[np.ndarray, np.ndarray]:
        if self._model is None:
            rows = [json.loads(line) for line in self.path.read_text("utf-8").splitlines()]
            vectors = np.asarray(self.encoder.encode([r["text"] for r in rows]), np.float64)
            labels = np.array([self.labels.index(r["label"]) for r in rows])
            self._model = fit(vectors, labels, len(self.labels))
        return self._model

    def probabilities(self, text: str) -> dict[K, float]:
        """Each label's probability for the text."""
        weights, bias = self._fitted()
        logits = self.encoder.encode([text])[0] @ weights + bias
        p = np.exp(logits - logits.max())
        return dict(zip(self.labels, (p / p.sum()).tolist(), strict=True))

    def label(self, text: str) -> K:
        """The most likely label for the text."""
        scores = self.probabilities(text)
        return max(scores, key=scores.__getitem__)


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


class Intents:
    """Which kind of non-question a message is, if any."""

    def __init__(self, encoder: TextEncoder, path: Path = INTENT_FILE) -> None:
        self.model = Learned(encoder, path, ("question", "smalltalk", "overview", "instruction"))

    def warm_up(self) -> None:
        """Fit the classifier (once)."""
        self.model.warm_up()

    def __call__(self, message: str, conversation: bool = False) -> Intent | None:
        """'smalltalk' or 'overview' when the message is likely that; None for a question, or
        for an instruction to the assistant (it is answered, or refused, as a question is).
        In a conversation an elliptical follow-up ("Tell me more about that.") can read like a
        request for an overview, so there an overview must be sure."""
        scores = self.model.probabilities(message)
        label = max(scores, key=scores.__getitem__)
        floor = SURE if conversation and label == "overview" else LIKELY
        if label in ("smalltalk", "overview") and scores[label] >= floor:
            return label
        return None

    def sure_smalltalk(self, message: str) -> bool:
        """So surely small talk that the documents need not be read ("hi", "thanks!")."""
        return self.model.probabilities(message)["smalltalk"] >= SURE
