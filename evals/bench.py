"""python -m evals.bench [--data DIR] [--out DIR]: speed and retrieval quality, side by side.

Measured in one run, so the ratios compare like with like on a noisy machine:
1. the raw encoder's throughput at its best batch size vs the project's full ingest, same texts;
2. the LangChain tutorial pipeline (RecursiveCharacterTextSplitter + Chroma.from_documents with
   HuggingFaceEmbeddings) vs the project's ingest and no-change re-ingest, run twice each;
3. latency p50/p95 of query encoding, retrieval and the full extractive `ask` path;
4. BEIR SciFact nDCG@10 / Recall@100 for dense, BM25 and hybrid (`evals.scifact`);
5. the three embedding backends (torch, onnx, onnx-int8): throughput and SciFact quality;
6. the serving app's start-up time and peak memory;
7. with `make test-llm`'s server built (`.venv-llm`), the LLM option's first-token and full-answer
   times (Qwen2.5-Coder-1.5B through llama.cpp, streamed);
then steps 3 and 4 again against a Chroma server (`chroma run`), and the growth of Chroma and
BM25 from 1k to 50k chunks (`evals.growth`). The SciFact indexes are kept under
`evals/bench/.cache/`: the first run embeds the 5,183 abstracts (about 25 minutes per vector
space on 2 cores), later runs re-embed nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from evals.latency import QUESTIONS, query_latency
from evals.load import free_port, wait_until_up
from settings import offline

REPEATS = 3  # throughputs are medians of this many runs (the machine is noisy)

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpus" / "documents"
LLM_PYTHON = ROOT / ".venv-llm" / "bin" / "python"


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


def encoder_limit(
    embedder: Any, texts: list[str], batches: tuple[int, ...], repeats: int = REPEATS
) -> dict[int, float]:
    """Texts per second of the bare model at each batch size: the median of `repeats` runs."""
    embedder.warm_up()
    model = embedder._model  # the raw SentenceTransformer (or ONNX session): the limit
    model.encode(texts[:8], batch_size=8)
    rates = {}
    for batch in batches:
        runs = []
        for _ in range(repeats):
            started = time.perf_counter()
            model.encode(
                texts, batch_size=batch, normalize_embeddings=True, show_progress_bar=False
            )
            runs.append(len(texts) / (time.perf_counter() - started))
        rates[batch] = statistics.median(runs)
    return rates


def project_ingest(embedder: Any, workdir: Path) -> dict[str, float]:
    """Full ingest of the seed corpus into a new index (median of runs), then a no-change one."""
    from ingest.pipeline import ingest
    from settings import Settings

    seconds = []
    for n in range(REPEATS):  # each into a new index; the last one is kept
        settings = Settings.from_env(corpus_dir=CORPUS, index_dir=workdir / f"ours-{n}")
        first = ingest(settings, embedder=embedder, log=lambda _: None)
        seconds.append(first.seconds)
    again = ingest(settings, embedder=embedder, log=lambda _: None)
    from corpus.store import Store

    store = Store.open(settings)
    return {
        "seconds": statistics.median(seconds),
        "index_dir": str(settings.index_dir),
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
    port = free_port()
    env = {**os.environ, "RAG_INDEX_DIR": str(index_dir), "RAG_CORPUS_DIR": str(CORPUS)}
    url = f"http://127.0.0.1:{port}/"
    started = time.perf_counter()
    with open(workdir / "app.log", "w+") as log:
        app = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
        try:
            wait_until_up(url, app, timeout=180, log=log, what="the app", interval=0.1)
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
    return {"ready_seconds": ready, "peak_rss_mb": peak_kb / 1024}


@contextmanager
def chroma_server(path: Path, log_file: Path) -> Iterator[int]:
    """`chroma run` on a loopback port serving this persisted folder; yields the port."""
    port = free_port()
    chroma = Path(sys.executable).parent / "chroma"
    with open(log_file, "w+") as log:
        server = subprocess.Popen(
            [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=log,
        )
        try:
            heartbeat = f"http://127.0.0.1:{port}/api/v2/heartbeat"
            wait_until_up(heartbeat, server, timeout=60, log=log, what="chroma")
            yield port
        finally:
            server.terminate()
            server.wait(timeout=20)


ANCHORS = {  # SciFact nDCG@10 from the issue: published figures and plain tools measured here
    "BM25 (BEIR paper)": 0.665,
    "bm25s": 0.680,
    "all-MiniLM-L6-v2": 0.645,
    "BM25 + MiniLM cross-encoder": 0.688,
    "bge-small-en-v1.5": 0.713,
    "bm25s + MiniLM, plain RRF": 0.717,
}


def chart(results: dict[str, Any], path: Path) -> None:
    """SciFact nDCG@10 beside the anchors, and the seed corpus latencies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    scifact = results.get("scifact", {})
    names = list(ANCHORS) + [f"ours: {m}" for m in scifact]
    values = list(ANCHORS.values()) + [r["ndcg@10"] for r in scifact.values()]
    colours = ["#999999"] * len(ANCHORS) + ["#2a7ab0"] * len(scifact)
    left.barh(names, values, color=colours)
    left.axvline(0.73, color="#c0392b", linestyle="--", label="goal 0.73")
    left.set_xlim(0.5, 0.8)
    left.set_xlabel("SciFact nDCG@10")
    left.legend(loc="lower right")
    latency = results["latency"]
    steps = list(latency)
    right.bar([s + "\np50" for s in steps], [latency[s][0] for s in steps], color="#2a7ab0")
    right.bar([s + "\np95" for s in steps], [latency[s][1] for s in steps], color="#7fb3d5")
    right.axhline(60, color="#c0392b", linestyle="--", label="ask p50 goal 60 ms")
    right.set_ylabel("ms (seed corpus)")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print the table, write results.md, results.json and results.png."""
    offline()
    from evals.scifact import DEFAULT_CACHE, DEFAULT_DATA

    parser = argparse.ArgumentParser(prog="python -m evals.bench", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="BEIR SciFact folder")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="SciFact indexes")
    parser.add_argument("--out", type=Path, default=ROOT / "evals" / "bench")
    parser.add_argument("--rounds", type=int, default=5, help="latency rounds over the questions")
    parser.add_argument("--llm-python", default=str(LLM_PYTHON), help="python with llama.cpp")
    args = parser.parse_args(argv)

    from assistant.chain import Assistant
    from corpus.embeddings import BACKENDS, Embedder
    from evals import growth, scifact
    from settings import Settings

    settings = Settings.from_env()
    try:
        dataset = scifact.load_dataset(args.data)
    except scifact.DatasetMissingError as exc:
        print(f"note: {exc}\n      Steps 4, 5 and the Chroma-server runs are skipped.\n")
        dataset = None
    results: dict[str, Any] = {"backend": settings.embed_backend}
    rows: list[tuple[str, str, str]] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        texts = seed_texts()
        limits = {
            b: encoder_limit(
                Embedder.from_settings(settings.replace(embed_backend=b)), texts, (8, 16, 32)
            )
            for b in BACKENDS
        }
        embedder = Embedder.from_settings(settings)
        embedder.warm_up()
        ours = project_ingest(embedder, workdir)
        peer = tutorial_pipeline(settings.model_path(), workdir)
        seed_dir = Path(ours["index_dir"])
        seed_index = settings.replace(corpus_dir=CORPUS, index_dir=seed_dir)
        assistant = Assistant(seed_index, embedder=embedder)
        assistant.warm_up()
        results.update(limits=limits, ours=ours, peer=peer)
        results["latency"] = query_latency(assistant, args.rounds)
        if dataset is not None:
            index, report = scifact.build_index(args.data, args.cache, settings.embed_backend)
            on_disk = settings.replace(index_dir=index, search_only=True)
            results["scifact_ingest"] = report
            results["scifact"] = scifact.evaluate(on_disk, dataset)
            results["scifact_cli"] = scifact.search_cli(index, dataset, settings.embed_backend)
            int8_index, _ = scifact.build_index(args.data, args.cache, "onnx-int8")
            results["scifact_int8"] = scifact.evaluate(
                on_disk.replace(index_dir=int8_index, embed_backend="onnx-int8"),
                dataset,
                ("dense", "hybrid"),
            )
            served = workdir / "served"
            shutil.copytree(index / "chroma", served / "scifact")
            shutil.copytree(seed_dir / "chroma", served / "seed")
            with chroma_server(served / "scifact", workdir / "chroma-scifact.log") as port:
                remote = on_disk.replace(chroma_host="127.0.0.1", chroma_port=port)
                results["server_scifact"] = scifact.evaluate(remote, dataset, ("hybrid",))
            with chroma_server(served / "seed", workdir / "chroma-seed.log") as port:
                remote = replace(seed_index, chroma_host="127.0.0.1", chroma_port=port)
                server_assistant = Assistant(remote, embedder=embedder)
                server_assistant.warm_up()
                results["server_latency"] = query_latency(server_assistant, args.rounds)
            results["growth"] = [asdict(g) for g in growth.measure(index)]
        results["serving"] = app_start(seed_dir, workdir)
        if Path(args.llm_python).is_file():
            from evals.llm import llm_latency

            results["llm"] = llm_latency(args.llm_python, seed_index, embedder, QUESTIONS)
        else:
            print(f"note: no {args.llm_python} (`make test-llm` builds it): LLM times skipped")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = table_rows(results, settings.embed_backend)
    table = "| measurement | result | goal |\n|---|---|---|\n" + "\n".join(
        f"| {a} | {b} | {c} |" for a, b, c in rows
    )
    print(table)
    report = (
        f"# Benchmarks\n\nThroughputs are medians of {REPEATS} runs; latencies are p50 / p95 over "
        f"{args.rounds} rounds of the questions, after warm-up.\n\n{table}\n"
    )
    if "growth" in results:
        grown = growth.table([growth.Growth(**g) for g in results["growth"]])
        print(f"\n{grown}")
        report += f"\n## Growth (`evals/growth.py`)\n\n{grown}\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(report, encoding="utf-8")
    (args.out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    chart(results, args.out / "results.png")
    print(f"\nwrote {args.out / 'results.md'}, results.json and results.png")
    return 0


def table_rows(r: dict[str, Any], backend: str) -> list[tuple[str, str, str]]:
    """Every figure beside its goal."""
    limit = r["limits"][backend]
    best = max(limit, key=limit.get)
    ours, peer = r["ours"], r["peer"]
    rate = ours["texts"] / ours["seconds"]
    rows = [
        (
            f"raw encoder ({backend}), best batch",
            f"{limit[best]:.1f} texts/s (batch {best})",
            "the limit",
        ),
        (
            "project ingest, same texts",
            f"{rate:.1f} texts/s = {rate / limit[best]:.2f}x the encoder",
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
        (f"seed: {name} p50 / p95", f"{p50:.1f} / {p95:.1f} ms", goals[name])
        for name, (p50, p95) in r["latency"].items()
    ]
    if "scifact" in r:
        for mode, m in r["scifact"].items():
            goal = ">= 0.73 nDCG@10" if mode == "hybrid" else ""
            rows.append(
                (
                    f"SciFact {mode}",
                    f"nDCG@10 {m['ndcg@10']:.3f}, Recall@100 {m['recall@100']:.3f}, {m['p50_ms']:.0f} / {m['p95_ms']:.0f} ms",
                    goal,
                )
            )
        cli = r["scifact_cli"]
        rows.append(
            (
                "SciFact hybrid via `assistant search --jsonl`",
                f"nDCG@10 {cli['ndcg@10']:.3f}, Recall@100 {cli['recall@100']:.3f}",
                "= in-process",
            )
        )
        t, i8 = r["limits"]["torch"], r["limits"]["onnx-int8"]
        speed = max(i8.values()) / max(t.values())
        rows.append(
            (
                "onnx-int8 vs torch encoder",
                f"{speed:.2f}x ({max(i8.values()):.1f} vs {max(t.values()):.1f} texts/s)",
                ">= 2x",
            )
        )
        onnx = r["limits"]["onnx"]
        rows.append(
            (
                "onnx (fp32) vs torch encoder",
                f"{max(onnx.values()) / max(t.values()):.2f}x, same vectors",
                "",
            )
        )
        for mode, m in r["scifact_int8"].items():
            delta = m["ndcg@10"] - r["scifact"][mode]["ndcg@10"]
            rows.append(
                (
                    f"SciFact {mode}, onnx-int8",
                    f"nDCG@10 {m['ndcg@10']:.3f} ({delta:+.3f})",
                    "within 0.01",
                )
            )
        rows.append(
            (
                "SciFact ingest (search-only)",
                f"{r['scifact_ingest']['chunks_total']} chunks, {r['scifact_ingest']['chunks_embedded']} embedded this run, {r['scifact_ingest']['seconds']:.0f} s",
                "",
            )
        )
        m = r["server_scifact"]["hybrid"]
        rows.append(
            (
                "Chroma server: SciFact hybrid",
                f"nDCG@10 {m['ndcg@10']:.3f}, {m['p50_ms']:.0f} / {m['p95_ms']:.0f} ms",
                "same ranking",
            )
        )
        p50, p95 = r["server_latency"]["full ask"]
        rows.append(("Chroma server: seed full ask p50 / p95", f"{p50:.1f} / {p95:.1f} ms", ""))
    s = r["serving"]
    rows += [
        ("app start to served page", f"{s['ready_seconds']:.1f} s", "<= 15 s"),
        ("app peak RSS after 24 answers", f"{s['peak_rss_mb']:.0f} MB", "<= 1536 MB"),
    ]
    if "llm" in r:
        llm = r["llm"]
        rows += [
            (
                f"LLM first token p50 / p95 ({llm['answers']} answers, streamed)",
                "{:.1f} / {:.1f} s".format(*llm["first_token"]),
                "p50 <= 5 s",
            ),
            (
                "LLM full answer p50 / p95",
                "{:.1f} / {:.1f} s".format(*llm["full_answer"]),
                "p50 <= 25 s",
            ),
        ]
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
