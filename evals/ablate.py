"""python -m evals.ablate [--data DIR]: what each part of the gate and of the triage is worth.

Gate: each evidence feature is dropped in turn, the models are refitted on the `calib` split of
both external sets, and measured on the held-out `eval` split: the question model by balanced
accuracy, the sentence model by how often its top sentence holds the answer (single features
are shown for scale). Triage: the model alone, the phrase
floor alone and both, on the test split of `evals/data/triage.jsonl`. Writes `evals/reports/ablation.md`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from assistant.answer import QUESTION_FEATURES, SENTENCE_FEATURES
from evals.calibrate import (
    CALIB_LIMIT,
    QUESTION_MODEL,
    Rows,
    answered,
    balanced_accuracy,
    cached_rows,
    fit_gate,
    probabilities,
    publish,
    triage_rows,
)
from evals.datasets import DEFAULT_DATA, DatasetMissingError, covidqa, lay_wiki, squad


def gate_table(calib: list[Rows], held_out: list[Rows]) -> list[str]:
    """Balanced accuracy on the eval split: the question model in use, all six features, each dropped."""
    variants: list[tuple[str, tuple[str, ...]]] = [
        (f"in use: {', '.join(QUESTION_MODEL)}", QUESTION_MODEL)
    ]
    variants += [("all six", QUESTION_FEATURES)]
    variants += [
        (f"all six without {f}", tuple(x for x in QUESTION_FEATURES if x != f))
        for f in QUESTION_FEATURES
    ]
    variants += [("cross-encoder only", ("best_relevance",))]
    variants += [
        ("sentence cosine only", ("best_similarity",)),
        ("passage cosine only", ("best_passage",)),
    ]
    lines = [
        "| question model | " + " | ".join(r.dataset for r in held_out) + " | mean |",
        "|---" * (len(held_out) + 2) + "|",
    ]
    for name, features in variants:
        gate = fit_gate(calib, question=features)
        scores = [balanced_accuracy(answered(gate, r), r.answerable) for r in held_out]
        lines.append(
            f"| {name} | " + " | ".join(f"{s:.3f}" for s in scores) + f" | {np.mean(scores):.3f} |"
        )
    return lines


def sentence_table(calib: list[Rows], held_out: list[Rows]) -> list[str]:
    """How often the top-ranked sentence holds a gold answer (answerable eval questions whose
    candidates hold one): the cross-encoder alone, and the six features with each one dropped."""
    variants: list[tuple[str, tuple[str, ...]]] = [("cross-encoder only (chosen)", ("relevance",))]
    variants += [("all six features", SENTENCE_FEATURES)]
    variants += [
        (f"all but {f}", tuple(x for x in SENTENCE_FEATURES if x != f)) for f in SENTENCE_FEATURES
    ]
    variants += [("sentence cosine only", ("similarity",))]
    lines = [
        "| sentence model: top-1 holds the answer | "
        + " | ".join(r.dataset for r in held_out)
        + " | mean |"
    ]
    lines.append("|---" * (len(held_out) + 2) + "|")
    for name, features in variants:
        model = fit_gate(calib, sentence=features).sentence
        scores = []
        for r in held_out:
            p = probabilities(model, r.features, SENTENCE_FEATURES)
            top = np.full(len(r.answerable), -1)
            best = np.full(len(r.answerable), -np.inf)
            for row, (q, value) in enumerate(zip(r.question, p, strict=True)):
                if value > best[q]:
                    best[q], top[q] = value, row
            has_gold = np.zeros(len(r.answerable), dtype=bool)
            np.logical_or.at(has_gold, r.question, r.labels)
            asked = np.flatnonzero(has_gold)
            scores.append(float(np.mean([r.labels[top[q]] for q in asked])))
        lines.append(
            f"| {name} | " + " | ".join(f"{s:.3f}" for s in scores) + f" | {np.mean(scores):.3f} |"
        )
    return lines


def triage_table() -> list[str]:
    """Recall and false alarms on the triage test split: model, floor, both."""
    from assistant.inputs import normalise
    from assistant.safety import Triage
    from corpus.models import SentenceEncoder

    encoder = SentenceEncoder()
    test = triage_rows("test")
    lines = ["| triage | recall (urgent) | false alarms (near-misses) |", "|---|---|---|"]
    for name, model, floor in (
        ("model + floor", True, True),
        ("model only", True, False),
        ("floor only", False, True),
    ):
        triage = Triage(encoder, use_model=model, use_floor=floor)
        flagged = [triage(normalise(r["text"])) is not None for r in test]
        urgent = np.asarray([r["label"] == "urgent" for r in test])
        hits = np.asarray(flagged)
        lines.append(
            f"| {name} | {hits[urgent].mean():.3f} ({hits[urgent].sum()}/{urgent.sum()}) | "
            f"{hits[~urgent].mean():.3f} ({hits[~urgent].sum()}/{(~urgent).sum()}) |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print and write both tables."""
    parser = argparse.ArgumentParser(prog="python -m evals.ablate", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="datasets folder")
    parser.add_argument("--limit", type=int, default=CALIB_LIMIT, help="questions per set")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    lines = ["# Ablation", ""]
    try:
        sets = [squad(args.data), covidqa(args.data), lay_wiki(args.data)]
        calib = [cached_rows(d, "calib", args.limit) for d in sets]
        held_out = [cached_rows(d, "eval", args.limit) for d in sets]
        lines += [*gate_table(calib, held_out), "", *sentence_table(calib, held_out), ""]
    except DatasetMissingError as exc:
        lines += [f"External data absent, gate ablation skipped: {exc}", ""]
    lines += triage_table()
    publish("ablation.md", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
