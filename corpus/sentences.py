"""The one sentence splitter: pysbd's rule-based boundaries, with character offsets."""

from __future__ import annotations

import pysbd


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of `text[start:end]`, surrounding space trimmed."""
    end = len(text) if end is None else end
    piece = text[start:end]
    if not piece.strip():
        return []
    segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
    spans = []
    for span in segmenter.segment(piece):
        sentence = piece[span.start : span.end]
        s = span.start + len(sentence) - len(sentence.lstrip())
        e = span.start + len(sentence.rstrip())
        if e > s:
            spans.append((start + s, start + e))
    return spans


def sentences(text: str) -> list[str]:
    """The sentences of a text, each stripped."""
    return [text[s:e] for s, e in sentence_spans(text)]
