"""python -m evals.reader.sweep BASE OUT: choose the reader's recipe on validation articles.

Made for a machine with a GPU (the `device` tool lends one to some sessions; on 2 CPU cores it
would take a day). Only torch, transformers, tokenizers and onnx are needed there: BASE is a
folder with a copy of the bundled int8 ms-marco `model.onnx` (its sha256 is checked) and its
`tokenizer.json`.

The training articles are split once more: the pairs of VALIDATION's articles are held back,
each recipe of RECIPES trains on the rest, and is scored on them (a lay question's gold sentence
first in its group; ROC AUC of a question's best score, lay rewrites against near-topic
questions). The report's held-out articles are never read. The best recipe (mean of the two) is
then trained on all the training pairs; its weights, less the frozen embeddings, go to OUT as
fp16 parts of under 16 MB, with `sweep.json`. `python -m evals.reader --weights OUT` exports
them as the reader, and `make reader` on a CPU rebuilds the same recipe from scratch.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from evals.reader.pairs import Pair, load_pairs
from evals.reader.train import Recipe, encode, tokenizer, train

PAIRS = Path(__file__).resolve().with_name("data") / "pairs-train.jsonl"
# one SQuAD article of five and five COVID-QA articles of nineteen, about a fifth of the pairs
VALIDATION = (
    "Frédéric Chopin",
    "covid-2592",
    "covid-188",
    "covid-2668",
    "covid-1595",
    "covid-185",
)
# the two sweeps run on an H200 (evals/reports/sweep/*.json): the first reader's recipe, longer
# training, all layers, batches of 32, other learning rates and listwise weights, weighting the
# near-topic pairs, and three seeds of the best (the spread between seeds, ~0.01 AUC, is as large
# as most differences)
FIRST = Recipe(epochs=1.5, seed=23)
RECIPES = {
    "first reader (1.5 epochs)": FIRST,
    "3 epochs": replace(FIRST, epochs=3.0),
    "3 epochs, seed 24": replace(FIRST, epochs=3.0, seed=24),
    "3 epochs, seed 25": replace(FIRST, epochs=3.0, seed=25),
    "3 epochs, near-topic x2": replace(FIRST, epochs=3.0, near_weight=2.0),
    "3 epochs, near-topic x3": replace(FIRST, epochs=3.0, near_weight=3.0),
    "4 epochs": replace(FIRST, epochs=4.0),
    "3 epochs, 6 frozen": replace(FIRST, epochs=3.0, frozen_layers=6),
    "3 epochs, lr 5e-5": replace(FIRST, epochs=3.0, learning_rate=5e-5),
    "3 epochs, all layers": replace(FIRST, epochs=3.0, frozen_layers=0),
    "3 epochs, all layers, batch 32, lr 5e-5": replace(
        FIRST, epochs=3.0, frozen_layers=0, batch=32, learning_rate=5e-5
    ),
    "3 epochs, all layers, batch 32, listwise 0.3": replace(
        FIRST, epochs=3.0, frozen_layers=0, batch=32, listwise=0.3
    ),
    "3 epochs, all layers, batch 32, listwise 2": replace(
        FIRST, epochs=3.0, frozen_layers=0, batch=32, listwise=2.0
    ),
    "5 epochs, all layers, batch 32": replace(FIRST, epochs=5.0, frozen_layers=0, batch=32),
    "8 epochs, all layers, batch 32, lr 2e-5": replace(
        FIRST, epochs=8.0, frozen_layers=0, batch=32, learning_rate=2e-5
    ),
}
PART_BYTES = 15_000_000

log = logging.getLogger("evals.reader.sweep")


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """ROC AUC: the chance a positive scores above a negative (ties count half)."""
    pos, neg = np.asarray(positive)[:, None], np.asarray(negative)[None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


def scores(model: Any, tok: Any, pairs: Sequence[Pair]) -> np.ndarray:
    """The model's logit for every pair, in batches on the model's device."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(pairs), 256):
            inputs = {k: v.to(device) for k, v in encode(tok, pairs[i : i + 256]).items()}
            out.append(model(**inputs).logits[:, 0].float().cpu().numpy())
    return np.concatenate(out)


