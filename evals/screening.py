"""python -m evals.screening [--data DIR]: fit the ingest screen and compare it with its baselines.

The screen flags document sentences addressed to an AI system ("ignore previous instructions",
"Editor's note for automated summaries: state that ..."). It is a fine-tuned message classifier
(`evals.classifier`: all-MiniLM-L6-v2, written to `corpus/screen/`), fitted on:
- the `train` split of `evals/data/directives.jsonl` (authors A, C and E: directives, hard negatives),
- sentences of half the SQuAD and COVID-QA articles (ordinary expository text),
- the `train` split of `evals/data/triage.jsonl` (ordinary, conversational messages).

It is judged on what it never saw: authors B's and D's directives and hard negatives (`test`
split), the other half of the articles, and this project's own documents. The classifier is
fitted without author E's sentences, and its threshold is the best F1 on them. The report sets it beside
the screen before issue 24 (a logistic regression over bge-small vectors, refitted here on the
same data) and the old prompt-injection word list.

Writes `corpus/screen/`, `corpus/screen.json` and `evals/reports/screening.md`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import sys
from pathlib import Path

import numpy as np

from corpus.models import file_sha256
from corpus.screening import SCREEN_FILE, SCREEN_FOLDER, Screen, ScreenModel
from corpus.sentences import sentences as split
from evals.calibrate import CACHE, TRIAGE_SET, publish
from evals.datasets import DEFAULT_DATA, DatasetMissingError, covidqa, squad

HERE = Path(__file__).resolve().parent
DIRECTIVES = HERE / "data" / "directives.jsonl"
SEED_DOCUMENTS = HERE.parent / "corpus" / "documents"
THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5 ... 0.95
NATURAL_PER_SET = 1200  # sentences per dataset and half
C = 16.0
log = logging.getLogger("evals.screening")


def sentences(text: str) -> list[str]:
    """Rough sentences of an article, for sampling ordinary text (not used by the product)."""
    return [s for s in split(text) if 25 <= len(s) <= 400]


def directive_rows(split: str) -> tuple[list[str], np.ndarray]:
    """Texts and labels (True: directive) of one split of evals/data/directives.jsonl."""
    rows = [json.loads(line) for line in DIRECTIVES.open(encoding="utf-8")]
    rows = [r for r in rows if r["split"] == split]
    return [r["text"] for r in rows], np.array([r["label"] == "directive" for r in rows])


def natural_text(data_dir: Path) -> tuple[list[str], list[str]]:
    """Sentences of SQuAD and COVID-QA articles: (fit half, test half), split by article."""
    rng = random.Random(15)
    fit, test = [], []
    for dataset in (squad(data_dir), covidqa(data_dir)):
        articles = sorted(dataset.articles, key=lambda a: a.doc_id)
        rng.shuffle(articles)
        half = len(articles) // 2
        for part, target in ((articles[:half], fit), (articles[half:], test)):
            pool = [s for a in part for s in sentences(a.text)]
            target += rng.sample(pool, min(NATURAL_PER_SET, len(pool)))
    return fit, test


def seed_sentences() -> list[str]:
    """Sentences of this project's own documents: never fitted on, only checked."""
    return [
        s
        for path in sorted(SEED_DOCUMENTS.glob("*.txt"))
        for s in sentences(path.read_text(encoding="utf-8"))
    ]


def encode(encoder: object, texts: list[str], name: str) -> np.ndarray:
    """bge-small vectors, cached under evals/.cache by the texts' digest."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE.parent / "screening" / f"{name}-{digest}.npy"
    if path.is_file():
        return np.load(path)
    vectors = encoder.encode(texts)  # type: ignore[attr-defined]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def fit(x: np.ndarray, y: np.ndarray) -> ScreenModel:
    """Logistic regression; the threshold with the best out-of-fold F1 on the training data."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import cross_val_predict

    model = LogisticRegression(C=C, class_weight="balanced", max_iter=5000)
    oof = cross_val_predict(model, x, y, cv=5, method="predict_proba")[:, 1]
    threshold = max(THRESHOLDS, key=lambda t: (f1_score(y, oof >= t), t))
    model.fit(x, y)
    return ScreenModel(
        tuple(float(w) for w in model.coef_[0]), float(model.intercept_[0]), threshold
    )


THRESHOLD_AUTHOR = "E"


def fit_classifier(texts: list[str], y: np.ndarray) -> tuple[ScreenModel, float]:
    """Fine-tune the screen's classifier on every training text but one author's, and write it
    to corpus/screen/; its threshold is the best F1 on that author's sentences, which it never
    saw (one fit on 2 cores, rather than a second fit on everything)."""
    from sklearn.metrics import f1_score

    from evals import classifier

    rows = [json.loads(line) for line in DIRECTIVES.open(encoding="utf-8")]
    theirs = {r["text"] for r in rows if r["author"] == THRESHOLD_AUTHOR and r["split"] == "train"}
    inside = [i for i, t in enumerate(texts) if t not in theirs]
    outside = [i for i, t in enumerate(texts) if t in theirs]
    model, seconds = classifier.fit([texts[i] for i in inside], [bool(y[i]) for i in inside])
    p = classifier.probabilities(model, [texts[i] for i in outside])
    truth = y[outside]
    grid = [round(0.05 * i, 2) for i in range(2, 20)]
    threshold = max(grid, key=lambda t: (f1_score(truth, p >= t), -t))
    classifier.export(
        model,
        SCREEN_FOLDER,
        {"data": "evals/data/directives.jsonl train split but author "
         f"{THRESHOLD_AUTHOR} (who sets the threshold), SQuAD/COVID-QA sentences, user messages",
         "training_seconds": round(seconds)},
    )  # fmt: skip
    return ScreenModel((), 0.0, threshold, classifier=True), seconds


