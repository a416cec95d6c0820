"""The trained reader as the app loads it: int8 ONNX, its tokenizer and a card with its sha256.

The float model is exported with torch's ONNX exporter, then quantised with onnxruntime's
dynamic int8 (the bundled model's kind of quantisation, with one scale per output channel), so a
pair costs about what it did. `int8_onnx` is shared with the message classifiers
(`evals.classifier`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from corpus.models import READER_CARD, RERANKER, bundled_folder, file_sha256


def int8_onnx(module: Any, target: Path) -> Path:
    """Export a torch module taking (input_ids, attention_mask, token_type_ids) and returning
    logits to `target` as dynamic int8 ONNX, one scale per output channel."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = torch.ones(2, 16, dtype=torch.long)
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = Path(scratch) / "model-fp32.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's tracing notes; the output is checked
            torch.onnx.export(
                module.eval(),
                (example, example, torch.zeros_like(example)),
                str(fp32),
                input_names=names,
                output_names=["logits"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names}
                | {"logits": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        # one scale per output channel: with one per matrix (as the bundled model was quantised)
        # the fine-tuned reader lost most of what it learnt (held-out AUC 0.88 -> 0.58)
        quantize_dynamic(str(fp32), str(partial), weight_type=QuantType.QInt8, per_channel=True)
        partial.replace(target)
    return target


def export(model: Any, folder: Path, card: dict[str, Any]) -> Path:
    """Write `model.onnx` (int8), `tokenizer.json` and the card (with the sha256) to `folder`."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).logits

    target = int8_onnx(Logits(model.eval()), folder / "model.onnx")
    shutil.copyfile(bundled_folder(RERANKER[0]) / "tokenizer.json", folder / "tokenizer.json")
    card = {**card, "sha256": file_sha256(target), "bytes": target.stat().st_size}
    (folder / READER_CARD).write_text(
        json.dumps(card, indent=1, ensure_ascii=False) + "\n", "utf-8"
    )
    return target
