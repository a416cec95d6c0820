"""The one sentence splitter: pysbd's rule-based boundaries, with character offsets.

Measured on COVID-QA's hard-wrapped articles: with line breaks read as sentence ends, only 73 of
96 answers fell inside one sentence (and balanced accuracy fell from 0.824 to 0.763); read as
spaces, 92 of 96, as with the earlier regex splitter, and 0.824.
"""

from __future__ import annotations

import re

import pysbd

_WRAP = re.compile(r"(?<![\r\n])\r?\n(?![\r\n])")  # one line break inside a paragraph


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of `text[start:end]`, surrounding space trimmed."""
    end = len(text) if end is None else end
    piece = text[start:end]
    if not piece.strip():
        return []
    segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
    # pysbd ends a sentence at every line break; a hard-wrapped paragraph's breaks are spaces
    # (replaced one for one, so the offsets still index the text; blank lines still separate)
    flat = _WRAP.sub(lambda m: " " * len(m[0]), piece)
    spans = []
    for span in segmenter.segment(flat):
        sentence = piece[span.start : span.end]
        s = span.start + len(sentence) - len(sentence.lstrip())
        e = span.start + len(sentence.rstrip())
        if e > s:
            spans.append((start + s, start + e))
    return spans


def sentences(text: str) -> list[str]:
    """The sentences of a text, each stripped."""
    return [text[s:e] for s, e in sentence_spans(text)]
