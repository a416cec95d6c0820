"""python -m evals.bench [--out DIR]: ingest and query speed beside the encoder and a peer.

Measured in one run, so the ratios compare like with like on a noisy machine:
1. the raw encoder's throughput at its best batch size vs the project's full ingest, same texts;
2. the LangChain tutorial pipeline (RecursiveCharacterTextSplitter + Chroma.from_documents with
   HuggingFaceEmbeddings) vs the project's ingest and no-change re-ingest, run twice each;
3. latency p50/p95 of query encoding, retrieval and the full extractive `ask` path;
4. the serving app's start-up time and peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from evals.latency import QUESTIONS, query_latency

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus" / "documents"


def seed_texts() -> list[str]:
    """Exactly the texts the project's ingest embeds for the seed corpus (chunks and sentences)."""
    from ingest.chunking import chunk_document
    from ingest.loaders import load

    texts: list[str] = []
    for path in sorted(CORPUS.glob("*.txt")):
        _, chunks, sentences = chunk_document(
            load(path), source=path.name, doc_id=path.stem, title=None, kind="x", version="v"
        )
        texts += [c.embedding_text() for c in chunks] + [s.text for s in sentences]
    return list(dict.fromkeys(texts))


def encoder_limit(embedder: Any, texts: list[str]) -> dict[str, float]:
    """Texts per second of the bare model at each batch size (after one warm-up batch)."""
    model = embedder._model  # the raw SentenceTransformer: the limit everything else is held to
    model.encode(texts[:8], batch_size=8)
    rates = {}
    for batch in (8, 16, 32, 64):
        started = time.perf_counter()
        model.encode(texts, batch_size=batch, normalize_embeddings=True, show_progress_bar=False)
        rates[batch] = len(texts) / (time.perf_counter() - started)
    return rates


def project_ingest(embedder: Any, workdir: Path) -> dict[str, float]:
    """Full ingest of the seed corpus into a new index, then a no-change re-ingest."""
    from corpus.settings import Settings
    from ingest.pipeline import ingest

    settings = Settings(corpus_dir=CORPUS, index_dir=workdir / "ours")
    first = ingest(settings, embedder=embedder, log=lambda _: None)
    again = ingest(settings, embedder=embedder, log=lambda _: None)
    from corpus.store import Store

    store = Store.open(settings)
    return {
        "seconds": first.seconds,
        "texts": store.chunks.count() + store.sentences.count(),
        "chunks": first.chunks_total,
        "reingest_seconds": again.seconds,
        "reingest_embedded": again.chunks_embedded,
        "chunks_after_reingest": store.chunks.count(),
    }


def tutorial_pipeline(model_path: str, workdir: Path) -> dict[str, float]:
    """The LangChain tutorial way, run twice on the same folder, as a curator would re-run it."""
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    embeddings = HuggingFaceEmbeddings(model=model_path, model_kwargs={"device": "cpu"})
    docs = [
        Document(page_content=p.read_text(encoding="utf-8"), metadata={"source": p.name})
        for p in sorted(CORPUS.glob("*.txt"))
    ]
    splits = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(
        docs
    )
    times = []
    for _ in range(2):
        started = time.perf_counter()
        store = Chroma.from_documents(splits, embeddings, persist_directory=str(workdir / "peer"))
        times.append(time.perf_counter() - started)
    return {
        "seconds": times[0],
        "rerun_seconds": times[1],
        "chunks_first": len(splits),
        "chunks_after_rerun": store._collection.count(),
    }


