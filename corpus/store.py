"""The index: chunk and sentence vectors in Chroma, and the manifest of live versions beside them.

Crash safety rests on one rule: a document version's chunks are written first, the manifest
entry that makes them live is switched second (one SQLite transaction, `manifest.py`), and the
old version is deleted last. Readers only ever see versions named in the manifest, so a
half-written version is invisible and the next ingest deletes it.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import chromadb
import numpy as np

from corpus.manifest import FILE as MANIFEST_FILE
from corpus.manifest import Manifest
from corpus.records import Chunk, DocumentEntry, Flagged, Sentence
from settings import Settings

CHUNKS, SENTENCES = "chunks", "sentences"
LEGACY = ("documents", "state")  # where the manifest lived in Chroma before it had its own file
DATABASE = "chroma.sqlite3"
REVIEWED_FILE = "reviewed.json"  # the versions the curator has looked at (kept through rebuilds)
_BATCH = 1000
_COSINE = {"hnsw": {"space": "cosine", "ef_search": 200}}
REBUILT = "-rebuilt"  # a collection being rebuilt, until it takes its old name
# The index stamp (generation and last write) each folder's Chroma system in this process has
# seen (Chroma's own cache of systems is per process too): another process's writes, even an
# ingest killed before it published, show up as a different stamp.
_SEEN: dict[str, str] = {}


class StoreError(RuntimeError):
    """The index cannot be opened or read."""


def version_of(record_id: str) -> str:
    """Chunk and sentence ids are `{version}-c{n}` / `{version}-s{n}`."""
    return record_id.rsplit("-", 1)[0]


class Store:
    """A Chroma database holding one index; embedded on disk, or a `chroma run` server."""

    def __init__(self, client: Any, location: str, manifest: Manifest) -> None:
        self.client = client
        self.location = location
        self.manifest = manifest
        self._open_collections()

    @classmethod
    def open(cls, settings: Settings) -> Store:
        """Open (creating if needed) the index named by settings."""
        chroma_settings = chromadb.Settings(anonymized_telemetry=False)
        try:
            if settings.chroma_host:
                client = chromadb.HttpClient(
                    host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings
                )
                location = f"http://{settings.chroma_host}:{settings.chroma_port}"
            else:
                path = settings.index_dir / "chroma"
                path.mkdir(parents=True, exist_ok=True)
                if not (path / DATABASE).exists():
                    _forget_client(path)  # a deleted index: drop Chroma's cached handles to it
                client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
                location = str(path)
            settings.index_dir.mkdir(parents=True, exist_ok=True)
            manifest = Manifest(settings.index_dir / MANIFEST_FILE)
            return cls(client, location, manifest).current()
        except Exception as exc:  # chromadb raises many types; say where and why
            raise StoreError(f"cannot open the index at {settings.index_dir}: {exc}") from exc

    @classmethod
    def recreate(cls, settings: Settings) -> Store:
        """Delete an embedded index's files (even unreadable ones) and open it empty."""
        path = settings.index_dir / "chroma"
        shutil.rmtree(path, ignore_errors=True)
        (settings.index_dir / MANIFEST_FILE).unlink(missing_ok=True)
        _forget_client(path)
        return cls.open(settings)

    def current(self) -> Store:
        """This store, or a new one when another process has changed the index since this
        process last read it.

        Chroma keeps one system per folder in a process, holding the vector index in memory;
        after a `python -m ingest` in another process it serves ids that no longer exist
        ("Error finding id"). A fresh system is then read from the files: clients made from
        now on use it, and queries already running finish on the old one.
        """
        if self.location.startswith("http"):
            return self
        seen = self.manifest.stamp()
        if _SEEN.setdefault(self.location, seen) == seen:
            return self
        _reload_system(self.location)
        _SEEN[self.location] = seen
        return Store(
            chromadb.PersistentClient(
                path=self.location, settings=chromadb.Settings(anonymized_telemetry=False)
            ),
            self.location,
            self.manifest,
        )

    def readable(self) -> bool:
        """Is the index still there? (An embedded index's files can be deleted under us.)"""
        if not self.manifest.path.is_file():
            return False
        return self.location.startswith("http") or Path(self.location, DATABASE).is_file()

    def _open_collections(self) -> None:
        names = {c.name if hasattr(c, "name") else str(c) for c in self.client.list_collections()}
        for name in (CHUNKS, SENTENCES):  # a rebuild killed between its delete and its rename
            if name not in names and f"{name}{REBUILT}" in names:
                self.client.get_collection(f"{name}{REBUILT}").modify(name=name)
        get = self.client.get_or_create_collection
        self.chunks = get(CHUNKS, embedding_function=None, configuration=_COSINE)
        self.sentences = get(SENTENCES, embedding_function=None, configuration=_COSINE)

    # -- integrity: every stored vector must be found by vector search ---------------------

    def unreachable(self, name: str, sample: int | None = None, k: int = 10) -> list[str]:
        """Ids of the collection `name` that a search for their own stored vector does not
        find (an HNSW index damaged by a crash), over all records or a random sample."""
        collection = self._collection(name)
        ids = collection.get(include=[])["ids"]
        k = min(k, len(ids))
        if sample is not None and len(ids) > sample:
            ids = random.Random(len(ids)).sample(ids, sample)
        lost = []
        for i in range(0, len(ids), 100):
            part = ids[i : i + 100]
            got = collection.get(ids=part, include=["embeddings"])
            vectors = dict(zip(got["ids"], got["embeddings"], strict=True))
            found = collection.query(
                query_embeddings=[vectors[x] for x in part],
                n_results=k,
                include=[],
            )["ids"]
            lost += [x for x, hits in zip(part, found, strict=True) if x not in hits]
        return lost

    def rebuild_vectors(self, name: str) -> int:
        """Rebuild a collection's vector index from its stored vectors (nothing re-embedded):
        the records are copied into a new collection, which then takes the old one's name."""
        old = self._collection(name)
        got = old.get(include=["embeddings", "documents", "metadatas"])
        spare = f"{name}{REBUILT}"
        with contextlib.suppress(Exception):  # a spare left by an earlier, killed rebuild
            self.client.delete_collection(spare)
        new = self.client.create_collection(spare, embedding_function=None, configuration=_COSINE)
        for i in range(0, len(got["ids"]), _BATCH):
            new.add(
                ids=got["ids"][i : i + _BATCH],
                embeddings=got["embeddings"][i : i + _BATCH],
                documents=got["documents"][i : i + _BATCH],
                metadatas=got["metadatas"][i : i + _BATCH],
            )
        self._touch()
        self.client.delete_collection(name)
        new.modify(name=name)
        self._open_collections()
        return len(got["ids"])

    def _collection(self, name: str) -> Any:
        return {CHUNKS: self.chunks, SENTENCES: self.sentences}[name]

    def reset(self) -> None:
        """Drop everything in this index."""
        self.manifest.clear()
        for name in (CHUNKS, SENTENCES, *LEGACY):
            with contextlib.suppress(Exception):  # absent already
                self.client.delete_collection(name)
        self._open_collections()

    # -- the manifest (manifest.py) -------------------------------------------------------

    def documents(self) -> dict[str, DocumentEntry]:
        """The live version of every indexed source, by source path."""
        return self.manifest.documents()

    def generation(self) -> str:
        """A token that changes whenever the set of live versions changes."""
        return self.manifest.get("generation")[0]

    def last_ingest(self) -> str:
        """When the live set last changed (ISO time), or '' for a new index."""
        return self.manifest.get("generation")[1]

    def profile(self) -> str:
        """How this index was built (embedding space, sentences or search-only), or ''."""
        return self.manifest.get("profile")[0]

    def set_profile(self, profile: str) -> None:
        """Record how this index is built; ingest checks it before reusing any vector."""
        self.manifest.set("profile", profile)

    def begin_ingest(self) -> bool:
        """Mark an ingest as running; True when the last one never finished (it was killed)."""
        unfinished = self.manifest.get("ingest")[0] == "running"
        self.manifest.set("ingest", "running")
        return unfinished

    def end_ingest(self) -> None:
        """Mark the running ingest as finished."""
        self.manifest.set("ingest", "done")

    def unreviewed(self) -> list[DocumentEntry]:
        """Live documents added or changed since the curator last marked the index reviewed."""
        seen = set(self._reviewed())
        return sorted(
            (e for e in self.documents().values() if e.version not in seen), key=lambda e: e.source
        )

    def mark_reviewed(self) -> int:
        """Record every live version as reviewed by the curator; how many were new."""
        fresh = len(self.unreviewed())
        versions = sorted(e.version for e in self.documents().values())
        path = self.manifest.path.with_name(REVIEWED_FILE)
        path.with_suffix(".tmp").write_text(json.dumps({"versions": versions}), "utf-8")
        path.with_suffix(".tmp").replace(path)
        return fresh

    def _reviewed(self) -> list[str]:
        path = self.manifest.path.with_name(REVIEWED_FILE)
        try:
            return list(json.loads(path.read_text("utf-8"))["versions"])
        except (OSError, ValueError, KeyError, TypeError):
            return []  # never reviewed (or unreadable): every document is new to the curator

    def publish(self, entries: Sequence[DocumentEntry]) -> None:
        """Make these versions live (their chunks must already be written)."""
        self.manifest.publish(entries)
        _SEEN[self.location] = self.manifest.stamp()  # made through this process: it is current

    def unpublish(self, sources: Sequence[str]) -> None:
        """Take these sources out of the live set."""
        self.manifest.unpublish(sources)
        _SEEN[self.location] = self.manifest.stamp()

    def _touch(self) -> None:
        """Mark a write before making it, so a reader elsewhere knows its view is old."""
        self.manifest.touch()
        _SEEN[self.location] = self.manifest.stamp()

    # -- chunks and sentences ---------------------------------------------------------------

    def write(
        self,
        chunks: Sequence[Chunk],
        chunk_vectors: np.ndarray,
        sentences: Sequence[Sentence],
        sentence_vectors: np.ndarray,
    ) -> None:
        """Add one or more document versions' chunks and sentences (not yet live)."""
        self._touch()
        _upsert(self.chunks, [(c.id, c.text, _chunk_meta(c)) for c in chunks], chunk_vectors)
        sentence_rows = [
            (
                s.id,
                s.text,
                {
                    "version": version_of(s.id),
                    "start": s.start,
                    "end": s.end,
                    "content_hash": s.content_hash,
                    "flagged": s.flagged,
                },
            )
            for s in sentences
        ]
        _upsert(self.sentences, sentence_rows, sentence_vectors)

    def delete_versions(self, versions: Iterable[str]) -> None:
        """Delete every chunk and sentence of these document versions."""
        self._touch()
        for version in set(versions):
            self.chunks.delete(where={"version": version})
            self.sentences.delete(where={"version": version})

    def stored_versions(self) -> set[str]:
        """Every document version with any chunk or sentence in the store, live or not."""
        found: set[str] = set()
        for collection in (self.chunks, self.sentences):
            found.update(version_of(i) for i in collection.get(include=[])["ids"])
        return found

    def vectors_by_hash(self, hashes: Iterable[str], *, sentences: bool) -> dict[str, np.ndarray]:
        """Embeddings already stored for these content hashes (so nothing is embedded twice)."""
        collection = self.sentences if sentences else self.chunks
        wanted = sorted(set(hashes))
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(wanted), 500):
            got = collection.get(
                where={"content_hash": {"$in": wanted[i : i + 500]}},
                include=["metadatas", "embeddings"],
            )
            for meta, vector in zip(got["metadatas"] or [], got["embeddings"], strict=True):
                found[str(meta["content_hash"])] = np.asarray(vector, dtype=np.float32)
        return found

    def live_chunks(self) -> list[Chunk]:
        """All chunks of live versions."""
        entries = {e.version: e for e in self.documents().values()}
        got = self.chunks.get(include=["documents", "metadatas"])
        chunks = []
        for chunk_id, text, meta in zip(
            got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True
        ):
            entry = entries.get(str(meta["version"]))
            if entry is not None:
                chunks.append(_chunk_from(chunk_id, text, meta, entry))
        chunks.sort(key=lambda c: (c.source, c.start))
        return chunks

    def flagged(self) -> list[Flagged]:
        """Sentences of live documents flagged at ingest, by file and position."""
        sources = {e.version: e.source for e in self.documents().values()}
        got = self.sentences.get(where={"flagged": True}, include=["documents", "metadatas"])
        found = [
            (sources[str(meta["version"])], int(meta["start"]), text)
            for text, meta in zip(got["documents"] or [], got["metadatas"] or [], strict=True)
            if str(meta["version"]) in sources
        ]
        return [Flagged(source, text) for source, _, text in sorted(found)]

    def search(self, vector: Sequence[float], k: int) -> list[tuple[str, float]]:
        """Nearest chunks to a query vector: (chunk id, cosine similarity), best first."""
        count = self.chunks.count()
        if count == 0:
            return []
        got = self.chunks.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=min(k, count),
            include=["distances"],
        )
        return [
            (i, 1.0 - float(d)) for i, d in zip(got["ids"][0], got["distances"][0], strict=True)
        ]

    def chunk_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored embeddings of these chunks, by id."""
        return _vectors(self.chunks, ids)

    def sentence_records(self, ids: Sequence[str]) -> list[Sentence]:
        """Stored sentences, in the order asked."""
        return [s for s, _ in self._sentences(ids, vectors=False)]

    def sentences_with_vectors(self, ids: Sequence[str]) -> list[tuple[Sentence, np.ndarray]]:
        """Stored sentences with their embeddings, in the order asked."""
        return [(s, v) for s, v in self._sentences(ids, vectors=True) if v is not None]

    def _sentences(
        self, ids: Sequence[str], *, vectors: bool
    ) -> list[tuple[Sentence, np.ndarray | None]]:
        if not ids:
            return []
        include = (
            ["documents", "metadatas", "embeddings"] if vectors else ["documents", "metadatas"]
        )
        got = self.sentences.get(ids=list(ids), include=include)
        found = {}
        for n, i in enumerate(got["ids"]):
            meta = got["metadatas"][n]
            sentence = Sentence(
                id=i,
                text=got["documents"][n],
                start=int(meta["start"]),
                end=int(meta["end"]),
                content_hash=str(meta["content_hash"]),
                flagged=bool(meta.get("flagged", False)),
            )
            vector = np.asarray(got["embeddings"][n], dtype=np.float32) if vectors else None
            found[i] = (sentence, vector)
        return [found[i] for i in ids if i in found]


def _reload_system(location: str) -> None:
    """Replace Chroma's cached system for this folder with one read afresh from the files.

    The old system is not stopped: clients made before keep working on it until they are
    dropped (stopping it would break a query in flight).
    """
    from chromadb.api import ServerAPI
    from chromadb.api.shared_system_client import SharedSystemClient
    from chromadb.config import System
    from chromadb.telemetry.product import ProductTelemetryClient

    old = SharedSystemClient._identifier_to_system.get(location)
    if old is None:
        return  # nothing cached: the next client reads the files anyway
    system = System(old.settings)
    system.instance(ProductTelemetryClient)
    system.instance(ServerAPI)
    system.start()
    SharedSystemClient._identifier_to_system[location] = system


def _forget_client(path: Path) -> None:
    """Chroma caches one client system per folder; a deleted folder's must not be reused."""
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient._identifier_to_system.pop(str(path), None)
    SharedSystemClient._identifier_to_refcount.pop(str(path), None)


