"""The labelled pair the reader trains on, and reading a file of them (no app imports: the
training step runs where only torch, transformers and tokenizers are installed)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

KIND = "document"  # external corpora have no sources.toml: every document is of this kind


@dataclass(frozen=True)
class Pair:
    """A question against one sentence, with the sentence's heading, labelled 1 if it answers."""

    question: str
    sentence: str
    heading: str
    label: int
    source: str  # squad-original, covid-original, squad-impossible, lay, near-topic, match,
    # contrast, follow-up, follow-up-not
    article: str
    group: str  # pairs of one question share a group (ranking metrics read a group)


def load_pairs(path: Path) -> list[Pair]:
    """The pairs of a JSONL file written by `evals.reader.data.write`."""
    return [Pair(**json.loads(line)) for line in path.read_text("utf-8").splitlines() if line]
