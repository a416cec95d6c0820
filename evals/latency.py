"""python -m evals.latency [--index DIR] [--rounds N]: p50/p95 of encoding, retrieval, `ask`."""

from __future__ import annotations

import argparse
import time
from typing import Any

from evals.metrics import percentile
from settings import offline

QUESTIONS = (
    "What are probiotics?",
    "How much melatonin should I take?",
    "Does magnesium help sleep?",
    "What are the side effects of melatonin?",
    "Which ones are most common?",
    "What does the gut use melatonin for?",
    "Is melatonin good for IBS?",
    "What is the capital of France?",
)


def query_latency(assistant: Any, rounds: int) -> dict[str, tuple[float, float]]:
    """p50/p95 (ms) of encoding a query, retrieving passages, and the whole `ask` (warmed up)."""
    retriever = assistant.retriever
    timings: dict[str, list[float]] = {"query encoding": [], "retrieval": [], "full ask": []}
    for round_ in range(rounds):
        for question in QUESTIONS:
            for name, call in (
                ("query encoding", lambda q: retriever.embedder.encode([q])),
                ("retrieval", retriever.passages),
                ("full ask", assistant.ask),
            ):
                text = f"{question} {'?' * (round_ + 1)}{name[0]}"  # a new query: no cache hits
                started = time.perf_counter()
                call(text)
                timings[name].append((time.perf_counter() - started) * 1000)
    return {k: (percentile(v, 50), percentile(v, 95)) for k, v in timings.items()}


def main(argv: list[str] | None = None) -> None:
    """Warm up, then time every question several times; print query-encoding and ask latencies."""
    offline()
    parser = argparse.ArgumentParser(prog="python -m evals.latency", description=__doc__)
    parser.add_argument("--index", help="index folder (default: RAG_INDEX_DIR or .index)")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)

    from assistant.chain import Assistant
    from settings import Settings

    assistant = Assistant(Settings.from_env(index_dir=args.index))
    assistant.warm_up()
    print(f"{'step':<16}{'p50 ms':>8}{'p95 ms':>8}   ({args.rounds} rounds x {len(QUESTIONS)})")
    for name, (p50, p95) in query_latency(assistant, args.rounds).items():
        print(f"{name:<16}{p50:>8.1f}{p95:>8.1f}")


if __name__ == "__main__":
    main()
