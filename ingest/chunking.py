"""Clean boilerplate, find sections, split into sentences and chunks, keeping char offsets."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from corpus.records import Chunk, Sentence
from corpus.sentences import sentence_spans as split_sentences
from ingest.loaders import BULLET, Block, LoadedDocument

MAX_CHARS = 900  # ~200 word pieces: inside all-MiniLM-L6-v2's 256-token window with a heading
_FINAL_PUNCTUATION = tuple(".!?,;:")


def digest(text: str) -> str:
    """Content hash used to recognise text that was embedded before."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def collapse(text: str) -> str:
    """Collapse runs of whitespace to single spaces."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Section:
    """A heading (None before the first) and the content blocks under it."""

    heading: str | None
    blocks: tuple[Block, ...]


def boilerplate(doc: LoadedDocument) -> set[int]:
    """Indexes of blocks made only of repeated lines (3+ times, or 2+ for heading-like lines)."""
    lines = [
        [collapse(line).lower() for line in doc.text[b.start : b.end].splitlines() if line.strip()]
        for b in doc.blocks
    ]
    counts = Counter(line for block in lines for line in block)

    def repeated(line: str) -> bool:
        return counts[line] >= 3 or (counts[line] >= 2 and _heading_like(line))

    return {i for i, block in enumerate(lines) if block and all(map(repeated, block))}


def _heading_like(line: str) -> bool:
    words = line.split()
    return (
        0 < len(words) <= 16
        and len(line) <= 120
        and "\n" not in line.strip()
        and not line.rstrip().endswith(_FINAL_PUNCTUATION)
    )


def _paragraph_like(line: str) -> bool:
    return line.rstrip().endswith(tuple(".!?:;")) or len(line.split()) > 8


def sections(doc: LoadedDocument) -> tuple[str | None, list[Section]]:
    """Group the non-boilerplate blocks into sections; returns (title line, sections)."""
    drop = boilerplate(doc)
    blocks = [b for i, b in enumerate(doc.blocks) if i not in drop]
    texts = [doc.text[b.start : b.end].strip() for b in blocks]
    title = doc.title
    if doc.plain:
        base = Counter(b.indent for b in blocks).most_common(1)[0][0] if blocks else 0
        kinds = [b.kind for b in blocks]
        next_is_heading = False
        for i in range(len(blocks) - 1, -1, -1):  # a heading precedes a paragraph or a heading
            following = texts[i + 1] if i + 1 < len(texts) else ""
            if (
                blocks[i].indent == base
                and _heading_like(texts[i])
                and (next_is_heading or _paragraph_like(following))
            ):
                kinds[i] = "heading"
            next_is_heading = kinds[i] == "heading"
        if blocks and _heading_like(texts[0]):  # the first short line is the document's title
            title = title or collapse(texts[0])
            kinds[0] = "title"
        blocks = [Block(k, b.start, b.end, b.indent) for k, b in zip(kinds, blocks, strict=True)]
    result: list[Section] = []
    heading: str | None = None
    current: list[Block] = []
    for block in blocks:
        if block.kind in ("heading", "title"):
            if current:
                result.append(Section(heading, tuple(current)))
            current = []
            text = collapse(doc.text[block.start : block.end])
            heading = BULLET.sub("", text, count=1) if block.kind == "heading" else None
        else:
            current.append(block)
    if current:
        result.append(Section(heading, tuple(current)))
    return title, result


def sentence_spans(text: str, block: Block) -> list[tuple[int, int]]:
    """Sentence (start, end) offsets inside one block; a list item drops its bullet marker."""
    start, end = block.start, block.end
    if block.kind == "item":
        marker = BULLET.match(text, start)
        if marker:
            start = marker.end()
    return [
        piece for s, e in split_sentences(text, start, end) for piece in _hard_split(text, s, e)
    ]


def _hard_split(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Split a run-on 'sentence' longer than MAX_CHARS at whitespace."""
    pieces = []
    while end - start > MAX_CHARS:
        cut = text.rfind(" ", start, start + MAX_CHARS)
        cut = cut if cut > start else start + MAX_CHARS
        pieces.append((start, cut))
        start = cut + 1
    pieces.append((start, end))
    return pieces


