"""The index's manifest and state, in a small SQLite file beside the vectors.

The manifest names the live version of every source; the state holds the generation (changed
by every publish), the last write's token and the index profile. Each publish is one SQLite
transaction, so a reader sees the old live set or the new one, never half of it.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from corpus.records import DocumentEntry

FILE = "manifest.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    source TEXT PRIMARY KEY, doc_id TEXT NOT NULL, title TEXT NOT NULL, kind TEXT NOT NULL,
    version TEXT NOT NULL, chunks INTEGER NOT NULL, sentences INTEGER NOT NULL,
    ingested_at TEXT NOT NULL, url TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated TEXT);
"""
_COLUMNS = (
    "source", "doc_id", "title", "kind", "version", "chunks", "sentences", "ingested_at", "url"
)  # fmt: skip


class Manifest:
    """Which document versions are live, and the index's generation, write token and profile."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as db:
            db.executescript(_SCHEMA)
        self._read = _COLUMNS  # what documents() reads: without url on an old read-only index
        with self._connect() as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(documents)")}
            if "url" not in columns:  # an index built before documents had addresses
                try:
                    db.execute("ALTER TABLE documents ADD COLUMN url TEXT NOT NULL DEFAULT ''")
                except sqlite3.OperationalError:  # read-only: served as it is, without addresses
                    self._read = _COLUMNS[:-1]

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One connection per operation: safe across threads and processes; commits on success."""
        with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
            yield db

    def documents(self) -> dict[str, DocumentEntry]:
        """The live version of every indexed source, by source path."""
        with self._connect() as db:
            rows = db.execute(f"SELECT {', '.join(self._read)} FROM documents").fetchall()
        return {row[0]: DocumentEntry(*row) for row in rows}

    def publish(self, entries: Sequence[DocumentEntry]) -> None:
        """Make these versions live, all at once, and change the generation."""
        if not entries:
            return
        marks = ", ".join("?" * len(_COLUMNS))
        with self._connect() as db:
            db.executemany(
                f"INSERT OR REPLACE INTO documents ({', '.join(_COLUMNS)}) VALUES ({marks})",
                [tuple(asdict(e)[c] for c in _COLUMNS) for e in entries],
            )
            _bump(db)

    def unpublish(self, sources: Sequence[str]) -> None:
        """Take these sources out of the live set, and change the generation."""
        if not sources:
            return
        with self._connect() as db:
            db.executemany("DELETE FROM documents WHERE source = ?", [(s,) for s in sources])
            _bump(db)

    def get(self, key: str) -> tuple[str, str]:
        """A state entry's (value, updated time), or ('', '')."""
        with self._connect() as db:
            row = db.execute("SELECT value, updated FROM state WHERE key = ?", (key,)).fetchone()
        return (str(row[0]), str(row[1] or "")) if row else ("", "")

    def set(self, key: str, value: str) -> None:
        """Set a state entry."""
        with self._connect() as db:
            _set(db, key, value)

    def touch(self) -> None:
        """Record a new write token: another process reading this index knows its view is old."""
        self.set("written", uuid.uuid4().hex)

    def stamp(self) -> str:
        """The generation and the last write token: what another process's ingest changes."""
        return f"{self.get('generation')[0]}|{self.get('written')[0]}"

    def clear(self) -> None:
        """Forget every document and state entry."""
        with self._connect() as db:
            db.execute("DELETE FROM documents")
            db.execute("DELETE FROM state")


def _set(db: sqlite3.Connection, key: str, value: str) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    db.execute(
        "INSERT OR REPLACE INTO state (key, value, updated) VALUES (?, ?, ?)", (key, value, now)
    )


def _bump(db: sqlite3.Connection) -> None:
    _set(db, "generation", uuid.uuid4().hex)