def app_start(index_dir: Path, workdir: Path) -> dict[str, float]:
    """Seconds from `python app.py` to a served page, and peak RSS after 20 answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAG_INDEX_DIR": str(index_dir), "RAG_CORPUS_DIR": str(CORPUS)}
    started = time.perf_counter()
    log = open(workdir / "app.log", "w")  # noqa: SIM115 - closed below
    app = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if app.poll() is not None or time.perf_counter() - started > 180:
                    raise RuntimeError((workdir / "app.log").read_text()) from None
                time.sleep(0.1)
        ready = time.perf_counter() - started
        from gradio_client import Client

        client = Client(url, verbose=False)
        for question in QUESTIONS * 3:
            client.predict(question, [], api_name="/ask")
        status = Path(f"/proc/{app.pid}/status").read_text()
        peak_kb = int(
            next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))
        )
    finally:
        app.terminate()
        app.wait(timeout=20)
        log.close()
    return {"ready_seconds": ready, "peak_rss_mb": peak_kb / 1024}


def main(argv: list[str] | None = None) -> None:
    """Run every measurement, print the table, write results.md and results.json."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    parser = argparse.ArgumentParser(prog="python -m evals.bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "evals" / "bench")
    parser.add_argument("--rounds", type=int, default=5, help="latency rounds over the questions")
    args = parser.parse_args(argv)

    from corpus.embeddings import Embedder
    from corpus.settings import Settings

    model_path = Settings.from_env().model_path()
    embedder = Embedder(model_path)
    embedder.warm_up()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        texts = seed_texts()
        rates = encoder_limit(embedder, texts)
        ours = project_ingest(embedder, workdir)
        peer = tutorial_pipeline(model_path, workdir)
        from assistant.chain import Assistant

        assistant = Assistant(Settings(corpus_dir=CORPUS, index_dir=workdir / "ours"))
        assistant.warm_up()
        latency = query_latency(assistant, args.rounds)
        serving = app_start(workdir / "ours", workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    best_batch = max(rates, key=rates.get)
    ingest_rate = ours["texts"] / ours["seconds"]
    rows = [
        (
            "raw encoder, best batch size",
            f"{rates[best_batch]:.1f} texts/s (batch {best_batch})",
            "the limit",
        ),
        (
            "project ingest, same texts",
            f"{ingest_rate:.1f} texts/s = {ingest_rate / rates[best_batch]:.2f}x the encoder",
            ">= 0.9x",
        ),
        (
            "project ingest of the seed corpus",
            f"{ours['seconds']:.1f} s, {ours['chunks']} chunks",
            "",
        ),
        (
            "project re-ingest, nothing changed",
            f"{ours['reingest_seconds']:.2f} s, {ours['reingest_embedded']} embedded, {ours['chunks_after_reingest']} chunks",
            "0 embedded",
        ),
        (
            "tutorial pipeline, first run",
            f"{peer['seconds']:.1f} s, {peer['chunks_first']} chunks",
            "",
        ),
        (
            "tutorial pipeline, re-run",
            f"{peer['rerun_seconds']:.1f} s, {peer['chunks_after_rerun']} chunks (duplicated)",
            "",
        ),
    ]
    goals = {"query encoding": "the floor", "retrieval": "", "full ask": "p50 <= 60, p95 <= 150"}
    rows += [
        (f"{name} p50 / p95", f"{p50:.1f} / {p95:.1f} ms", goals[name])
        for name, (p50, p95) in latency.items()
    ]
    rows += [
        ("app start to served page", f"{serving['ready_seconds']:.1f} s", "<= 15 s"),
        ("app peak RSS after 24 answers", f"{serving['peak_rss_mb']:.0f} MB", "<= 1536 MB"),
    ]
    table = "| measurement | result | goal |\n|---|---|---|\n" + "\n".join(
        f"| {a} | {b} | {c} |" for a, b, c in rows
    )
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(f"# Benchmarks\n\n{table}\n", encoding="utf-8")
    results = {"encoder": rates, "ours": ours, "peer": peer, "latency": latency, "serving": serving}
    (args.out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(
        f"\nmedian encoder rate over batch sizes: {statistics.median(rates.values()):.1f} texts/s"
    )


if __name__ == "__main__":
    main()