def chunk_document(
    doc: LoadedDocument,
    *,
    source: str,
    doc_id: str,
    title: str | None,
    kind: str,
    version: str,
) -> tuple[str, list[Chunk], list[Sentence]]:
    """Split a loaded document into chunks and sentences; returns (title, chunks, sentences)."""
    found_title, parts = sections(doc)
    title = title or found_title or doc_id
    sentences: list[Sentence] = []
    chunks: list[Chunk] = []
    for part in parts:
        units: list[tuple[Sentence, Block]] = []
        for block, spans in _with_lists(doc.text, part.blocks):
            for s, e, lead_end in spans:
                text = collapse(doc.text[s:e])
                lead = len(collapse(doc.text[s:lead_end])) if lead_end < e else 0
                embedded = text[:lead] if lead else text  # the hash names what the model embeds
                sentence = Sentence(
                    f"{version}-s{len(sentences)}", text, s, e, digest(embedded), lead
                )
                sentences.append(sentence)
                units.append((sentence, block))
        for group in _pack(units):
            chunks.append(
                _make_chunk(group, part.heading, len(chunks), source, doc_id, title, kind, version)
            )
    return title, chunks, sentences


def _with_lists(
    text: str, blocks: Sequence[Block]
) -> list[tuple[Block, list[tuple[int, int, int]]]]:
    """Sentence spans (start, end, end of lead-in) per block.

    A sentence ending in ':' absorbs what it introduces: the short list items after it (embedded
    by the lead-in alone, which carries the meaning), or one short paragraph ("The one I use is:
    Natrol ..."), so the claim can be quoted whole.
    """
    result: list[tuple[Block, list[tuple[int, int, int]]]] = []
    i = 0
    while i < len(blocks):
        block = blocks[i]
        spans = [(s, e, e) for s, e in sentence_spans(text, block)]
        i += 1
        if (
            block.kind == "text"
            and spans
            and text[spans[-1][0] : spans[-1][1]].rstrip().endswith(":")
        ):
            start, lead_end = spans[-1][0], spans[-1][1]
            j = i
            while (
                j < len(blocks)
                and blocks[j].kind == "item"
                and blocks[j].end - blocks[j].start < 160
            ):
                j += 1
            if j > i and blocks[j - 1].end - start <= MAX_CHARS:
                spans[-1] = (start, blocks[j - 1].end, lead_end)
                i = j
            elif (
                i < len(blocks)
                and blocks[i].kind == "text"
                and blocks[i].end - blocks[i].start < 160
            ):
                spans[-1] = (start, blocks[i].end, blocks[i].end)
                i += 1
        result.append((block, spans))
    return result


def _pack(units: Sequence[tuple[Sentence, Block]]) -> list[list[tuple[Sentence, Block]]]:
    """Greedy sentence packing up to MAX_CHARS, carrying one sentence over as overlap."""
    groups: list[list[tuple[Sentence, Block]]] = []
    current: list[tuple[Sentence, Block]] = []
    size = 0
    for unit in units:
        length = len(unit[0].text) + 1
        if current and size + length > MAX_CHARS:
            groups.append(current)
            carry = (
                current[-1:]
                if len(current) >= 3 and len(current[-1][0].text) < MAX_CHARS // 3
                else []
            )
            current, size = list(carry), sum(len(u[0].text) + 1 for u in carry)
        current.append(unit)
        size += length
    if current:
        groups.append(current)
    return groups


def _make_chunk(
    group: Sequence[tuple[Sentence, Block]],
    section: str | None,
    index: int,
    source: str,
    doc_id: str,
    title: str,
    kind: str,
    version: str,
) -> Chunk:
    text = ""
    previous: Block | None = None
    for sentence, block in group:
        if previous is not None:
            text += " " if block == previous else "\n"
        text += sentence.text
        previous = block
    chunk = Chunk(
        id=f"{version}-c{index}",
        doc_id=doc_id,
        source=source,
        title=title,
        kind=kind,
        section=section,
        text=text,
        start=group[0][0].start,
        end=group[-1][0].end,
        content_hash="",
        version=version,
        sentence_ids=tuple(s.id for s, _ in group),
    )
    return Chunk(**{**chunk.__dict__, "content_hash": digest(chunk.embedding_text())})
