"""python -m evals.calibrate [--data DIR]: fit the answerability gate and the triage model.

The gate is fitted on data nobody here wrote: the `calib` split of SQuAD 2.0 and of COVID-QA
(`evals.datasets`). Every candidate sentence the assistant scores for a calibration question is
one row: its evidence features, labelled 1 when the question is answerable and the sentence
holds a gold answer. A logistic regression turns the features into P(the sentence answers);
the threshold on the best sentence's probability is the one with the best balanced accuracy,
averaged over the two sets. The triage model is a logistic regression over bge-small vectors of
the `train` split of `evals/data/triage.jsonl`.

Writes `assistant/gate.json`, `assistant/triage.json` and `evals/reports/calibration.md`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from assistant.answer import GATE_FILE, QUESTION_FEATURES, SENTENCE_FEATURES, Gate, Logistic
from assistant.safety import TRIAGE_FILE
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

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache" / "external"
REPORTS = HERE / "reports"
TRIAGE_SET = HERE / "data" / "triage.jsonl"
CALIB_LIMIT = 600  # questions per set and split (all the unanswerable ones, then answerable)
_ZERO = (0.0,) * len(SENTENCE_FEATURES)
NEUTRAL = Gate(
    Logistic(SENTENCE_FEATURES, _ZERO, (1.0,) * len(_ZERO), _ZERO, 0.0, 0.5),
    Logistic(QUESTION_FEATURES, _ZERO, (1.0,) * len(_ZERO), _ZERO, 0.0, 0.5),
    "neutral: features only",
)

log = logging.getLogger("evals.calibrate")


@dataclass(frozen=True)
class Rows:
    """Scored candidate sentences of a question set: features, labels and question ids."""

    features: np.ndarray  # (rows, len(SENTENCE_FEATURES))
    labels: np.ndarray  # 1: the sentence holds a gold answer of an answerable question
    question: np.ndarray  # row -> question index
    answerable: np.ndarray  # question index -> answerable
    dataset: str


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    """Does a quoted text contain one of the gold answers (case and spacing ignored)?"""
    folded = " ".join(text.lower().split())
    return any(" ".join(a.lower().split()) in folded for a in answers)


def external_assistant(dataset: Dataset, cache: Path = CACHE, gate: Gate = NEUTRAL):
    """An assistant over the dataset's corpus, ingested (incrementally) into the cache."""
    from assistant.chain import Assistant
    from ingest.pipeline import ingest
    from settings import Settings

    corpus = cache / dataset.corpus_name / "corpus"
    dataset.write_corpus(corpus)
    settings = Settings.from_env(corpus_dir=corpus, index_dir=cache / dataset.corpus_name / "index")
    report = ingest(settings, log=log.info)
    log.info(
        "%s: %d chunks, %d embedded", dataset.name, report.chunks_total, report.chunks_embedded
    )
    helper = Assistant(settings, gate=gate)
    helper.reranker.warm_up()
    return helper


def collect(helper, questions: Sequence[ExternalQuestion], name: str) -> Rows:
    """Score every question's candidate sentences (the gate plays no part in the features)."""
    feats, labels, owner = [], [], []
    for i, q in enumerate(questions):
        for c in helper.evidence(q.question).scored:
            values = c.features()
            feats.append([values[name] for name in SENTENCE_FEATURES])
            labels.append(q.answerable and contains_answer(c.sentence.text, q.answers))
            owner.append(i)
    return Rows(
        np.asarray(feats, dtype=np.float64).reshape(-1, len(SENTENCE_FEATURES)),
        np.asarray(labels, dtype=bool),
        np.asarray(owner, dtype=np.int64),
        np.asarray([q.answerable for q in questions], dtype=bool),
        name,
    )


def cached_rows(dataset: Dataset, split: str, limit: int | None, fresh: bool = False) -> Rows:
    """Rows for a dataset split, computed once per reader and kept in the cache."""
    from corpus.models import reader_sha256

    path = CACHE / f"rows3-{reader_sha256()[:12]}-{dataset.name}-{split}-{limit}.npz"
    if path.is_file() and not fresh:
        data = np.load(path)
        return Rows(
            data["features"], data["labels"], data["question"], data["answerable"], dataset.name
        )
    helper = external_assistant(dataset)
    rows = collect(helper, sample(dataset.questions, split, limit), dataset.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        features=rows.features,
        labels=rows.labels,
        question=rows.question,
        answerable=rows.answerable,
    )
    return rows


def question_matrix(rows: Rows) -> np.ndarray:
    """Each question's best value of every feature over its candidates (QUESTION_FEATURES)."""
    best = np.full((len(rows.answerable), rows.features.shape[1]), -10.0)
    for column in range(rows.features.shape[1]):
        np.maximum.at(best[:, column], rows.question, rows.features[:, column])
    return best


