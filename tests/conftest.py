"""Shared fixtures: the real model, a real index of the real corpus built once per session."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

for _key in [k for k in os.environ if k.startswith("RAG_")]:
    del os.environ[_key]

import pytest  # noqa: E402

from corpus.embeddings import Embedder  # noqa: E402
from settings import Settings, default_model_path, offline  # noqa: E402

offline()  # before gradio or chromadb is imported by any test module

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus" / "documents"
# Debian's chromium, headless, with nothing fetched from outside (never `playwright install`).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
SOURCES = tomllib.loads((CORPUS / "sources.toml").read_text(encoding="utf-8"))


def run_cli(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `python -m ...` from the project root, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@contextlib.contextmanager
def served_app(
    corpus: Path, index: Path, log: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """`python app.py` over this corpus and index on a free loopback port; yields its URL."""
    from evals.load import served_app as serve

    paths = {"RAG_CORPUS_DIR": str(corpus), "RAG_INDEX_DIR": str(index)}
    with serve({**paths, **(env or {})}, log_path=log) as url:
        yield url


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The bundled all-MiniLM-L6-v2, loaded once."""
    model = Embedder(default_model_path())
    model.warm_up()
    return model


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The real corpus ingested once through the CLI; returns (index dir, JSON report)."""
    index = tmp_path_factory.mktemp("seed") / "index"
    result = run_cli("ingest", "--corpus", str(CORPUS), "--index", str(index), "--json")
    assert result.returncode == 0, result.stderr
    return index, json.loads(result.stdout)


@pytest.fixture
def workspace(tmp_path: Path, seed_index: tuple[Path, dict]) -> Settings:
    """A private copy of the corpus and of its built index, free to change."""
    corpus = tmp_path / "documents"
    shutil.copytree(CORPUS, corpus)
    shutil.copytree(seed_index[0], tmp_path / "index")
    return Settings(corpus_dir=corpus, index_dir=tmp_path / "index")


def make_pdf(*lines: str) -> bytes:
    """A minimal one-page PDF with a real text layer (Helvetica, one line per string)."""
    ops = " ".join(f"({line}) Tj 0 -16 Td" for line in lines)
    stream = f"BT /F1 12 Tf 72 720 Td {ops} ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


@pytest.fixture(scope="session")
def assistant(seed_index: tuple[Path, dict], embedder: Embedder):
    """The real assistant over the real index, warmed up once."""
    from assistant.chain import Assistant

    helper = Assistant(Settings(index_dir=seed_index[0]), embedder=embedder)
    helper.warm_up()
    helper.check_suggestions()  # as the app does
    return helper


def source_text(source: str) -> str:
    """A corpus document's text with whitespace collapsed (how quotes are checked)."""
    return " ".join((CORPUS / source).read_text(encoding="utf-8").split())


def declared_kind(source: str) -> str:
    """A corpus document's kind as sources.toml declares it ("document" where it declares none)."""
    return SOURCES.get(source, {}).get("kind", "document")
