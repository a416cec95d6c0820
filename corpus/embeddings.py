"""The embedding model, loaded from a local folder only (never the hub).

Three backends of the same model: `torch` (sentence-transformers), `onnx` (the model exported
once to ONNX and run by onnxruntime: the same vectors, and no torch import when serving) and
`onnx-int8` (that export with int8 dynamic quantization: slightly different vectors).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, get_args

import numpy as np
from langchain_core.embeddings import Embeddings

from corpus.onnx_model import OnnxModel, model_id
from settings import PROJECT, Backend, Settings, offline

BACKENDS: tuple[Backend, ...] = get_args(Backend)


class Embedder(Embeddings):
    """Normalised sentence embeddings; `warm_up()` loads the model, nothing loads at import.

    Batches of 8 measured fastest on this 2-core CPU for mixed chunk and sentence lengths
    (`python -m evals.bench`). The default backend is `onnx`: the same vectors as `torch` at
    the same speed, and the app starts without importing torch (1.6 s to a loaded model, not 16).
    """

    def __init__(
        self,
        model_path: str | Path,
        batch_size: int = 8,
        backend: Backend = "onnx",
        cache_dir: str | Path = PROJECT / ".models",
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown embedding backend {backend!r}; choose one of {BACKENDS}")
        self.model_path = str(model_path)
        self.batch_size = batch_size
        self.backend = backend
        self.cache_dir = Path(cache_dir)
        self._model: Any = None
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder:
        """The embedder these settings name (model folder, backend, export cache)."""
        return cls(
            settings.model_path(), backend=settings.embed_backend, cache_dir=settings.model_cache
        )

    @property
    def space(self) -> str:
        """Names the vector space: indexes built in another space must be re-embedded.

        `torch` and `onnx` share one (their vectors agree to 1e-6); `onnx-int8` has its own.
        """
        precision = "int8" if self.backend == "onnx-int8" else "fp32"
        return f"{model_id(self.model_path)}:{precision}"

    def warm_up(self) -> None:
        """Load the model once (exporting it to ONNX first if needed); later calls do nothing."""
        if self._model is not None:
            return
        with self._lock:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        offline()
        if not Path(self.model_path, "modules.json").is_file():
            raise FileNotFoundError(
                f"no sentence-transformers model at {self.model_path} (set RAG_EMBED_MODEL)"
            )
        if self.backend == "torch":
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            self._model = SentenceTransformer(self.model_path, device="cpu", local_files_only=True)
        else:
            self._model = OnnxModel.load(
                self.model_path, self.cache_dir, quantized=self.backend == "onnx-int8"
            )

    @property
    def dimension(self) -> int:
        """Length of one embedding vector."""
        self.warm_up()
        return int(self._model.get_embedding_dimension())

    def encode(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Embed texts in batches; `progress(n)` is called after each batch of n texts."""
        self.warm_up()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        step = 256  # texts per call: the model sorts each call by length, so padding stays small
        parts = []
        for i in range(0, len(texts), step):
            batch = list(texts[i : i + step])
            parts.append(
                self._model.encode(
                    batch,
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            )
            if progress:
                progress(len(batch))
        return np.vstack(parts).astype(np.float32)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """LangChain interface: embed passages."""
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        """LangChain interface: embed one query (recent queries are remembered, not re-embedded)."""
        with self._lock:  # the app answers several users at once
            vector = self._queries.get(text)
            if vector is not None:
                self._queries.move_to_end(text)
        if vector is None:
            vector = self.encode([text])[0]
            with self._lock:
                self._queries[text] = vector
                if len(self._queries) > 256:
                    self._queries.popitem(last=False)
        return vector.tolist()
