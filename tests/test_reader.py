"""The project's reader: rebuilt from the bundled weights, checked at load, and better at what it
was trained for on articles it never saw (the committed held-out pairs)."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from corpus.models import (
    READER_CARD,
    READER_FOLDER,
    RERANKER,
    CrossEncoder,
    ModelFileError,
    bundled_folder,
    reading_text,
)
from evals.datasets import DEFAULT_DATA, DatasetMissingError
from evals.reader.pairs import KIND, Pair

HELD_OUT = ROOT / "evals" / "reader" / "data" / "pairs-heldout.jsonl"


def held_out_groups() -> dict[str, list[Pair]]:
    groups: dict[str, list[Pair]] = defaultdict(list)
    for line in HELD_OUT.read_text("utf-8").splitlines():
        pair = Pair(**json.loads(line))
        groups[pair.group].append(pair)
    return groups


def best_scores(reader: CrossEncoder, groups: dict[str, list[Pair]]) -> dict[str, np.ndarray]:
    return {
        g: reader.score(
            pairs[0].question, [reading_text(KIND, p.heading, p.sentence) for p in pairs]
        )
        for g, pairs in groups.items()
    }


def auc(positive: list[float], negative: list[float]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score([1] * len(positive) + [0] * len(negative), positive + negative))


def first(scores: dict[str, np.ndarray], groups: dict[str, list[Pair]], source: str) -> float:
    """The share of a source's answerable groups whose gold sentence scores highest."""
    hits = [
        int(np.argmax(s)) == [p.label for p in groups[g]].index(1)
        for g, s in scores.items()
        if any(p.label for p in groups[g]) and groups[g][0].source == source
    ]
    return float(np.mean(hits))


@pytest.mark.slow
def test_the_reader_beats_ms_marco_on_lay_and_near_topic_questions_it_never_saw() -> None:
    """Held-out articles: the gold sentence ranks first, and a lay question's best score rises
    above a near-topic question's (where ms-marco scored lay questions low)."""
    groups = held_out_groups()
    results = {}
    for name, reader in (("ours", CrossEncoder()), ("ms-marco", CrossEncoder.bundled())):
        scores = best_scores(reader, groups)

        lay = [float(s.max()) for g, s in scores.items() if groups[g][0].source == "lay"]
        near = [float(s.max()) for g, s in scores.items() if groups[g][0].source == "near-topic"]
        results[name] = (
            first(scores, groups, "lay"),
            auc(lay, near),
            first(scores, groups, "follow-up"),
        )
    assert len(groups) >= 400
    # groups of the gold sentence and 4 hard negatives since reader v2 (2 before)
    assert results["ours"][0] >= 0.90, results  # 0.906 when trained (ms-marco: 0.859)
    # a follow-up read with its first question: its own sentence before the first one's
    assert results["ours"][2] >= results["ms-marco"][2], results
    assert results["ours"][1] >= 0.85, results  # 0.866 when trained (ms-marco: 0.522)
    assert results["ours"][1] >= results["ms-marco"][1] + 0.05, results


@pytest.mark.slow
def test_the_float_rebuild_of_the_bundled_int8_model_gives_its_scores() -> None:
    """Training starts from the bundled weights, dequantised: the same scores within 0.5."""
    import torch

    from evals.reader.base import float_model
    from evals.reader.train import encode, tokenizer

    pairs = [
        Pair("what is the capital of france", "Paris is the capital of France.", "France", 1,
             "t", "a", "g"),
        Pair("what is the capital of france", "Bananas are yellow.", "Fruit", 0, "t", "a", "g"),
        Pair("has this been tested in animals?", "In rodent studies, melatonin restored "
             "microbial diversity.", "Research", 1, "t", "a", "g"),
    ]  # fmt: skip
    reader = CrossEncoder.bundled()
    expected = np.array(
        [reader.score(p.question, [reading_text(KIND, p.heading, p.sentence)])[0] for p in pairs]
    )
    with torch.no_grad():
        rebuilt = float_model()(**encode(tokenizer(bundled_folder(RERANKER[0])), pairs)).logits[
            :, 0
        ]
    assert np.abs(rebuilt.numpy() - expected).max() < 0.5, (rebuilt, expected)


@pytest.mark.slow
def test_weights_trained_on_a_gpu_come_back_as_the_model_they_were(tmp_path: Path) -> None:
    """A sweep's fp16 parts load over the float base (the embeddings, never trained, excepted);
    parts from another model or another pair file are refused, not half-loaded."""
    import torch

    from evals.reader.__main__ import trained_elsewhere
    from evals.reader.base import float_model
    from evals.reader.sweep import write_weights

    model = float_model()
    with torch.no_grad():
        model.classifier.bias += 1.5  # as if trained
    parts = write_weights(model, tmp_path)
    assert len(parts) > 1 and all((tmp_path / p).stat().st_size < 16 * 2**20 for p in parts)
    summary = {"pairs": 7, "parts": parts, "recipe": {}, "training_seconds": 1,
               "trained_on": "test", "chosen": "test"}  # fmt: skip
    (tmp_path / "sweep.json").write_text(json.dumps(summary))
    loaded, card = trained_elsewhere(tmp_path, 7)
    assert abs(float((loaded.classifier.bias - model.classifier.bias).detach())) < 1e-2
    assert card["trained_on"] == "test" and card["pairs"] == 7
    with pytest.raises(ValueError, match="pairs"):
        trained_elsewhere(tmp_path, 8)
    torch.save({"not.a.weight": torch.zeros(1)}, tmp_path / parts[0])
    with pytest.raises(ValueError, match="unknown weight"):
        trained_elsewhere(tmp_path, 7)


def test_the_committed_reader_is_checked_before_loading(tmp_path: Path) -> None:
    shutil.copy(READER_FOLDER / "tokenizer.json", tmp_path / "tokenizer.json")
    shutil.copy(READER_FOLDER / READER_CARD, tmp_path / READER_CARD)
    (tmp_path / "model.onnx").write_bytes(b"not the reader")
    with pytest.raises(ModelFileError, match="sha256"):
        CrossEncoder(tmp_path).warm_up()
    (tmp_path / READER_CARD).unlink()
    with pytest.raises(ModelFileError, match=r"reader\.json"):
        CrossEncoder(tmp_path).warm_up()


@pytest.mark.slow
def test_the_training_pairs_rebuild_exactly_from_the_datasets() -> None:
    """`make reader` starts from the committed pairs' sources: rebuilt, they are the same."""
    from evals.reader import data

    try:
        pairs = data.build(DEFAULT_DATA)
    except DatasetMissingError as exc:
        pytest.skip(f"external data absent, so the rebuild is not checked: {exc}")
    for split, rows in pairs.items():
        committed = (data.DATA / f"pairs-{split}.jsonl").read_text("utf-8").splitlines()
        assert [json.loads(line) for line in committed] == [asdict(p) for p in rows]
    train_articles = {p.article for p in pairs["train"]}
    assert not train_articles & {p.article for p in pairs["heldout"]}