def _upsert(
    collection: Any, rows: Sequence[tuple[str, str, dict[str, Any]]], vectors: np.ndarray
) -> None:
    for i in range(0, len(rows), _BATCH):
        part = rows[i : i + _BATCH]
        collection.upsert(
            ids=[r[0] for r in part],
            embeddings=vectors[i : i + _BATCH],
            documents=[r[1] for r in part],
            metadatas=[r[2] for r in part],
        )


def _vectors(collection: Any, ids: Sequence[str]) -> dict[str, np.ndarray]:
    if not ids:
        return {}
    got = collection.get(ids=list(ids), include=["embeddings"])
    return {
        i: np.asarray(v, dtype=np.float32)
        for i, v in zip(got["ids"], got["embeddings"], strict=True)
    }


def _chunk_meta(chunk: Chunk) -> dict[str, str | int]:
    return {
        "version": chunk.version,
        "section": chunk.section or "",
        "start": chunk.start,
        "end": chunk.end,
        "content_hash": chunk.content_hash,
        "sentence_ids": ",".join(chunk.sentence_ids),
        "withheld": json.dumps(chunk.withheld) if chunk.withheld else "",
    }


def _chunk_from(chunk_id: str, text: str, meta: dict[str, Any], entry: DocumentEntry) -> Chunk:
    return Chunk(
        id=chunk_id,
        doc_id=entry.doc_id,
        source=entry.source,
        title=entry.title,
        kind=entry.kind,
        section=str(meta["section"]) or None,
        text=text,
        start=int(meta["start"]),
        end=int(meta["end"]),
        content_hash=str(meta["content_hash"]),
        version=str(meta["version"]),
        sentence_ids=tuple(s for s in str(meta["sentence_ids"]).split(",") if s),
        withheld=tuple(json.loads(str(meta["withheld"]))) if meta.get("withheld") else (),
    )
