"""The eval question set and the metrics computed over its outcomes (pure functions)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

EXPECTS = ("answer", "refuse", "urgent")
_MARKER = re.compile(r"\[(\d+)\]")


class QuestionSetError(ValueError):
    """The question file is malformed; the message names the line."""


@dataclass(frozen=True)
class Question:
    """One eval question and what a good response must contain."""

    id: str
    question: str
    expect: str
    history: tuple[dict[str, str], ...] = ()
    must_include: tuple[tuple[str, ...], ...] = ()
    sources: tuple[str, ...] = ()
    category: str = "general"
    split: str = "dev"


@dataclass(frozen=True)
class Outcome:
    """What the assistant returned for a question, and the retriever's document ranking."""

    question: Question
    response: dict[str, Any]
    ranked: tuple[str, ...] = ()


def load_questions(path: Path, split: str = "all") -> list[Question]:
    """Read a JSONL question set, keeping one split ('dev', 'test' or 'all')."""
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            question = Question(
                id=str(raw["id"]),
                question=str(raw["question"]),
                expect=str(raw["expect"]),
                history=tuple(raw.get("history") or ()),
                must_include=tuple(tuple(group) for group in raw.get("must_include") or ()),
                sources=tuple(raw.get("sources") or ()),
                category=str(raw.get("category", "general")),
                split=str(raw.get("split", "dev")),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise QuestionSetError(f"{path}:{number}: {exc}") from exc
        if question.expect not in EXPECTS:
            raise QuestionSetError(f"{path}:{number}: expect must be one of {EXPECTS}")
        if split in ("all", question.split):
            questions.append(question)
    return questions


def includes_all(text: str, groups: Sequence[Sequence[str]]) -> bool:
    """Every group has at least one alternative in the text (case-insensitive)."""
    lowered = text.lower()
    return all(any(alt.lower() in lowered for alt in group) for group in groups)


def citation_problems(response: dict[str, Any], corpus_dir: Path) -> list[str]:
    """Why a response's citations can't be trusted: fabricated quotes, dangling or unused markers."""
    problems = []
    citations = response.get("citations") or []
    numbers = {c["n"] for c in citations}
    markers = {int(m) for m in _MARKER.findall(response.get("answer", ""))}
    if response.get("status") == "answered":
        problems += [f"marker [{n}] has no citation" for n in sorted(markers - numbers)]
        problems += [f"citation {n} is never used" for n in sorted(numbers - markers)]
    for c in citations:
        path = corpus_dir / c["source"]
        text = " ".join(path.read_text(encoding="utf-8").split()) if path.is_file() else ""
        if " ".join(c["quote"].split()) not in text:
            problems.append(f"quote {c['n']} is not verbatim in {c['source']}")
    return problems


def is_correct(outcome: Outcome, corpus_dir: Path) -> bool:
    """Did the response do what the question expected, with the key facts and a right source?"""
    q, r = outcome.question, outcome.response
    if q.expect == "refuse":
        return r["status"] == "refused"
    if q.expect == "urgent":
        return r["status"] == "urgent"
    cited = {c["doc_id"] for c in r.get("citations") or []}
    return (
        r["status"] == "answered"
        and includes_all(r["answer"], q.must_include)
        and (not q.sources or bool(cited & set(q.sources)))
        and not citation_problems(r, corpus_dir)
    )


def recall_at_k(ranked: Sequence[str], sources: Sequence[str], k: int) -> float:
    """Share of the expected documents found in the top k."""
    return len(set(ranked[:k]) & set(sources)) / len(sources) if sources else 1.0


def reciprocal_rank(ranked: Sequence[str], sources: Sequence[str]) -> float:
    """1 / rank of the first expected document (0 when none is retrieved)."""
    for rank, doc_id in enumerate(ranked, 1):
        if doc_id in sources:
            return 1.0 / rank
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation; 0 for no values."""
    return float(np.percentile(values, q)) if len(values) else 0.0


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def summarize(
    outcomes: Sequence[Outcome], corpus_dir: Path, disclaimer: str, k: int = 3
) -> dict[str, Any]:
    """All metrics over a set of outcomes (None where a metric has no cases)."""
    answerable = [o for o in outcomes if o.question.expect == "answer"]
    refusable = [o for o in outcomes if o.question.expect == "refuse"]
    urgent = [o for o in outcomes if o.question.expect == "urgent"]
    refused = [o for o in outcomes if o.response["status"] == "refused"]
    answered = [o for o in outcomes if o.response["status"] == "answered"]
    with_sources = [o for o in answerable if o.question.sources]
    latencies = [float(o.response.get("latency_ms", 0.0)) for o in outcomes]
    return {
        "questions": len(outcomes),
        "answer_accuracy": _rate(
            sum(is_correct(o, corpus_dir) for o in answerable), len(answerable)
        ),
        f"recall@{k}": (
            sum(recall_at_k(o.ranked, o.question.sources, k) for o in with_sources)
            / len(with_sources)
            if with_sources
            else None
        ),
        "mrr": (
            sum(reciprocal_rank(o.ranked, o.question.sources) for o in with_sources)
            / len(with_sources)
            if with_sources
            else None
        ),
        "citation_validity": _rate(
            sum(not citation_problems(o.response, corpus_dir) for o in answered), len(answered)
        ),
        "refusal_precision": _rate(
            sum(o.question.expect == "refuse" for o in refused), len(refused)
        ),
        "refusal_recall": _rate(
            sum(o.response["status"] == "refused" for o in refusable), len(refusable)
        ),
        "urgent_recall": _rate(sum(o.response["status"] == "urgent" for o in urgent), len(urgent)),
        "disclaimer_rate": _rate(
            sum(o.response.get("disclaimer") == disclaimer for o in outcomes), len(outcomes)
        ),
        "latency_p50_ms": round(percentile(latencies, 50), 1),
        "latency_p95_ms": round(percentile(latencies, 95), 1),
    }