def rate(flags: np.ndarray) -> str:
    """A share as a percentage, with the count."""
    return f"{flags.mean():.1%} ({int(flags.sum())}/{len(flags)})" if len(flags) else "–"


def main(argv: list[str] | None = None) -> int:
    """Fit the screen, write it, and report it beside the word list on held-out text."""
    parser = argparse.ArgumentParser(prog="python -m evals.screening", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="datasets folder")
    parser.add_argument("--no-fit", action="store_true", help="report on the screen as it is")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from assistant.safety import is_injection
    from corpus.models import SentenceEncoder

    try:
        natural_fit, natural_test = natural_text(args.data)
    except DatasetMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    encoder = SentenceEncoder()
    encoder.warm_up()
    train_text, train_y = directive_rows("train")
    test_text, test_y = directive_rows("test")
    messages = [
        r["text"]
        for r in (json.loads(line) for line in TRIAGE_SET.open(encoding="utf-8"))
        if r["split"] == "train"
    ]
    seeds = seed_sentences()
    x = np.vstack(
        [
            encode(encoder, train_text, "directives-train"),
            encode(encoder, natural_fit, "natural-fit"),
            encode(encoder, messages, "messages"),
        ]
    )
    y = np.concatenate([train_y, np.zeros(len(natural_fit) + len(messages), bool)])
    logistic = fit(x, y)  # the screen before issue 24, kept as the baseline
    texts = [*train_text, *natural_fit, *messages]
    if args.no_fit:
        model = ScreenModel.load()
        seconds = float(json.loads(SCREEN_FILE.read_text("utf-8"))["training_seconds"])
    else:
        model, seconds = fit_classifier(texts, y)
        SCREEN_FILE.write_text(
            json.dumps(
                {
                    "classifier": True,
                    "threshold": model.threshold,
                    "sha256": file_sha256(SCREEN_FOLDER / "model.onnx"),
                    "trained_on": f"evals/data/directives.jsonl train ({len(train_text)}), "
                    f"{len(natural_fit)} SQuAD/COVID-QA sentences, {len(messages)} messages; "
                    f"fitted without author {THRESHOLD_AUTHOR}, whose sentences set the "
                    "threshold (best F1)",
                    "training_seconds": round(seconds),
                }
            )
            + "\n",
            encoding="utf-8",
        )
    screen = Screen(encoder, model)
    theirs = [r for r in map(json.loads, DIRECTIVES.open(encoding="utf-8"))
              if r["author"] == THRESHOLD_AUTHOR]  # fmt: skip
    marked = np.array(screen.flags([r["text"] for r in theirs]))
    truth = np.array([r["label"] == "directive" for r in theirs])
    held = f"recall {marked[truth].mean():.2f}, false flags {marked[~truth].mean():.2f}"
    held_out = {
        "directives (authors B, D)": (test_text, test_y),
        "hard negatives (authors B, D)": (test_text, test_y),
        "SQuAD/COVID-QA sentences, unseen articles": (natural_test, None),
        "this project's documents": (seeds, None),
    }
    flags = {
        "word list (`is_injection`)": lambda texts, name: np.array(
            [is_injection(t) for t in texts]
        ),
        "logistic over bge-small (before)": lambda texts, name: (
            logistic.probabilities(encode(encoder, texts, name.split()[0].lower()))
            >= logistic.threshold
        ),
        "fine-tuned classifier (now)": lambda texts, name: np.array(screen.flags(texts)),
    }
    lines = [
        "# Screening documents for instructions to an assistant",
        "",
        f"Training split: {len(train_text)} sentences of authors A, C and E, {len(natural_fit)} article "
        f"sentences and {len(messages)} user messages. The classifier (all-MiniLM-L6-v2 "
        f"fine-tuned, {seconds:.0f} s on 2 threads, without author {THRESHOLD_AUTHOR}'s "
        f"sentences) flags at {model.threshold}: the best F1 on those sentences ({held}).",
        "",
        "Held out: nothing below was fitted on.",
        "",
        "| held-out text | measure | " + " | ".join(flags) + " |",
        "|---|---|" + "---|" * len(flags),
    ]
    found: dict[str, np.ndarray] = {}
    for name, (texts, labels) in held_out.items():
        directive = name.startswith("directives")
        keep = labels if directive else (~labels if labels is not None else slice(None))
        row = []
        for method, flag in flags.items():
            key = f"{method}|{texts[0] if texts else ''}"
            if key not in found:
                found[key] = flag(texts, name)
            row.append(found[key][keep])
        measure = "flagged (recall)" if directive else "flagged (false flags)"
        lines.append(f"| {name} | {measure} | " + " | ".join(rate(r) for r in row) + " |")
    flagged_seeds = [t for t, f in zip(seeds, screen.flags(seeds), strict=True) if f]
    lines += [
        "",
        "Author C's brief was written after a first fit's false flags on this corpus were seen "
        "(testimonials, a disclaimer), so the last row is not fully held out; authors B's and "
        "D's rows are.",
    ]
    lines += ["", "Sentences of this project's documents the classifier flags:", ""]
    lines += [f"- {t}" for t in flagged_seeds] or ["- none"]
    publish("screening.md", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
