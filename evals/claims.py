"""python -m evals.claims: the claim check's thresholds, tuned on hand-labelled LLM sentences.

`evals/data/claims.jsonl` holds every sentence SmolLM2 wrote for the eval set's dev split
(`python -m evals.llm --split dev` dumps them to llm_claims.jsonl), each with the sentences of
all the passages it was shown, as if it had cited every one (the hardest case for the check),
labelled by reading it beside them: `supported` true or false, with a note. This prints, over a
grid of thresholds, how many unsupported sentences the check would keep (must be 0) and how many
supported ones it would drop, and marks the thresholds in use. `make test-llm` reports on the
held-out test split. `--claims evals/data/claims_qwen.jsonl`: the sentences Qwen2.5-Coder-1.5B
wrote that the check kept at 0.7 / 0.6 (test split and 40 dev questions), each with the quote it
cited, labelled by two helpers who saw only the sentence and the quote (supported only when both
said so); the thresholds were raised to 0.9 / 0.9 on them. `claims_qwen_blind.jsonl`: every
sentence it wrote for the blind lay set's test split, labelled the same way, held out.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.llm import (
    MIN_SUPPORT_OVERLAP,
    MIN_SUPPORT_SIMILARITY,
    Support,
    check_claim,
    strip_markers,
)
from settings import offline

HERE = Path(__file__).resolve().parent
CLAIMS = HERE / "data" / "claims.jsonl"  # SmolLM2-135M's, each judged against every passage
QWEN_CLAIMS = HERE / "data" / "claims_qwen.jsonl"  # Qwen's kept ones, each against its quote


@dataclass(frozen=True)
class LabelledClaim:
    """A generated sentence, the sentences it was judged against, and a human's verdict."""

    claim: str
    judged: tuple[str, ...]
    supported: bool
    note: str = ""


def load_claims(path: Path = CLAIMS) -> list[LabelledClaim]:
    """The labelled sentences."""
    claims = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            claims.append(
                LabelledClaim(
                    row["claim"], tuple(row["judged"]), row["supported"], row.get("note", "")
                )
            )
    return claims


def verdicts(
    claims: Sequence[LabelledClaim],
    embedder: Any,
    min_similarity: float = MIN_SUPPORT_SIMILARITY,
    min_overlap: float = MIN_SUPPORT_OVERLAP,
) -> list[Support]:
    """The check's verdict on each sentence, with the real embedding model."""
    vectors = np.asarray(embedder.encode([strip_markers(c.claim) for c in claims]), np.float32)
    unique = list(dict.fromkeys(s for c in claims for s in c.judged))  # each encoded once
    encoded = dict(zip(unique, np.asarray(embedder.encode(unique), np.float32), strict=True))
    out = []
    for claim, vector in zip(claims, vectors, strict=True):
        sentences = np.asarray([encoded[s] for s in claim.judged], dtype=np.float32)
        out.append(
            check_claim(
                claim.claim,
                vector,
                " ".join(claim.judged),
                claim.judged,
                sentences,
                min_similarity,
                min_overlap,
            )
        )
    return out


def confusion(
    claims: Sequence[LabelledClaim],
    scored: Sequence[Support],
    min_similarity: float,
    min_overlap: float,
) -> tuple[int, int]:
    """(unsupported sentences kept, supported sentences dropped) at these thresholds."""
    kept = [  # vetoed verdicts score similarity 0, below every threshold tried
        v.similarity >= min_similarity and v.overlap >= min_overlap for v in scored
    ]
    wrongly_kept = sum(k and not c.supported for c, k in zip(claims, kept, strict=True))
    wrongly_dropped = sum(c.supported and not k for c, k in zip(claims, kept, strict=True))
    return wrongly_kept, wrongly_dropped


def main(argv: list[str] | None = None) -> int:
    """Print the grid; fail when the thresholds in use keep an unsupported sentence."""
    offline()
    parser = argparse.ArgumentParser(prog="python -m evals.claims", description=__doc__)
    parser.add_argument("--claims", type=Path, default=CLAIMS)
    args = parser.parse_args(argv)

    from corpus.embeddings import Embedder
    from settings import Settings

    claims = load_claims(args.claims)
    embedder = Embedder.from_settings(Settings.from_env())
    embedder.warm_up()
    scored = verdicts(claims, embedder, 0.0, 0.0)  # raw scores; thresholds applied below
    supported = sum(c.supported for c in claims)
    print(
        f"{len(claims)} labelled sentences: {supported} supported, {len(claims) - supported} not\n"
        "rows: min similarity; columns: min overlap; cells: unsupported kept / supported dropped"
    )
    overlaps = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    print("sim  " + "".join(f"{o:>9.1f}" for o in overlaps))
    for similarity in (0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
        cells = []
        for overlap in overlaps:
            kept, dropped = confusion(claims, scored, similarity, overlap)
            here = similarity == MIN_SUPPORT_SIMILARITY and overlap == MIN_SUPPORT_OVERLAP
            cells.append(f"{kept:>3}/{dropped:<3}{'*' if here else ' '}")
        print(f"{similarity:<5}" + " ".join(f"{c:>8}" for c in cells))
    kept, dropped = confusion(claims, scored, MIN_SUPPORT_SIMILARITY, MIN_SUPPORT_OVERLAP)
    print(
        f"in use (*): similarity >= {MIN_SUPPORT_SIMILARITY}, overlap >= {MIN_SUPPORT_OVERLAP}: "
        f"{kept} unsupported kept, {dropped} of {supported} supported dropped"
    )
    return 0 if kept == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