def balanced_accuracy(answered: np.ndarray, answerable: np.ndarray) -> float:
    """Mean of the answered share of answerable questions and the refused share of the rest."""
    return 0.5 * (answered[answerable].mean() + (~answered[~answerable]).mean())


def fit_logistic(x: np.ndarray, y: np.ndarray, features: Sequence[str]) -> Logistic:
    """A standardised, class-balanced logistic regression (threshold 0.5 until chosen)."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    model.fit((x - mean) / scale, y)
    return Logistic(
        tuple(features),
        tuple(mean.tolist()),
        tuple(scale.tolist()),
        tuple(model.coef_[0].tolist()),
        float(model.intercept_[0]),
        0.5,
    )


def probabilities(model: Logistic, x: np.ndarray, features: Sequence[str]) -> np.ndarray:
    """The model's probability for every row of x (whose columns are `features`)."""
    columns = [list(features).index(f) for f in model.features]
    z = ((x[:, columns] - model.mean) / model.scale) @ np.asarray(model.weights) + model.bias
    return 1.0 / (1.0 + np.exp(-z))


def answered(gate: Gate, rows: Rows) -> np.ndarray:
    """Which questions the gate answers."""
    p = probabilities(gate.question, question_matrix(rows), QUESTION_FEATURES)
    return p >= gate.question.threshold


# Chosen by `python -m evals.ablate`: ranking sentences by the cross-encoder alone puts the
# answer first more often than any mix with the other features.
SENTENCE_MODEL = ("relevance",)
# The best cross-encoder score alone. Every other feature adds at most 0.01 of balanced accuracy
# on the held-out external split, or takes some away (`python -m evals.ablate`); the two that
# measure how close the topic is (passage and sentence cosine) also make the gate answer
# near-topic questions in a corpus about one topic ("a melatonin dose for children" got the
# adult dose), and lexical overlap takes a negative weight once the cross-encoder is in.
QUESTION_MODEL = ("best_relevance",)


def fit_gate(
    sets: Sequence[Rows],
    sentence: Sequence[str] = SENTENCE_MODEL,
    question: Sequence[str] = QUESTION_MODEL,
) -> Gate:
    """Fit the sentence model and the question model on the calibration rows of every set.

    Sentence model: rows of answerable questions, labelled by whether the sentence holds a gold
    answer; its threshold is the one with the best F1. Question model: each question's best
    evidence, labelled answerable or not; its threshold has the best balanced accuracy,
    averaged over the sets.
    """
    x = np.vstack([r.features[r.answerable[r.question]] for r in sets])
    y = np.concatenate([r.labels[r.answerable[r.question]] for r in sets])
    columns = [SENTENCE_FEATURES.index(f) for f in sentence]
    model = fit_logistic(x[:, columns], y, sentence)
    p = probabilities(model, x, SENTENCE_FEATURES)
    grid = np.linspace(0.05, 0.95, 91)
    f1 = [2 * (y & (p >= t)).sum() / max(y.sum() + (p >= t).sum(), 1) for t in grid]
    sentence_model = replace(model, threshold=round(float(grid[int(np.argmax(f1))]), 3))

    xq = [question_matrix(r) for r in sets]
    columns = [QUESTION_FEATURES.index(f) for f in question]
    model = fit_logistic(
        np.vstack(xq)[:, columns], np.concatenate([r.answerable for r in sets]), question
    )
    scores = [
        np.mean(
            [
                balanced_accuracy(probabilities(model, q, QUESTION_FEATURES) >= t, r.answerable)
                for q, r in zip(xq, sets, strict=True)
            ]
        )
        for t in grid
    ]
    question_model = replace(model, threshold=round(float(grid[int(np.argmax(scores))]), 3))
    return Gate(sentence_model, question_model)


def triage_rows(split: str) -> list[dict]:
    """The labelled triage messages of one split ('train' or 'test')."""
    rows = [
        json.loads(line) for line in TRIAGE_SET.read_text(encoding="utf-8").splitlines() if line
    ]
    return [r for r in rows if r["split"] == split]


def guidance_of(row: dict) -> str:
    """Which guidance a labelled emergency needs: its `guidance`, else read from its kind (the
    first authors named kinds freely)."""
    if row.get("guidance"):
        return str(row["guidance"])
    kind = row["kind"]
    if any(w in kind for w in ("suicid", "self_harm", "self-harm")):
        return "crisis"
    if any(w in kind for w in ("poison", "ingestion", "overdose")):
        return "poison"
    return "emergency"


