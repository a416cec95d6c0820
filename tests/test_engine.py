"""The answer engine's gates on data it was not tuned on: the triage test split and the external sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from assistant.answer import Gate
from assistant.chain import last_said
from assistant.inputs import bounded_history, normalise
from assistant.language import LanguageCheck
from assistant.safety import Triage, TriageModel
from corpus.models import ModelFileError, SentenceEncoder
from evals.datasets import DEFAULT_DATA, DatasetMissingError, covidqa, squad

EVALS = ROOT / "evals"
TRIAGE = EVALS / "data" / "triage.jsonl"
BLIND = EVALS / "data" / "blind.jsonl"
REFERRALS = EVALS / "data" / "referrals.jsonl"
REFERRALS_BLIND = EVALS / "data" / "referrals_blind.jsonl"
INTENTS_BLIND = EVALS / "data" / "intents_blind.jsonl"
QUESTIONS = EVALS / "data" / "questions.jsonl"
# The levels reached on 2026-11-23 (the closing note has the numbers); a change that falls
# below them fails here.
# Issue 24 added two authors (F: other languages, slang, emoji, long messages, conversations) to
# the test split: 364 messages (authors A, B, F). The fine-tuned classifier at its boundary gave
# the numbers to 166 of 171 emergencies (urgent, or the English-only reply) and flagged 12 of 193
# ordinary ones; with a long message's windows confirmed in context, 167 of 171 and 3 of 193
# (the logistic model it replaced: 123 of 171 and 22 of 193). Authors H and K (long messages)
# and J (emergencies naming the documents' products) were written later, to check the front:
# 87 of 95 and 10 of 105 flagged.
TRIAGE_FLOORS = {  # authors: (least share of emergencies given the numbers, most false alarms)
    "ABF": (0.97, 0.02),
    "HJK": (0.90, 0.10),
}
# Balanced accuracy over the one-cosine-threshold baseline, on two SQuAD articles and ten
# COVID-QA articles: 0.625 vs 0.575 and 0.824 vs 0.693 when set (deterministic, so little slack).
# With pysbd's sentences (issue 17) the project scores 0.650 and 0.824, and the baseline, whose
# threshold is refitted on the same sentences, rose to 0.583 and 0.728: the COVID-QA margin is
# now 0.096, so 0.09 is the floor.
# Issue 23 moved these sets to the articles the reader never trained on (one SQuAD article,
# five COVID-QA articles in the corpus). There the one-cosine baseline scores 0.733 and 0.882,
# above the project's 0.600 and 0.834 (reader and gate of issue 23): the margin is gone, and
# the project's own level is the floor until the answer path (issue 25) wins it back.
EXTERNAL_MIN_BALANCED_ACCURACY = {"squad2-0": 0.55, "covidqa-10": 0.81}  # 0.558 with reader v2


def test_the_triage_set_is_blind_labelled_and_split() -> None:
    rows = [json.loads(line) for line in TRIAGE.read_text(encoding="utf-8").splitlines()]
    test = [r for r in rows if r["split"] == "test"]
    urgent = [r for r in rows if r["label"] == "urgent"]
    assert len(rows) >= 300 and len(urgent) >= 120 and len(rows) - len(urgent) >= 180
    assert len({r["kind"] for r in urgent}) >= 10
    assert len(test) >= 150 and {r["split"] for r in rows} == {"train", "test"}
    said = [(json.dumps(r.get("history", [])), " ".join(r["text"].lower().split())) for r in rows]
    assert len(set(said)) == len(rows)  # no message twice in the same conversation


@pytest.mark.parametrize("authors", sorted(TRIAGE_FLOORS))
def test_triage_on_the_held_out_split(authors: str) -> None:
    """Emergencies are caught as the user would be (urgent, or the English-only reply with the
    numbers for another language); few near-misses are flagged."""
    triage = Triage(SentenceEncoder())
    language = LanguageCheck()
    rows = [json.loads(line) for line in TRIAGE.read_text(encoding="utf-8").splitlines()]
    test = [r for r in rows if r["split"] == "test" and r["author"] in authors]
    min_recall, max_false_alarms = TRIAGE_FLOORS[authors]
    urgent_reply = [
        triage(normalise(r["text"]), bounded_history(r.get("history"))) is not None for r in test
    ]
    flagged = np.asarray(
        [
            u
            or language.foreign(normalise(r["text"]), last_said(bounded_history(r.get("history"))))
            for u, r in zip(urgent_reply, test, strict=True)
        ]
    )
    urgent = np.asarray([r["label"] == "urgent" for r in test])
    missed = [
        r["text"] for r, f in zip(test, flagged, strict=True) if r["label"] == "urgent" and not f
    ]
    assert flagged[urgent].mean() >= min_recall, missed
    assert np.asarray(urgent_reply)[~urgent].mean() <= max_false_alarms


def test_the_bundled_models_are_checked_before_loading(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not the model")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelFileError, match="sha256"):
        SentenceEncoder(tmp_path).warm_up()


def test_the_calibrated_files_load() -> None:
    gate = Gate.load()
    assert "squad2" in gate.trained_on and "covidqa" in gate.trained_on
    assert gate.sentence.features == ("relevance",) and "best_relevance" in gate.question.features
    assert 0 < gate.question.threshold < 1 and gate.question.weights[0] > 0
    model = TriageModel.load()
    assert set(model.centroids) == {"emergency", "poison", "crisis"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXTERNAL_MIN_BALANCED_ACCURACY))
def test_the_gate_holds_its_level_on_documents_nobody_here_wrote(
    name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from evals.external import evaluate

    try:
        dataset = (
            squad(DEFAULT_DATA, distractors=0)
            if name.startswith("squad")
            else covidqa(DEFAULT_DATA, articles=10)
        )
    except DatasetMissingError as exc:
        pytest.skip(f"external data absent, so this gate is not checked: {exc}")
    rows = evaluate(dataset, limit=120, cache=ROOT / "evals" / ".cache" / "external-test")
    project = rows[0]
    assert project.balanced_accuracy >= EXTERNAL_MIN_BALANCED_ACCURACY[name], rows
    assert project.hasans_hit >= 0.3 * project.answered, (
        rows
    )  # what it answers, it mostly gets right


def test_refusals_name_the_professional_a_blind_labeller_chose() -> None:
    """Who-to-ask on two sets never fitted on: the blind set's refused questions (a helper
    labelled each, seeing only them), and 90 messages another helper wrote blind, many about
    the gut or sleep of an adult, an animal or a child, so that the topic cannot decide."""
    from assistant.referral import Referrals
    from corpus.models import SentenceEncoder

    rows = {r["id"]: r for r in map(json.loads, BLIND.read_text("utf-8").splitlines())}
    referrals = Referrals(SentenceEncoder())
    hits = []
    for label in map(json.loads, REFERRALS.read_text("utf-8").splitlines()):
        row = rows[label["id"]]
        previous = " ".join(t["content"] for t in row["history"] if t["role"] == "user")
        got = referrals(row["question"], previous)
        hits.append(got in (label["label"], label["also"]))
    assert len(hits) >= 50
    assert sum(hits) / len(hits) >= 0.9  # measured: 0.904 (47 of 52; 48 with the nearest example)
    messages = [json.loads(line) for line in REFERRALS_BLIND.read_text("utf-8").splitlines()]
    named = [referrals(m["question"]) == m["label"] for m in messages]
    assert len(named) == 90 and sum(named) / len(named) >= 0.9  # measured: 0.933 (0.711 before)
    assert referrals("been getting a stomach ache since i upped my melatonin") == "doctor"


def test_small_talk_and_overview_requests_are_read_in_messages_never_fitted_on() -> None:
    """190 messages two helpers wrote blind (greetings with a vague request, questions about
    the bot, one-word questions, questions after a "hi", instructions to the bot), and no
    question of the eval sets routed away from the documents."""
    from assistant.intent import Intents
    from corpus.models import SentenceEncoder

    intents = Intents(SentenceEncoder())
    messages = [json.loads(line) for line in INTENTS_BLIND.read_text("utf-8").splitlines()]
    wanted = {"smalltalk": "smalltalk", "overview": "overview"}  # the rest are read as questions
    read = [intents(m["text"]) == wanted.get(m["label"]) for m in messages]
    assert len(read) == 190 and sum(read) / len(read) >= 0.85  # measured 0.895 (0.758 before)
    questions = [
        row["question"]
        for path in (QUESTIONS, BLIND)
        for row in map(json.loads, path.read_text("utf-8").splitlines())
        if row["category"] not in ("smalltalk", "overview")
    ]
    routed = [q for q in questions if intents(q) or intents.sure_smalltalk(q)]
    assert len(questions) > 350 and not routed, routed  # measured: none of 388
