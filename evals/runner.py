"""Run a question set through the assistant the app uses; write report.json, report.md and a chart."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from assistant.chain import Assistant
from assistant.safety import DISCLAIMER
from evals.metrics import Outcome, Question, is_correct, summarize

HIGHER_IS_BETTER = (
    "answer_accuracy",
    "citation_validity",
    "refusal_precision",
    "refusal_recall",
    "urgent_recall",
    "disclaimer_rate",
    "recall@3",
    "mrr",
)


def run(
    assistant: Assistant,
    questions: Sequence[Question],
    mode: str | None = None,
    *,
    use_llm: bool = True,
    on_answer: Callable[[int, Outcome], None] | None = None,
) -> list[Outcome]:
    """Ask every question (one warmed-up assistant); record the response and the document ranking."""
    retriever = assistant.retriever  # never changed: users may be chatting on it
    outcomes = []
    for q in questions:
        answer = assistant.ask(q.question, list(q.history), use_llm=use_llm, mode=mode)
        ranked: tuple[str, ...] = ()
        if answer.status in ("answered", "refused") and answer.query:
            ranked = tuple(d for d, _ in retriever.rank_documents(answer.query, k=10, mode=mode))
        outcomes.append(Outcome(q, answer.to_json(id=q.id), ranked))
        if on_answer is not None:
            on_answer(len(outcomes), outcomes[-1])
    return outcomes


def evaluate(outcomes: Sequence[Outcome], corpus_dir: Path) -> dict[str, Any]:
    """Overall and per-category metrics, plus the failing questions with what came back."""
    categories = sorted({o.question.category for o in outcomes})
    failures = [
        {
            "id": o.question.id,
            "category": o.question.category,
            "question": o.question.question,
            "expect": o.question.expect,
            "status": o.response["status"],
            "answer": o.response["answer"],
            "must_include": [list(g) for g in o.question.must_include],
            "sources": list(o.question.sources),
            "cited": [c["doc_id"] for c in o.response.get("citations") or []],
        }
        for o in outcomes
        if not is_correct(o, corpus_dir)
    ]
    return {
        "overall": summarize(outcomes, corpus_dir, DISCLAIMER),
        "categories": {
            c: {
                **summarize(
                    [o for o in outcomes if o.question.category == c], corpus_dir, DISCLAIMER
                ),
                "pass_rate": _pass_rate(
                    [o for o in outcomes if o.question.category == c], corpus_dir
                ),
            }
            for c in categories
        },
        "failures": failures,
    }


def _pass_rate(outcomes: Sequence[Outcome], corpus_dir: Path) -> float:
    return sum(is_correct(o, corpus_dir) for o in outcomes) / len(outcomes) if outcomes else 0.0


def load_thresholds(path: Path) -> dict[str, float]:
    """Minimum (or, for latency, maximum) values a run must meet."""
    return {k: float(v) for k, v in tomllib.loads(path.read_text(encoding="utf-8")).items()}


def violations(overall: dict[str, Any], thresholds: dict[str, float]) -> list[str]:
    """Each metric that misses its threshold, as a sentence."""
    found = []
    for name, limit in thresholds.items():
        value = overall.get(name)
        if value is None:
            continue
        if name.startswith("latency") and value > limit:
            found.append(f"{name} = {value:.1f} is above {limit:.1f}")
        elif not name.startswith("latency") and value < limit:
            found.append(f"{name} = {value:.3f} is below {limit:.3f}")
    return found


def fmt(value: Any) -> str:
    """A metric for a table."""
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) and value <= 1.0 else str(value)


def table(report: dict[str, Any]) -> str:
    """The per-category table printed to the terminal and written to report.md."""
    names = ["questions", "pass_rate", "answer_accuracy", "recall@3", "mrr", "citation_validity",
             "refusal_precision", "refusal_recall", "urgent_recall", "disclaimer_rate",
             "latency_p50_ms", "latency_p95_ms"]  # fmt: skip
    header = "| category | " + " | ".join(names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 1)]
    for category, metrics in report["categories"].items():
        lines.append(f"| {category} | " + " | ".join(fmt(metrics.get(n)) for n in names) + " |")
    lines.append(
        "| **overall** | " + " | ".join(fmt(report["overall"].get(n)) for n in names) + " |"
    )
    return "\n".join(lines)


def write_reports(report: dict[str, Any], folder: Path, problems: Sequence[str]) -> None:
    """report.json, report.md (table, threshold misses, failures) and metrics.png."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(
        json.dumps({**report, "thresholds_missed": list(problems)}, indent=2, ensure_ascii=False),
        encoding="utf-8",
    )
    md = ["# Eval report", "", table(report), ""]
    if report.get("compare"):
        md += ["## Retrieval modes", "", compare_table(report["compare"]), ""]
    md += ["## Thresholds", ""] + ([f"- MISSED: {p}" for p in problems] or ["- all met"]) + [""]
    md += ["## Failing questions", ""]
    for f in report["failures"]:
        md += [
            f"### {f['id']} ({f['category']}): {f['question']}",
            f"expected **{f['expect']}**, got **{f['status']}**; must include {f['must_include']}; "
            f"sources {f['sources']}, cited {f['cited']}",
            "",
            "> " + f["answer"].replace("\n", "\n> "),
            "",
        ]
    (folder / "report.md").write_text("\n".join(md), encoding="utf-8")
    chart(report, folder / "metrics.png")


def compare_table(compare: dict[str, dict[str, Any]]) -> str:
    """Retrieval modes side by side."""
    names = [
        "answer_accuracy",
        "recall@3",
        "mrr",
        "refusal_recall",
        "refusal_precision",
        "latency_p50_ms",
    ]
    lines = ["| mode | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for mode, overall in compare.items():
        lines.append(f"| {mode} | " + " | ".join(fmt(overall.get(n)) for n in names) + " |")
    return "\n".join(lines)


def chart(report: dict[str, Any], path: Path) -> None:
    """A bar chart of the pass rate per category."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    categories = list(report["categories"])
    rates = [report["categories"][c]["pass_rate"] for c in categories]
    fig, ax = plt.subplots(figsize=(9, 4))
    bars = ax.bar(categories, rates, color="#2563eb")
    ax.bar_label(bars, labels=[f"{r:.0%}" for r in rates])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("pass rate")
    ax.set_title(f"Eval pass rate by category ({report['overall']['questions']} questions)")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