def validate(model: Any, tok: Any, pairs: Sequence[Pair]) -> dict[str, float]:
    """Gold first (lay, original questions) and AUC lay vs near-topic over the held-back pairs."""
    logits = scores(model.eval(), tok, pairs)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        groups[p.group].append(i)
    first: dict[str, list[bool]] = defaultdict(list)
    best: dict[str, list[float]] = defaultdict(list)
    for idx in groups.values():
        source = pairs[idx[0]].source
        top = max(idx, key=lambda i: logits[i])
        if any(pairs[i].label for i in idx):
            first[source].append(bool(pairs[top].label))
        best[source].append(float(logits[top]))
    return {
        "lay first": float(np.mean(first["lay"])),
        "original first": float(np.mean(first["squad-original"] + first["covid-original"])),
        "auc lay vs near": auc(best["lay"], best["near-topic"]),
        "lay": len(first["lay"]),
        "near-topic": len(best["near-topic"]),
    }


def trial(name: str, recipe: Recipe, base: Path, work: Path) -> dict[str, Any]:
    """Train one recipe without the validation articles and score it on them."""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [{name}] %(message)s")
    pairs = load_pairs(PAIRS)
    held = [p for p in pairs if p.article in VALIDATION]
    rest = [p for p in pairs if p.article not in VALIDATION]
    model, seconds = train(rest, base, work, recipe, base / "model.onnx", checkpoints=False)
    import torch

    if torch.cuda.is_available():
        model = model.cuda()
    return {"name": name, "recipe": asdict(recipe), "seconds": round(seconds)} | validate(
        model, tokenizer(base), held
    )


def baseline(base: Path) -> dict[str, Any]:
    """The untrained ms-marco model on the validation pairs."""
    import torch

    from evals.reader.base import float_model

    held = [p for p in load_pairs(PAIRS) if p.article in VALIDATION]
    model = float_model(base / "model.onnx")
    if torch.cuda.is_available():
        model = model.cuda()
    return {"name": "ms-marco (untrained)"} | validate(model, tokenizer(base), held)


def write_weights(model: Any, out: Path) -> list[str]:
    """The model's weights, less the embeddings (never trained), as fp16 parts in `out`."""
    import torch

    state = {k: v.half() for k, v in model.state_dict().items() if ".embeddings." not in k}
    parts: list[dict[str, Any]] = [{}]
    size = 0
    for key, value in state.items():
        nbytes = value.numel() * 2
        if size + nbytes > PART_BYTES and parts[-1]:
            parts.append({})
            size = 0
        parts[-1][key] = value.contiguous()
        size += nbytes
    names = []
    for n, part in enumerate(parts):
        names.append(f"weights-{n}.pt")
        torch.save(part, out / names[-1])
    return names


def main(argv: list[str] | None = None) -> int:
    """Run every recipe (several at once), then train the best on all the training pairs."""
    parser = argparse.ArgumentParser(prog="python -m evals.reader.sweep", description=__doc__)
    parser.add_argument("base", type=Path, help="folder with the int8 model.onnx, tokenizer.json")
    parser.add_argument("out", type=Path)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--only", nargs="*", help="names of RECIPES to try (default: all)")
    parser.add_argument("--skip", nargs="*", default=(), help="names of RECIPES not to try")
    parser.add_argument("--epochs", type=float, help="override every recipe's epochs (a dry run)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sweep-"))  # unused: no checkpoints
    recipes = {
        k: v for k, v in RECIPES.items() if (not args.only or k in args.only) and k not in args.skip
    }
    if args.epochs:
        recipes = {k: replace(v, epochs=args.epochs) for k, v in recipes.items()}
    started = time.monotonic()
    context = multiprocessing.get_context("spawn")
    longest_first = sorted(recipes.items(), key=lambda kv: -kv[1].epochs / kv[1].batch)
    results = []
    with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
        futures = {pool.submit(trial, k, v, args.base, work): k for k, v in longest_first}
        results.append(baseline(args.base))
        log.info("%s", json.dumps(results[-1]))
        for future in as_completed(futures):
            try:
                results.append(future.result())
            except Exception:  # one recipe failing must not lose the others
                log.exception("%s failed", futures[future])
                continue
            log.info("%s", json.dumps(results[-1]))
    tried = [r for r in results if "recipe" in r]
    chosen = max(tried, key=lambda r: (r["lay first"] + r["auc lay vs near"]) / 2)
    log.info("chosen: %s; training it on all the training pairs", chosen["name"])
    recipe = Recipe(**chosen["recipe"])
    pairs = load_pairs(PAIRS)
    model, seconds = train(pairs, args.base, work, recipe, args.base / "model.onnx", False)
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    summary = {
        "validation articles": list(VALIDATION),
        "results": results,
        "chosen": chosen["name"],
        "recipe": asdict(recipe),
        "pairs": len(pairs),
        "training_seconds": round(seconds),
        "trained_on": device,
        "parts": write_weights(model, args.out),
        "sweep_seconds": round(time.monotonic() - started),
    }
    (args.out / "sweep.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