def triage_examples(rows: Sequence[dict]) -> list[tuple[str, bool, str]]:
    """(text, urgent, guidance) as triage reads each labelled message: the message and its
    spelt-out form; in a conversation, the previous user turn with it (labelled as the row),
    and the message alone (never urgent by itself: its history made it so)."""
    from assistant.inputs import bounded_history, normalise
    from assistant.safety import LONG, spelt_out

    out = []
    for r in rows:
        text, urgent = normalise(r["text"]), r["label"] == "urgent"
        guidance = guidance_of(r) if urgent else ""
        said = [t["content"] for t in bounded_history(r.get("history")) if t["role"] == "user"]
        if said:
            out.append((f"{said[-1][-LONG:]} {text[:LONG]}", urgent, guidance))
            out.append((text, False, ""))
        else:
            out.append((text, urgent, guidance))
        if (spelt := spelt_out(text)) != text and not said:
            out.append((spelt, urgent, guidance))
    return out


BOUNDARY = 0.5  # the triage classifier's threshold: its class-balanced decision boundary


def fit_triage_classifier(encoder, train: Sequence[dict], negatives: Sequence[str] = ()) -> dict:
    """Fine-tune the message classifier (`evals.classifier`) on the triage readings, write it to
    `assistant/triage/`, and return the triage model's settings.

    The threshold is the classifier's own boundary (0.5: its classes are weighted to balance).
    Reading it instead on one training author's messages, by a fit without them, failed here:
    author E's messages (other languages, emoji, conversations) were so unlike the rest that
    any target recall set it near 0.01, where "hi" was urgent. `python -m evals.safety` measures
    the boundary on the held-out authors. Guidance centroids are over bge-small vectors.
    """
    from assistant.inputs import normalise
    from assistant.safety import TRIAGE_FOLDER
    from evals import classifier

    examples = triage_examples(train)
    texts = [t for t, _, _ in examples] + [normalise(t) for t in negatives]
    labels = [u for _, u, _ in examples] + [False] * len(negatives)
    model, seconds = classifier.fit(texts, labels)
    classifier.export(
        model,
        TRIAGE_FOLDER,
        {
            "data": f"evals/data/triage.jsonl train split ({len(train)} messages, {len(texts)} "
            "readings with the external calibration questions as non-urgent)",
            "training_seconds": round(seconds),
        },
    )
    x = encoder.encode([t for t, _, _ in examples])
    centroids = {}
    for group in ("emergency", "poison", "crisis"):
        members = x[[g == group for _, _, g in examples]]
        centroid = members.mean(axis=0)
        centroids[group] = (centroid / np.linalg.norm(centroid)).tolist()
    return {
        "classifier": True,
        "threshold": BOUNDARY,
        "centroids": centroids,
        "trained_on": f"evals/data/triage.jsonl train split ({len(train)} messages)",
    }


def main(argv: list[str] | None = None) -> int:
    """Fit both models from scratch and write them with a report."""
    parser = argparse.ArgumentParser(prog="python -m evals.calibrate", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="datasets folder")
    parser.add_argument("--limit", type=int, default=CALIB_LIMIT, help="questions per set")
    parser.add_argument("--fresh", action="store_true", help="recompute cached features")
    parser.add_argument("--only", choices=("gate", "triage"), help="refit just this model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from corpus.models import SentenceEncoder

    try:
        datasets = [squad(args.data), covidqa(args.data), lay_wiki(args.data)]
        sets = [cached_rows(d, "calib", args.limit, args.fresh) for d in datasets]
    except DatasetMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    negatives = [q.question for d in datasets for q in sample(d.questions, "calib", args.limit)]
    trained_on = ", ".join(f"{r.dataset} calib ({len(r.answerable)} questions)" for r in sets)
    gate = replace(fit_gate(sets), trained_on=trained_on)
    if args.only != "triage":
        GATE_FILE.write_text(json.dumps(gate.to_json(), indent=1) + "\n", encoding="utf-8")
    if args.only == "gate":
        triage = json.loads(TRIAGE_FILE.read_text(encoding="utf-8"))
    else:
        triage = fit_triage_classifier(SentenceEncoder(), triage_rows("train"), negatives)
        TRIAGE_FILE.write_text(json.dumps(triage) + "\n", encoding="utf-8")

    lines = ["# Calibration", "", f"Gate fitted on {trained_on}.", ""]
    for name, model in (("sentence", gate.sentence), ("question", gate.question)):
        lines += [f"{name.capitalize()} model (threshold {model.threshold}):", ""]
        lines += ["| feature | weight |", "|---|---|"]
        lines += [f"| {f} | {w:+.3f} |" for f, w in zip(model.features, model.weights, strict=True)]
        lines.append("")
    lines += ["| set (calib) | balanced accuracy |", "|---|---|"]
    lines += [
        f"| {r.dataset} | {balanced_accuracy(answered(gate, r), r.answerable):.3f} |" for r in sets
    ]
    lines += ["", f"Triage: {triage['trained_on']}; threshold {triage['threshold']}."]
    publish("calibration.md", lines)
    return 0


def publish(name: str, lines: Sequence[str]) -> None:
    """Print a markdown report and write it to evals/reports/NAME."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
