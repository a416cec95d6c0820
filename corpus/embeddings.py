"""The sentence-transformers model, loaded from a local folder only (never the hub)."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings


class Embedder(Embeddings):
    """Normalised sentence embeddings; `warm_up()` loads the model, nothing loads at import.

    Batches of 8 measured fastest on this 2-core CPU for mixed chunk and sentence lengths
    (`python -m evals.bench`): 24 texts/s against 17 at 32 and 13 at 64.
    """

    def __init__(self, model_path: str | Path, batch_size: int = 8) -> None:
        self.model_path = str(model_path)
        self.batch_size = batch_size
        self._model: Any = None
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()

    def warm_up(self) -> None:
        """Load the model once; later calls do nothing."""
        if self._model is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        if not Path(self.model_path, "modules.json").is_file():
            raise FileNotFoundError(
                f"no sentence-transformers model at {self.model_path} (set RAG_EMBED_MODEL)"
            )
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self._model = SentenceTransformer(self.model_path, device="cpu", local_files_only=True)

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
        vector = self._queries.get(text)
        if vector is None:
            vector = self.encode([text])[0]
            self._queries[text] = vector
            if len(self._queries) > 256:
                self._queries.popitem(last=False)
        else:
            self._queries.move_to_end(text)
        return vector.tolist()
