"""python -m evals.external [--data DIR] [--limit N]: the answer engine on documents nobody here wrote.

Builds a corpus from each external set (SQuAD 2.0 subset, COVID-QA), asks the held-out `eval`
split's questions through the same assistant the app uses, and compares it, in the same run and
on the same index, with two tutorial pipelines: dense top-3 with no gate, and dense top-3 behind
one cosine threshold (fitted on the `calib` split for the best balanced accuracy). Prints the
table and writes `evals/reports/external.md`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evals.calibrate import CACHE, REPORTS, contains_answer, external_assistant
from evals.datasets import (
    DEFAULT_DATA,
    Dataset,
    DatasetMissingError,
    ExternalQuestion,
    covidqa,
    lay_wiki,
    sample,
    squad,
)
from evals.reader.data import lay_foreign

EVAL_LIMIT = 400
log = logging.getLogger("evals.external")


@dataclass(frozen=True)
class Result:
    """One system's outcome on one question."""

    answered: bool
    hit: bool  # answered, and a quoted text holds a gold answer
    latency_ms: float


@dataclass(frozen=True)
class Row:
    """One system's scores on one set."""

    dataset: str
    system: str
    hasans_hit: float
    answered: float
    noans_refusal: float
    balanced_accuracy: float
    p50_ms: float
    p95_ms: float


def score(
    dataset: str, system: str, questions: Sequence[ExternalQuestion], results: Sequence[Result]
) -> Row:
    """HasAns hit, answered share, NoAns refusal, their balanced accuracy, latency."""
    yes = [r for q, r in zip(questions, results, strict=True) if q.answerable]
    no = [r for q, r in zip(questions, results, strict=True) if not q.answerable]
    answered = float(np.mean([r.answered for r in yes])) if yes else 0.0
    refused = float(np.mean([not r.answered for r in no])) if no else 0.0
    latencies = [r.latency_ms for r in results]
    return Row(
        dataset,
        system,
        float(np.mean([r.hit for r in yes])) if yes else 0.0,
        answered,
        refused,
        0.5 * (answered + refused),
        float(np.percentile(latencies, 50)),
        float(np.percentile(latencies, 95)),
    )


def timed(fn: Callable[[ExternalQuestion], tuple[bool, list[str]]], q: ExternalQuestion) -> Result:
    """Run one system on one question; a hit needs an answer whose quotes hold a gold answer."""
    started = time.perf_counter()
    answered, quotes = fn(q)
    hit = answered and q.answerable and any(contains_answer(t, q.answers) for t in quotes)
    return Result(answered, hit, (time.perf_counter() - started) * 1000)


def fitted_cosine(helper, questions: Sequence[ExternalQuestion]) -> float:
    """The single cosine threshold with the best balanced accuracy on these questions."""
    top = np.asarray([_dense_top(helper, q.question)[0] for q in questions])
    answerable = np.asarray([q.answerable for q in questions])
    grid = np.linspace(0.0, 1.0, 101)
    scores = [0.5 * ((top[answerable] >= t).mean() + (top[~answerable] < t).mean()) for t in grid]
    return float(grid[int(np.argmax(scores))])


def _dense_top(helper, question: str) -> tuple[float, list[str]]:
    passages = helper.retriever.passages(question, k=3, mode="dense")
    return (passages[0].dense if passages else 0.0), [p.chunk.text for p in passages]


def evaluate(dataset: Dataset, limit: int | None = EVAL_LIMIT, cache: Path = CACHE) -> list[Row]:
    """The project and both baselines on one dataset's eval split."""
    from assistant.answer import Gate

    helper = external_assistant(dataset, cache, gate=Gate.load())
    helper.warm_up()
    questions = sample(dataset.questions, "eval", limit)
    threshold = fitted_cosine(helper, sample(dataset.questions, "calib", limit))
    log.info(
        "%s: %d questions; baseline cosine threshold %.2f", dataset.name, len(questions), threshold
    )

    def project(q: ExternalQuestion) -> tuple[bool, list[str]]:
        answer = helper.ask(q.question)
        return answer.status == "answered", [c.quote for c in answer.citations]

    def top3(q: ExternalQuestion) -> tuple[bool, list[str]]:
        return True, _dense_top(helper, q.question)[1]

    def cosine(q: ExternalQuestion) -> tuple[bool, list[str]]:
        best, texts = _dense_top(helper, q.question)
        return best >= threshold, texts

    return [
        score(dataset.name, name, questions, [timed(fn, q) for q in questions])
        for name, fn in (
            ("project", project),
            ("dense top-3, no gate", top3),
            (f"dense top-3, cosine >= {threshold:.2f}", cosine),
        )
    ]


def table(rows: Sequence[Row]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| set | system | HasAns hit | answered | NoAns refusal | balanced accuracy | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.dataset} | {r.system} | {r.hasans_hit:.3f} | {r.answered:.3f} | "
        f"{r.noans_refusal:.3f} | {r.balanced_accuracy:.3f} | {r.p50_ms:.0f} | {r.p95_ms:.0f} |"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Evaluate on both sets; print and write the table."""
    parser = argparse.ArgumentParser(prog="python -m evals.external", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="datasets folder")
    parser.add_argument("--limit", type=int, default=EVAL_LIMIT, help="questions per set")
    parser.add_argument("--report", type=Path, default=REPORTS, help="report folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        datasets = [
            squad(args.data),
            covidqa(args.data),
            lay_wiki(args.data),
            lay_foreign(args.data),
        ]
    except DatasetMissingError as exc:
        print(f"external data absent, nothing evaluated: {exc}", file=sys.stderr)
        return 2
    rows = [row for d in datasets for row in evaluate(d, args.limit)]
    text = table(rows)
    args.report.mkdir(parents=True, exist_ok=True)
    (args.report / "external.md").write_text(
        "# External sets (held-out eval split)\n\n"
        "HasAns hit: answered, and a quoted text holds a gold answer. Balanced accuracy: the mean "
        "of the answered share of answerable questions and the refused share of the rest.\n\n"
        + text
        + "\n",
        encoding="utf-8",
    )
    (args.report / "external.json").write_text(
        json.dumps([r.__dict__ for r in rows], indent=1) + "\n", encoding="utf-8"
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
