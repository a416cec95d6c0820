"""Questions to suggest: written from the index, kept only when the engine answers them.

Candidates come in plain words from the documents themselves: "What are probiotics?" from a
sentence that says what probiotics are, "Tell me about stress management" from a short section
heading. Nothing here decides what is answerable: each candidate is asked through the whole
answer path, and kept only when it is answered with citations from the passage it was written
from. The checked list is computed once per index generation and cached beside the index.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from assistant.records import Answer
from corpus.records import Chunk

log = logging.getLogger(__name__)

FILE = "suggestions.json"
SHOWN = 2  # suggestions under a reply
STARTERS = 3  # example questions on an empty chat
HEADING_WORDS = 4  # longer headings read as sentences, not topics
MAX_CANDIDATES = 60  # asked per index generation (~0.25 s each): a big corpus is sampled
# "Probiotics are live bacteria…" -> "What are probiotics?": a sentence's subject of 1-3 words.
_DEFINES = re.compile(r"(?:^|(?<=[.!?]\s))([A-Z][\w’'-]*(?: [\w’'-]+){0,2}) (is|are) (?:a |an )?")


@dataclass(frozen=True)
class Suggestion:
    """A question the engine answers, and the passages its answer cites."""

    question: str
    chunk_ids: tuple[str, ...]
    doc_id: str


def _plain(words: str) -> str:
    """A heading or subject in running text: lower case, except acronyms and names like IBS."""
    return " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words.split())


def candidates(chunks: Sequence[Chunk]) -> list[tuple[str, Chunk]]:
    """Questions in plain words, each with the passage it was written from, in document order.

    A "What is X?" is written only when X's last word names a topic of the documents (it is a
    word of a title or section heading): "Everyone's physiology is different" is no topic.
    """
    topics = {
        w for c in chunks for w in re.findall(r"[\w’'-]+", f"{c.title} {c.section or ''}".lower())
    }
    found: dict[str, Chunk] = {}
    for chunk in chunks:
        for match in _DEFINES.finditer(chunk.text):
            subject, verb = _plain(match[1]), match[2]
            if subject.split()[-1] in topics:
                found.setdefault(f"What {verb} {subject}?", chunk)
        topic = re.sub(r"\s*\(.*?\)", "", (chunk.section or "").split(":")[0]).strip()
        if topic and chunk.section != chunk.title and len(topic.split()) <= HEADING_WORDS:
            found.setdefault(f"Tell me about {_plain(topic)}", chunk)
    turn: dict[str, int] = {}  # each document in turn: its 1st candidate, then its 2nd, ...
    counts: dict[str, int] = {}
    for question, chunk in found.items():
        turn[question] = counts.get(chunk.doc_id, 0)
        counts[chunk.doc_id] = turn[question] + 1
    return sorted(found.items(), key=lambda item: turn[item[0]])[:MAX_CANDIDATES]


class Suggestions:
    """The checked suggestions of one index folder, per generation (memory, then its file)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / FILE
        self._checked: tuple[str, tuple[Suggestion, ...]] | None = None

    def checked(self, generation: str) -> tuple[Suggestion, ...] | None:
        """This generation's checked suggestions, or None when they are not computed yet."""
        if self._checked is not None and self._checked[0] == generation:
            return self._checked[1]
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("generation") == generation:
                kept = tuple(
                    Suggestion(s["question"], tuple(s["chunk_ids"]), s["doc_id"])
                    for s in data["suggestions"]
                )
                self._checked = (generation, kept)
                return kept
        except (OSError, ValueError, KeyError, TypeError):
            pass  # none yet, or from an older version: computed again
        return None

    def check(
        self, generation: str, chunks: Sequence[Chunk], ask: Callable[[str], Answer]
    ) -> tuple[Suggestion, ...]:
        """Ask every candidate; keep those answered with citations from their own passage."""
        kept = []
        written = candidates(chunks)
        for question, chunk in written:
            answer = ask(question)
            cited = tuple(dict.fromkeys(c.chunk_id for c in answer.citations))
            if answer.status == "answered" and chunk.id in cited[:1]:
                kept.append(Suggestion(question, cited, chunk.doc_id))
        self._checked = (generation, tuple(kept))
        try:
            payload = {"generation": generation, "suggestions": [asdict(s) for s in kept]}
            self.path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
        except OSError as exc:  # a read-only index: kept in memory only
            log.info("suggestions not cached (%s)", exc)
        log.info("suggestions: %d of %d candidates answered", len(kept), len(written))
        return tuple(kept)


def nearest(
    checked: Sequence[Suggestion],
    position: dict[str, int],
    chunk_ids: Sequence[str],
    asked: str = "",
    n: int = SHOWN,
) -> tuple[str, ...]:
    """The n suggestions whose answers lie nearest these passages, never one that would repeat
    them or the question just asked; with no passages, one starter per document in turn."""
    if not chunk_ids:
        return starters(checked, n)
    here = [position[i] for i in chunk_ids if i in position]
    said = set(chunk_ids)
    asked = asked.strip().lower().rstrip("?")

    def distance(s: Suggestion) -> int:
        there = [position[i] for i in s.chunk_ids if i in position]
        return min((abs(a - b) for a in here for b in there), default=10**6)

    picked: list[Suggestion] = []
    for s in sorted(checked, key=distance):  # stable: ties keep document order
        if len(picked) == n:
            break
        if said & set(s.chunk_ids) or s.question.lower().rstrip("?") == asked:
            continue  # its answer would repeat this one
        if any(s.chunk_ids[:1] == p.chunk_ids[:1] for p in picked):
            continue  # two ways of asking for the same passage
        picked.append(s)
    return tuple(s.question for s in picked)


def starters(checked: Sequence[Suggestion], n: int = STARTERS) -> tuple[str, ...]:
    """Questions for an empty chat: "What is…" ones first, each document in turn."""
    picked: list[str] = []
    for kind in (True, False):
        by_doc: dict[str, list[Suggestion]] = {}
        for s in checked:
            if s.question.startswith("What ") == kind:
                by_doc.setdefault(s.doc_id, []).append(s)
        while len(picked) < n and any(by_doc.values()):
            for queue in by_doc.values():
                if queue and len(picked) < n:
                    picked.append(queue.pop(0).question)
    return tuple(picked)
