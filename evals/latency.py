"""python -m evals.latency [--index DIR] [--rounds N]: p50/p95 of the extractive `ask` path."""

from __future__ import annotations

import argparse
import os
import time

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


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def main(argv: list[str] | None = None) -> None:
    """Warm up, then time every question several times; print query-encoding and ask latencies."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(prog="python -m evals.latency", description=__doc__)
    parser.add_argument("--index", help="index folder (default: RAG_INDEX_DIR or .index)")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)

    from assistant.chain import Assistant
    from corpus.settings import Settings

    assistant = Assistant(Settings.from_env(index_dir=args.index))
    assistant.warm_up()
    embedder = assistant.retriever.embedder
    encode, ask = [], []
    for round_ in range(args.rounds):
        for question in QUESTIONS:
            text = f"{question} ({round_})"  # defeat the query cache: time real encoding
            started = time.perf_counter()
            embedder.encode([text])
            encode.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            assistant.ask(f"{question} {'?' * (round_ + 1)}")
            ask.append((time.perf_counter() - started) * 1000)
    print(f"{'step':<22}{'p50 ms':>8}{'p95 ms':>8}   (n={len(ask)})")
    for name, values in (("query encoding", encode), ("full ask (extractive)", ask)):
        print(f"{name:<22}{percentile(values, 50):>8.1f}{percentile(values, 95):>8.1f}")


if __name__ == "__main__":
    main()
