"""How the index grows with the corpus: Chroma and BM25 from 1k to 50k chunks.

Takes real chunks (text and vectors) from an existing index, e.g. the SciFact one, and builds
stores of increasing size from them; past the real count, copies get slightly perturbed vectors
(so HNSW sees distinct points) and reuse the texts. Nothing is embedded: embedding time is
linear in the text and is measured by the bench itself.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIZES = (1_000, 5_000, 10_000, 50_000)


@dataclass(frozen=True)
class Growth:
    """One store size and what it cost."""

    chunks: int
    chroma_write_s: float
    chroma_disk_mb: float
    chroma_query_ms: float
    bm25_build_s: float
    bm25_mb: float
    bm25_query_ms: float


def _folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def measure(index: Path, sizes: tuple[int, ...] = SIZES, queries: int = 100) -> list[Growth]:
    """Build a Chroma collection and a BM25 index at each size; time writes and queries."""
    import bm25s
    import chromadb

    from assistant.lexicon import index_terms
    from corpus.store import Store
    from settings import Settings

    source = Store.open(Settings(index_dir=index))
    got = source.chunks.get(include=["embeddings", "documents"])
    texts = list(got["documents"])
    vectors = np.asarray(got["embeddings"], dtype=np.float32)
    rng = np.random.default_rng(0)
    probes = vectors[rng.choice(len(vectors), size=queries, replace=False)]
    probe_terms = [index_terms(t) or ["_"] for t in rng.choice(texts, size=queries)]
    rows = []
    for size in sizes:
        picks = np.arange(size) % len(vectors)
        batch_vectors = vectors[picks] + (picks != np.arange(size))[:, None] * rng.normal(
            0, 0.02, (size, vectors.shape[1])
        ).astype(np.float32)
        batch_vectors /= np.linalg.norm(batch_vectors, axis=1, keepdims=True)
        batch_texts = [texts[i] for i in picks]
        folder = Path(tempfile.mkdtemp(prefix="growth-"))
        try:
            client = chromadb.PersistentClient(
                path=str(folder), settings=chromadb.Settings(anonymized_telemetry=False)
            )
            collection = client.create_collection(
                "chunks", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
            )
            started = time.perf_counter()
            for i in range(0, size, 1000):
                collection.add(
                    ids=[f"c{j}" for j in range(i, min(i + 1000, size))],
                    embeddings=batch_vectors[i : i + 1000],
                    documents=batch_texts[i : i + 1000],
                )
            write_s = time.perf_counter() - started
            timings = []
            for probe in probes:
                started = time.perf_counter()
                collection.query(query_embeddings=[probe], n_results=40, include=["distances"])
                timings.append(time.perf_counter() - started)
            disk = _folder_mb(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        bm25 = bm25s.BM25()
        bm25.index([index_terms(t) or ["_"] for t in batch_texts], show_progress=False)
        build_s = time.perf_counter() - started
        bm25_bytes = sum(a.nbytes for a in bm25.scores.values() if hasattr(a, "nbytes"))
        bm25_timings = []
        for terms in probe_terms:
            started = time.perf_counter()
            bm25.get_scores(terms)
            bm25_timings.append(time.perf_counter() - started)
        rows.append(
            Growth(
                chunks=size,
                chroma_write_s=write_s,
                chroma_disk_mb=disk,
                chroma_query_ms=statistics.median(timings) * 1000,
                bm25_build_s=build_s,
                bm25_mb=bm25_bytes / 2**20,
                bm25_query_ms=statistics.median(bm25_timings) * 1000,
            )
        )
    return rows


def table(rows: list[Growth]) -> str:
    """The measurements as a Markdown table."""
    head = (
        "| chunks | Chroma write | Chroma on disk | Chroma query p50 (k=40) "
        "| BM25 build | BM25 arrays | BM25 query p50 |\n|---|---|---|---|---|---|---|\n"
    )
    return head + "\n".join(
        f"| {r.chunks:,} | {r.chroma_write_s:.1f} s | {r.chroma_disk_mb:.0f} MB "
        f"| {r.chroma_query_ms:.1f} ms | {r.bm25_build_s:.1f} s | {r.bm25_mb:.1f} MB "
        f"| {r.bm25_query_ms:.1f} ms |"
        for r in rows
    )
