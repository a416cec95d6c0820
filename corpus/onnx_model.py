"""The bundled sentence-transformers model run by onnxruntime, exported locally (never the hub).

The export (torch, once, ~10 s) is cached beside the project; serving then needs only
onnxruntime and tokenizers, which import in well under a second where torch takes about ten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnnxModel:
    """Tokenizer + ONNX session + mean pooling: what SentenceTransformer.encode does here."""

    session: Any
    tokenizer: Any
    dimension: int

    @classmethod
    def load(cls, model_path: str, cache_dir: Path, *, quantized: bool) -> OnnxModel:
        """Load the exported model from `cache_dir`, exporting it first if it is not there."""
        import onnxruntime
        from tokenizers import Tokenizer

        source = Path(model_path)
        pooling = json.loads((source / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise ValueError(f"{model_path}: only mean-pooling models run on the ONNX backend")
        max_length = json.loads((source / "sentence_bert_config.json").read_text())[
            "max_seq_length"
        ]
        path = export(source, cache_dir, quantized=quantized)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
        tokenizer.enable_truncation(max_length)
        tokenizer.enable_padding()
        return cls(session, tokenizer, int(pooling["word_embedding_dimension"]))

    def get_embedding_dimension(self) -> int:
        """Length of one embedding vector."""
        return self.dimension

    def encode(self, texts: list[str], batch_size: int = 8, **_: Any) -> np.ndarray:
        """Normalised mean-pooled embeddings, batched by length so padding stays small."""
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i in range(0, len(texts), batch_size):
            rows = order[i : i + batch_size]
            encoded = self.tokenizer.encode_batch([texts[j] for j in rows])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            inputs = {
                "input_ids": ids,
                "attention_mask": mask,
                "token_type_ids": np.zeros_like(ids),
            }
            hidden = self.session.run(None, inputs)[0]
            summed = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
            out[rows] = summed / np.linalg.norm(summed, axis=1, keepdims=True)
        return out


def model_id(model_path: str | Path) -> str:
    """Names a model folder by its name and a digest of its config: `name:digest`."""
    config = Path(model_path, "config.json")
    digest = hashlib.sha256(config.read_bytes() if config.is_file() else b"").hexdigest()[:12]
    return f"{Path(model_path).name}:{digest}"


def export(source: Path, cache_dir: Path, *, quantized: bool) -> Path:
    """The ONNX file for this model (int8 weights when quantized), exported once per model."""
    folder = cache_dir / model_id(source).replace(":", "-")
    fp32 = folder / "model.onnx"
    int8 = folder / "model-int8.onnx"
    target = int8 if quantized else fp32
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    if not fp32.is_file():
        log.warning(
            "first use of the ONNX backend: exporting %s to %s (about 15 s, once)",
            source.name,
            fp32,
        )
        _export_fp32(source, fp32)
    if quantized:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        partial = int8.with_suffix(f".{os.getpid()}.tmp")
        quantize_dynamic(str(fp32), str(partial), weight_type=QuantType.QInt8, per_channel=True)
        partial.replace(int8)  # atomic: a concurrent reader sees the whole file or none
    return target


def _export_fp32(source: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel

    class Encoder(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    model = Encoder(AutoModel.from_pretrained(str(source), local_files_only=True).eval())
    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = torch.ones(2, 16, dtype=torch.long)
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on tracing; the output is checked
        torch.onnx.export(
            model,
            (example, example, torch.zeros_like(example)),
            str(partial),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )
    partial.replace(target)
