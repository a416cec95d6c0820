"""The old reader and the new one side by side, on held-out data only (evals/reports/reader.md).

- Foreign held-out articles (never trained on): the helpers' lay rewrites (gold sentence among
  its paragraph's sentences, or its COVID-QA article's 11 around it) and near-topic questions
  (no sentence answers).
- Our own blind lay set (`evals/data/blind.jsonl`, never trained on): the candidate sentences the
  app's pipeline shortlists for each question, gold sentences as the helpers copied them.

Ranking: the gold sentence first, and in the top 2. Answerable vs not: ROC AUC of the best
score over a question's candidates. Cost: milliseconds per pair, both models timed in one run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.answer import reading
from corpus.models import CrossEncoder, reading_text
from evals.reader.data import candidate_sets
from evals.reader.pairs import KIND

REPORT = Path(__file__).resolve().parents[1] / "reports" / "reader.md"
BLIND = Path(__file__).resolve().parents[1] / "data" / "blind.jsonl"

Scorer = Callable[[str, Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Case:
    """One question with its candidate passages (as the reader reads them) and the gold ones."""

    question: str
    passages: tuple[str, ...]
    gold: frozenset[int]  # empty: nothing answers (near-topic)


@dataclass(frozen=True)
class Scores:
    """One reader's numbers on one set."""

    first: float
    top2: float
    auc: float


def _folded(text: str) -> str:
    return " ".join(text.split()).lower()


ANSWERABLE = ("lay", "follow-up")


def foreign_cases(
    data_dir: Path, sources: tuple[str, str] = ("lay", "near-topic")
) -> tuple[list[Case], list[Case]]:
    """Held-out questions of two sources (answerable, not) about documents nobody here wrote.

    For ranking, a lay question's candidates are all the sentences around its gold one. For
    answerable-vs-not, every question is read against the same two sentences, the ones its
    writer checked: the gold (or the near-topic question's target) and the sentence before it.
    """
    ranking, pairs = [], []
    for source, q, sentences, target, heading in candidate_sets(data_dir):
        if source not in sources:
            continue
        read = tuple(reading_text(KIND, heading, s) for s in sentences)
        lay = source in ANSWERABLE
        if lay:
            ranking.append(Case(q, read, frozenset({target})))
        start = max(0, target - 1)
        pairs.append(Case(q, read[start : target + 1], frozenset({target - start} if lay else ())))
    return ranking, pairs


def our_cases(path: Path = BLIND) -> list[Case]:
    """Our own blind standalone questions (lay, near-topic), over the app's own shortlist.

    A lay question's gold sentences are its writer's `gold_sentences` and the sentences a second
    annotator, who saw only the documents and the questions, found answering it (`answering`).
    """
    from assistant.chain import Assistant
    from settings import Settings

    assistant = Assistant(Settings.from_env())
    assistant.warm_up()
    cases = []
    for line in path.read_text("utf-8").splitlines():
        row = json.loads(line)
        if row["category"] not in ("lay", "near-topic"):
            continue
        scored = assistant.evidence(row["question"]).scored
        golds = [_folded(g) for g in [*row.get("gold_sentences", []), *row.get("answering", [])]]
        gold = frozenset(
            i
            for i, c in enumerate(scored)
            if any(g in _folded(c.sentence.text) or _folded(c.sentence.text) in g for g in golds)
        )
        if row["category"] == "lay" and not gold:
            gold = frozenset({-1})  # retrieval missed it: counts as a miss for both readers
        cases.append(Case(row["question"], tuple(reading(c) for c in scored), gold))
    return cases


def measure(score: Scorer, ranking: Sequence[Case], pairs: Sequence[Case]) -> Scores:
    """Gold first and in the top 2 (over `ranking`), and the answerable-vs-not AUC of the best
    score (over `pairs`)."""
    from sklearn.metrics import roc_auc_score

    first, top2 = [], []
    for case in ranking:
        order = list(np.argsort(-score(case.question, list(case.passages))))
        first.append(order[0] in case.gold)
        top2.append(bool(set(order[:2]) & case.gold))
    best = [float(score(c.question, list(c.passages)).max()) for c in pairs]
    answerable = [bool(c.gold) for c in pairs]
    return Scores(
        float(np.mean(first)), float(np.mean(top2)), float(roc_auc_score(answerable, best))
    )


def cost(
    readers: dict[str, CrossEncoder], cases: Sequence[Case], rounds: int = 3
) -> dict[str, float]:
    """Milliseconds per pair for each reader, timed in alternation in this one run."""
    spent = dict.fromkeys(readers, 0.0)
    pairs = sum(len(c.passages) for c in cases) * rounds
    for n in range(rounds):
        for case in cases:  # case by case, in turn, so a busy moment costs both alike
            for name in list(readers)[:: 1 if n % 2 else -1]:
                started = time.perf_counter()
                readers[name].score(case.question, list(case.passages))
                spent[name] += time.perf_counter() - started
    return {name: 1000 * seconds / pairs for name, seconds in spent.items()}


def write(data_dir: Path, path: Path = REPORT) -> Path:
    """Measure both readers and write the markdown report."""
    readers = {"ms-marco (before)": CrossEncoder.bundled(), "ours (after)": CrossEncoder()}
    for reader in readers.values():
        reader.warm_up()
    ranking, pairs = foreign_cases(data_dir)
    ours = our_cases()
    sets = {
        "foreign held-out: lay rewrites vs near-topic": (ranking, pairs),
        "foreign held-out: follow-ups, read joined, answerable vs not": foreign_cases(
            data_dir, ("follow-up", "follow-up-not")
        ),
        "ours (blind, never trained on): lay vs near-topic": (
            [c for c in ours if c.gold],
            ours,
        ),
    }
    lines = [
        "# The reader, before and after (held-out data only)",
        "",
        "Regenerated by `make reader` (`python -m evals.reader`). Foreign: articles of SQuAD 2.0"
        " and COVID-QA the reader never trained on, with lay rewrites and near-topic questions"
        " written blind by helpers. Ranking: a lay question's candidates are its gold sentence's"
        " paragraph (SQuAD) or the 11 sentences around it (COVID-QA). AUC: every question"
        " against the two sentences its writer checked (the gold or the near-topic question's"
        " target, and the one before), so near-topic labels are verified. Ours:"
        " `evals/data/blind.jsonl` (written blind, never trained on); candidates are the sentences"
        " the app's pipeline shortlists; gold sentences are the writer's plus those a second"
        " blind annotator found answering; a lay question with no gold sentence shortlisted"
        " counts as a miss. Follow-ups: a first question and an elliptical follow-up, read"
        " joined as the app reads them; the candidates include the first question's own"
        " sentence, which must not come first; the AUC reads each follow-up against the sentence"
        " its writer checked (the answer, or the first question's sentence) and the one before.",
        "",
        "| set | reader | answerable | not | gold first | gold in top 2 | AUC answerable vs not |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (rank, auc) in sets.items():
        no = sum(1 for c in auc if not c.gold)
        for label, reader in readers.items():
            s = measure(reader.score, rank, auc)
            lines.append(
                f"| {name} | {label} | {len(rank)} | {no} | {s.first:.3f} | {s.top2:.3f}"
                f" | {s.auc:.3f} |"
            )
    ms = cost(readers, ranking[:60])
    base = ms["ms-marco (before)"]
    lines += [
        "",
        "| reader | ms per pair (2 threads, batches of 6) | ratio |",
        "|---|---|---|",
        *(f"| {name} | {value:.1f} | {value / base:.2f} |" for name, value in ms.items()),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), "utf-8")
    return path
