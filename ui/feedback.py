"""Thumbs up and down on answers, kept for the curator."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class FeedbackLog:
    """Thumbs up and down on answers, one JSON line each, in the index folder for the curator.

    Bounded: each entry keeps at most ENTRY_CHARS of the question and of the answer and the
    first few citations' quotes; a client may leave at most RATE judgements a minute; and the
    file is rotated to `feedback.jsonl.1` (the one before is dropped) when it passes MAX_BYTES.
    """

    ENTRY_CHARS = 2000
    CITATIONS = 5
    RATE = 20  # per client per minute
    MAX_BYTES = 1_000_000

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._recent: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def add(self, liked: bool, answer: dict[str, Any], client: str = "") -> bool:
        """Append one judgement (question, answer, citations, capped); False when the client
        has left too many in the last minute and nothing was written."""
        now = self._clock()
        with self._lock:
            times = [t for t in self._recent.get(client, []) if now - t < 60]
            if len(times) >= self.RATE:
                return False
            self._recent[client] = [*times, now]
            if len(self._recent) > 10_000:
                self._recent = {k: v for k, v in self._recent.items() if now - v[-1] < 60}
            record = {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "liked": liked,
                "question": str(answer.get("question", ""))[: self.ENTRY_CHARS],
                "status": str(answer.get("status", ""))[:20],
                "answer": str(answer.get("answer", ""))[: self.ENTRY_CHARS],
                "citations": [
                    {
                        "source": str(c.get("source", ""))[:300],
                        "quote": str(c.get("quote", ""))[: self.ENTRY_CHARS // 4],
                    }
                    for c in list(answer.get("citations") or [])[: self.CITATIONS]
                    if isinstance(c, dict)
                ],
            }
            if self.path.is_file() and self.path.stat().st_size > self.MAX_BYTES:
                self.path.replace(self.path.with_name(self.path.name + ".1"))
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return True

    def read(self) -> list[dict[str, Any]]:
        """Every judgement in the current file, oldest first (unreadable lines are skipped)."""
        if not self.path.is_file():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records
