"""BEIR SciFact through the project's own ingest and retriever: nDCG@10 and Recall@100.

    python -m evals.scifact [--data DIR] [--cache DIR] [--modes hybrid,dense,bm25]

The abstracts become one Markdown file each (`# title`, then the text), ingested search-only
(no sentence vectors: retrieval is what is measured) into an index kept under `--cache`, so a
second run re-embeds nothing. Rankings come from `HybridRetriever.rank_documents`, the same call
behind `python -m assistant search --jsonl`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from evals.metrics import percentile
from settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "scifact"
DEFAULT_CACHE = ROOT / "evals" / "bench" / ".cache" / "scifact"


class DatasetMissingError(FileNotFoundError):
    """The SciFact folder is not where it was said to be."""


@dataclass(frozen=True)
class Dataset:
    """Test queries and their relevance judgments."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_dataset(data: Path) -> Dataset:
    """Read queries.jsonl and qrels/test.tsv (only queries that have judgments)."""
    needed = [data / "corpus.jsonl", data / "queries.jsonl", data / "qrels" / "test.tsv"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise DatasetMissingError(
            f"SciFact not found: missing {', '.join(missing)}. Point --data at a BEIR SciFact "
            "folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)."
        )
    qrels: dict[str, dict[str, int]] = {}
    for line in (data / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        query_id, doc_id, score = line.split("\t")
        qrels.setdefault(query_id, {})[doc_id] = int(score)
    queries = {}
    for line in (data / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["_id"] in qrels:
            queries[row["_id"]] = row["text"]
    return Dataset(queries, qrels)


def write_corpus(data: Path, folder: Path) -> int:
    """One `<id>.md` per abstract; files already identical are left alone (mtimes kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for line in (data / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        text = f"# {row['title'].strip()}\n\n{row['text'].strip()}\n"
        path = folder / f"{row['_id']}.md"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        count += 1
    return count


def ndcg_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain of the first k documents."""
    gain = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    best = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return gain / best if best else 0.0


def recall_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 100) -> float:
    """Share of the relevant documents found in the first k."""
    wanted = {d for d, g in relevant.items() if g > 0}
    return len(wanted & set(ranking[:k])) / len(wanted) if wanted else 0.0


def score(rankings: Mapping[str, Sequence[str]], dataset: Dataset) -> dict[str, float]:
    """Mean nDCG@10 and Recall@100 over the judged queries (a missing ranking scores 0)."""
    n = len(dataset.queries)
    return {
        "ndcg@10": sum(ndcg_at(rankings.get(q, []), dataset.qrels[q]) for q in dataset.queries) / n,
        "recall@100": sum(recall_at(rankings.get(q, []), dataset.qrels[q]) for q in dataset.queries)
        / n,
    }


def rank_all(
    rank: Callable[[str], list[tuple[str, float]]], dataset: Dataset
) -> tuple[dict[str, list[str]], list[float]]:
    """Every query's ranking, and each query's milliseconds."""
    rankings, timings = {}, []
    for query_id, text in dataset.queries.items():
        started = time.perf_counter()
        rankings[query_id] = [doc for doc, _ in rank(text)]
        timings.append((time.perf_counter() - started) * 1000)
    return rankings, timings


def build_index(
    data: Path, cache: Path, backend: str, log: Callable[[str], None] = print
) -> tuple[Path, dict[str, object]]:
    """Ingest SciFact search-only with this embedding backend; returns (index dir, report)."""
    from ingest.pipeline import ingest

    corpus = cache / "corpus"
    write_corpus(data, corpus)
    index = cache / ("index-int8" if backend == "onnx-int8" else "index-fp32")
    settings = Settings.from_env(
        corpus_dir=corpus, index_dir=index, embed_backend=backend, search_only=True
    )
    report = ingest(settings, log=lambda _: None)
    log(
        f"SciFact index ({backend}): {report.chunks_total} chunks, "
        f"{report.chunks_embedded} embedded in {report.seconds:.0f} s"
    )
    return index, report.to_json()


def evaluate(
    settings: Settings, dataset: Dataset, modes: Sequence[str] = ("dense", "bm25", "hybrid")
) -> dict[str, dict[str, float]]:
    """nDCG@10, Recall@100 and ms per query (p50, p95) of each retrieval mode on this index."""
    from assistant.retrieval import HybridRetriever
    from corpus.embeddings import Embedder
    from corpus.store import Store

    retriever = HybridRetriever(
        store=Store.open(settings), embedder=Embedder.from_settings(settings)
    )
    retriever.warm_up()
    results = {}
    for mode in modes:
        rankings, timings = rank_all(
            lambda q, mode=mode: retriever.rank_documents(q, k=100, mode=mode), dataset
        )
        results[mode] = {
            **score(rankings, dataset),
            "p50_ms": percentile(timings, 50),
            "p95_ms": percentile(timings, 95),
        }
    return results


def search_cli(index: Path, dataset: Dataset, backend: str) -> dict[str, float]:
    """Score the rankings of `python -m assistant search --jsonl --k 100` (the CLI contract)."""
    lines = "".join(json.dumps({"id": q, "question": t}) + "\n" for q, t in dataset.queries.items())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant",
            "search",
            "--jsonl",
            "--k",
            "100",
            "--index",
            str(index),
        ],
        input=lines,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "RAG_EMBED_BACKEND": backend},
        check=True,
    )
    rankings = {}
    for line in done.stdout.splitlines():
        row = json.loads(line)
        rankings[row["id"]] = [r["doc_id"] for r in row["results"]]
    return score(rankings, dataset)


def main(argv: list[str] | None = None) -> int:
    """Ingest (incrementally) and score SciFact; print one line per retrieval mode."""
    parser = argparse.ArgumentParser(prog="python -m evals.scifact", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument(
        "--backend", default=None, help="embedding backend (default: RAG_EMBED_BACKEND or onnx)"
    )
    parser.add_argument("--modes", default="dense,bm25,hybrid")
    args = parser.parse_args(argv)
    try:
        dataset = load_dataset(args.data)
    except DatasetMissingError as exc:
        print(f"error: {exc}")
        return 2
    backend = args.backend or Settings.from_env().embed_backend
    index, _ = build_index(args.data, args.cache, backend)
    settings = Settings.from_env(index_dir=index, embed_backend=backend)
    for mode, result in evaluate(settings, dataset, args.modes.split(",")).items():
        print(
            f"{mode:7s} nDCG@10 {result['ndcg@10']:.3f}  Recall@100 {result['recall@100']:.3f}  "
            f"p50 {result['p50_ms']:.0f} ms/query"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
