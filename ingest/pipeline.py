"""Diff the corpus against the index, embed only what changed, publish, report."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from corpus.embeddings import Embedder
from corpus.records import Chunk, DocumentEntry, Flagged, Sentence
from corpus.screening import SCREEN_FILE, Screen
from corpus.store import CHUNKS, SENTENCES, Store, StoreError
from ingest.chunking import MAX_CHARS, chunk_document
from ingest.loaders import LoadError, check_size, load
from settings import Settings

logger = logging.getLogger("ingest")

PIPELINE_VERSION = f"7:{MAX_CHARS}"  # change it and every document is re-chunked
METADATA_FILE = "sources.toml"
HIDDEN = "hidden: the name starts with '.' (rename it to ingest it)"
REACH_SAMPLE = 500  # records per collection checked for reachability after an ingest
_WRITE_BATCH = 256  # texts embedded before a group of documents is written and published

Progress = Callable[[int, int], None]


class CorpusError(Exception):
    """The corpus folder itself is unusable (a usage error: exit 2)."""


@dataclass(frozen=True)
class Skipped:
    """A file that was not ingested, and why."""

    source: str
    reason: str


@dataclass(frozen=True)
class IngestReport:
    """What one ingest run did; counts of documents, then of chunks."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks_embedded: int = 0
    chunks_total: int = 0
    skipped: tuple[Skipped, ...] = ()
    seconds: float = 0.0
    flagged: tuple[Flagged, ...] = ()  # sentences of new versions read as instructions

    def to_json(self) -> dict[str, object]:
        """The `python -m ingest --json` contract (flagged sentences go to stderr, not here)."""
        data = asdict(self)
        del data["flagged"]
        data["skipped"] = [asdict(s) for s in self.skipped]
        data["seconds"] = round(self.seconds, 3)
        return data


@dataclass(frozen=True)
class _Plan:
    entry: DocumentEntry
    chunks: list[Chunk]
    sentences: list[Sentence]
    old_version: str | None = None


class TerminalProgress:
    """Ingest's progress on stderr; closes on leaving the `with`.

    On a terminal it is one tqdm bar, and messages (`write`) print above it; in a log (not a
    terminal) it is a plain line at each quarter, so nothing is overwritten or glued together.
    """

    def __init__(self) -> None:
        self.bar: Any = None
        self.tty = sys.stderr.isatty()
        self._quarter = -1

    def __call__(self, done: int, total: int) -> None:
        if not total:
            return
        if not self.tty:
            quarter = 4 * done // total
            if quarter != self._quarter:
                self._quarter = quarter
                logger.info("embedding: %d/%d texts", done, total)
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="embedding", unit="text", file=sys.stderr)
        self.bar.update(done - self.bar.n)

    def write(self, message: str) -> None:
        """A message that does not collide with the bar."""
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            logger.info("%s", message)

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@contextmanager
def index_lock(index_dir: Path, log: Callable[[str], None]) -> Iterator[None]:
    """One ingest at a time per index: a second one waits for the first to finish."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".ingest.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"another ingest is running on {index_dir}; waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def scan(corpus_dir: Path) -> tuple[dict[str, Path], list[Skipped]]:
    """Candidate files by source path (relative, '/'-separated), and files refused up front."""
    files: dict[str, Path] = {}
    skipped: list[Skipped] = []
    root = corpus_dir.resolve()
    for folder, dirs, names in os.walk(corpus_dir, followlinks=False):
        for name in sorted(d for d in dirs if d.startswith(".")):
            dirs.remove(name)
            skipped.append(
                Skipped(Path(folder, name).relative_to(corpus_dir).as_posix() + "/", HIDDEN)
            )
        dirs.sort()
        for name in [d for d in dirs if Path(folder, d).is_symlink()]:
            dirs.remove(name)  # never walked into: it could lead anywhere on the machine
            names.append(name)
        for name in sorted(names):
            path = Path(folder, name)
            source = path.relative_to(corpus_dir).as_posix()
            if source == METADATA_FILE:
                continue
            if name.startswith("."):
                skipped.append(Skipped(source, HIDDEN))
                continue
            if path.is_symlink():
                skipped.append(Skipped(source, _link_reason(path, root)))
                continue
            if not path.is_file():
                skipped.append(Skipped(source, "not a regular file"))
                continue
            files[source] = path
    return files, skipped


def _link_reason(path: Path, root: Path) -> str:
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):  # dangling, or a loop
        return "broken or looping symbolic link (not followed)"
    what = "folder" if target.is_dir() else "file"
    where = "inside" if target.is_relative_to(root) else "outside"
    return f"symbolic link to a {what} {where} the corpus (not followed)"


def read_metadata(corpus_dir: Path) -> tuple[dict[str, dict[str, str]], list[Skipped]]:
    """Per-document title and kind from sources.toml; a broken file is reported, not fatal."""
    path = corpus_dir / METADATA_FILE
    if not path.is_file():
        return {}, []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return {}, [Skipped(METADATA_FILE, f"invalid TOML, metadata ignored ({exc})")]
    return {
        k: {kk: str(vv) for kk, vv in v.items()} for k, v in data.items() if isinstance(v, dict)
    }, []


def web_address(url: str) -> str:
    """A document's original address from sources.toml: kept only when it is http(s)."""
    parts = urlsplit(url.strip())
    return url.strip() if parts.scheme in ("http", "https") and parts.netloc else ""


def index_profile(embedder: Embedder, *, search_only: bool) -> str:
    """What an index's vectors mean: the embedding space, and whether sentences are embedded."""
    return f"{embedder.space}|{'search-only' if search_only else 'sentences'}"


def _version(source: str, data: bytes, meta: dict[str, str], screen: str) -> str:
    """A document version: its bytes, metadata, the pipeline and the screen that flags it."""
    h = hashlib.sha256(
        f"{PIPELINE_VERSION}\0{screen}\0{source}\0{json.dumps(meta, sort_keys=True)}\0".encode()
    )
    h.update(data)
    return h.hexdigest()[:20]


def ingest(
    settings: Settings,
    *,
    rebuild: bool = False,
    embedder: Embedder | None = None,
    store: Store | None = None,
    screen: Screen | None = None,
    log: Callable[[str], None] = logger.info,
    progress: Progress | None = None,
) -> IngestReport:
    """Bring the index in line with the corpus folder, embedding only new text."""
    started = time.perf_counter()
    corpus_dir = settings.corpus_dir
    if not corpus_dir.is_dir():
        raise CorpusError(f"corpus folder not found: {corpus_dir}")
    with index_lock(settings.index_dir, log):
        store = store or _open_or_recreate(settings, log)
        embedder = embedder or Embedder.from_settings(settings)
        profile = index_profile(embedder, search_only=settings.search_only)
        with _writing(store):
            if rebuild:
                log("rebuild: dropping the existing index")
                store.reset()
            elif store.profile() not in ("", profile):
                log(f"the index was built as {store.profile()}, now {profile}: rebuilding it")
                store.reset()
            store.set_profile(profile)
            unfinished = store.begin_ingest()
            live = store.documents()
            # versions an interrupted run left unpublished: their vectors are reused below,
            # and they are deleted once this run has published
            orphans = store.stored_versions() - {e.version for e in live.values()}
        # a refitted screen re-screens every document (its vectors are reused, not re-embedded)
        screen_digest = hashlib.sha256(SCREEN_FILE.read_bytes()).hexdigest()[:12]
        metadata, skipped = read_metadata(corpus_dir)
        files, refused = scan(corpus_dir)
        skipped += refused
        plans: list[_Plan] = []
        kept: set[str] = set()
        for source, path in files.items():
            meta = metadata.get(source, {})
            try:
                check_size(path)
                version = _version(source, path.read_bytes(), meta, screen_digest)
                old = live.get(source)
                if old is not None and old.version == version:
                    kept.add(source)
                    continue
                plans.append(_plan(path, source, meta, version, old))
            except LoadError as exc:
                skipped.append(Skipped(source, str(exc)))
                log(f"skipped {source}: {exc}")
            except OSError as exc:
                skipped.append(Skipped(source, f"unreadable file ({exc.strerror or exc})"))
                log(f"skipped {source}: unreadable ({exc})")
        gone = sorted(set(live) - kept - {p.entry.source for p in plans})
        if settings.search_only:
            plans = [replace(p, sentences=[]) for p in plans]
        _check_space(store, plans)
        if screen is None and any(p.sentences for p in plans):
            screen = Screen()
        embedded, flagged = _embed_and_publish(plans, store, embedder, screen, log, progress)
        if gone:
            with _writing(store):
                store.unpublish(gone)
                store.delete_versions(live[s].version for s in gone)
            for source in gone:
                log(f"removed {source}")
        final = store.documents()
        stale = orphans - {e.version for e in final.values()}
        if stale:
            log(f"repair: deleted {len(stale)} unpublished version(s) left by an interrupted run")
            with _writing(store):
                store.delete_versions(stale)
        if unfinished or embedded or gone or stale or rebuild:
            with _writing(store):
                _check_reachable(store, log, sample=None if unfinished else REACH_SAMPLE)
        store.end_ingest()
    return IngestReport(
        added=sum(p.old_version is None for p in plans),
        updated=sum(p.old_version is not None for p in plans),
        removed=len(gone),
        unchanged=len(kept),
        chunks_embedded=embedded,
        chunks_total=sum(e.chunks for e in final.values()),
        skipped=tuple(sorted(skipped, key=lambda s: s.source)),
        seconds=time.perf_counter() - started,
        flagged=tuple(flagged),
    )


def _check_reachable(store: Store, log: Callable[[str], None], sample: int | None) -> None:
    """Every live record must be found by a search for its own vector. Chroma's HNSW index can
    lose records to a crash during writes and deletes (rows and vectors still stored, but no
    search finds them); a collection with any such record has its vector index rebuilt from the
    stored vectors, and the repair is logged."""
    for name in (CHUNKS, SENTENCES):
        lost = store.unreachable(name, sample)
        if lost:
            count = store.rebuild_vectors(name)
            still = store.unreachable(name, sample)
            log(
                f"repair: {len(lost)} {name} were unreachable by vector search; rebuilt the "
                f"{name} index from its {count} stored vectors ({len(still)} unreachable after)"
            )


def _open_or_recreate(settings: Settings, log: Callable[[str], None]) -> Store:
    """Open the index; one whose files are unreadable is rebuilt (it is derived from the corpus)."""
    try:
        store = Store.open(settings)
        store.documents()
        return store
    except Exception as exc:
        if settings.chroma_host or not (settings.index_dir / "chroma").exists():
            raise StoreError(f"cannot open the index at {_location(settings)}: {exc}") from exc
        log(
            f"the index at {settings.index_dir} is unreadable ({exc}): rebuilding it from the corpus"
        )
        return Store.recreate(settings)


def _check_space(store: Store, plans: list[_Plan]) -> None:
    """Refuse before writing anything when the index's disk is clearly too small.

    Chroma needs free space even to read once its write log holds unapplied records, so a
    disk that fills up mid-ingest would take the old index down with it. The estimate is
    generous: each record's text three times (row, full-text index, log) and its vector three
    times (log, segment, HNSW), plus 1 MiB.
    """
    records = [r.text for p in plans for r in (*p.chunks, *p.sentences)]
    needed = sum(3 * len(t.encode()) + 3 * 384 * 4 for t in records) + 2**20
    free = _free_bytes(store.location)
    if free < needed:
        raise StoreError(
            f"not enough disk space for this ingest: about {needed / 2**20:.1f} MB needed, "
            f"{free / 2**20:.1f} MB free at {store.location}. Nothing was changed; the index "
            "still serves what it served before: free some space and ingest again"
        )


def _free_bytes(location: str) -> int:
    if location.startswith("http"):
        return 2**63
    try:
        return shutil.disk_usage(location).free
    except OSError:
        return 2**63


def _location(settings: Settings) -> str:
    """Where the index lives, for messages."""
    if settings.chroma_host:
        return f"http://{settings.chroma_host}:{settings.chroma_port}"
    return str(settings.index_dir)


def _plan(
    path: Path, source: str, meta: dict[str, str], version: str, old: DocumentEntry | None
) -> _Plan:
    doc = load(path)
    doc_id = path.stem
    title, chunks, sentences = chunk_document(
        doc,
        source=source,
        doc_id=doc_id,
        title=meta.get("title") or doc.title,
        kind=meta.get("kind", "document"),
        version=version,
    )
    if not chunks:
        raise LoadError("no text left after removing boilerplate")
    entry = DocumentEntry(
        source=source,
        doc_id=doc_id,
        title=title,
        kind=meta.get("kind", "document"),
        version=version,
        chunks=len(chunks),
        sentences=len(sentences),
        ingested_at=datetime.now(UTC).isoformat(timespec="seconds"),
        url=web_address(meta.get("url", "")),
    )
    return _Plan(entry, chunks, sentences, old.version if old else None)


def _embed_and_publish(
    plans: list[_Plan],
    store: Store,
    embedder: Embedder,
    screen: Screen | None,
    log: Callable[[str], None],
    progress: Progress | None,
) -> tuple[int, list[Flagged]]:
    """Screen, embed and write each new version batch by batch, then publish group by group.

    Returns (chunks embedded, sentences flagged). A version's rows are written as soon as their
    vectors exist, before it is live; a kill loses at most one batch of embedding, because the
    next run reuses stored vectors by content hash. Old versions are deleted after publishing.
    """
    if not plans:
        return 0, []
    known = {
        ("c", h): v
        for h, v in store.vectors_by_hash(
            (c.content_hash for p in plans for c in p.chunks), sentences=False
        ).items()
    }
    known.update(
        (("s", h), v)
        for h, v in store.vectors_by_hash(
            (s.content_hash for p in plans for s in p.sentences), sentences=True
        ).items()
    )
    seen: set[tuple[str, str]] = set(known)
    todo: list[tuple[_Plan, dict[tuple[str, str], str]]] = []
    for plan in plans:
        needed: dict[tuple[str, str], str] = {}
        for key, text in [(("c", c.content_hash), c.embedding_text()) for c in plan.chunks] + [
            (("s", x.content_hash), x.embedding_text()) for x in plan.sentences
        ]:
            if key not in seen:
                needed[key] = text
                seen.add(key)
        todo.append((plan, needed))
    total, done, chunks_embedded = sum(len(n) for _, n in todo), 0, 0
    flagged: list[Flagged] = []

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total)

    advance(0)
    ready: list[_Plan] = []  # written, waiting to be published together
    waiting = 0
    for i, (plan, needed) in enumerate(todo):
        plan = _screened(plan, screen)
        flagged += [Flagged(plan.entry.source, x.text) for x in plan.sentences if x.flagged]
        for x in plan.sentences:
            if x.flagged:
                log(f"flagged {plan.entry.source}: {x.text[:160]}")
        keys = list(needed)
        written: set[str] = set()
        for at in range(0, len(keys), _WRITE_BATCH):
            batch = keys[at : at + _WRITE_BATCH]
            vectors = embedder.encode([needed[k] for k in batch], progress=advance)
            known.update(zip(batch, vectors, strict=True))
            chunks_embedded += sum(k[0] == "c" for k in batch)
            with _writing(store):
                written |= _write_known(store, plan, known, written)
        with _writing(store):
            _write_known(store, plan, known, written)
        ready.append(plan)
        waiting += len(needed)
        if waiting >= _WRITE_BATCH or i == len(todo) - 1:
            with _writing(store):
                store.publish([p.entry for p in ready])
                store.delete_versions(p.old_version for p in ready if p.old_version)
            for p in ready:
                log(
                    f"{'updated' if p.old_version else 'added'} {p.entry.source} ({len(p.chunks)} chunks)"
                )
            ready, waiting = [], 0
    return chunks_embedded, flagged


def _matrix(vectors: list[np.ndarray]) -> np.ndarray:
    return np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, 1), np.float32)


def _screened(plan: _Plan, screen: Screen | None) -> _Plan:
    """The plan with each sentence that reads as an instruction to an assistant flagged."""
    if screen is None or not plan.sentences:
        return plan
    flags = screen.flags([x.text for x in plan.sentences])
    sentences = [replace(x, flagged=f) for x, f in zip(plan.sentences, flags, strict=True)]
    flagged = {x.id: x.text for x in sentences if x.flagged}
    chunks = [
        replace(c, withheld=tuple(flagged[i] for i in c.sentence_ids if i in flagged))
        for c in plan.chunks
    ]
    return replace(plan, chunks=chunks, sentences=sentences)


def _write_known(store: Store, plan: _Plan, known: dict, written: set[str]) -> set[str]:
    """Write the plan's rows whose vectors are known and that are not written yet; their ids."""
    chunks = [c for c in plan.chunks if c.id not in written and ("c", c.content_hash) in known]
    sentences = [
        x for x in plan.sentences if x.id not in written and ("s", x.content_hash) in known
    ]
    if chunks or sentences:
        store.write(
            chunks,
            _matrix([known[("c", c.content_hash)] for c in chunks]),
            sentences,
            _matrix([known[("s", x.content_hash)] for x in sentences]),
        )
    return {c.id for c in chunks} | {x.id for x in sentences}


@contextmanager
def _writing(store: Store) -> Iterator[None]:
    """Turn a failed write into one clear StoreError; the live versions are untouched by it.

    Chroma does not always say that the disk is full, so an embedded index's free space is
    checked too.
    """
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        text = str(exc)
        if (
            getattr(exc, "errno", None) == errno.ENOSPC
            or "full" in text.lower()
            or _free_bytes(store.location) < 2**20
        ):
            raise StoreError(
                f"the disk holding the index filled up while writing ({text}): free some space "
                "and ingest again (Chroma may not read the index until then)"
            ) from exc
        raise StoreError(f"writing the index failed ({text})") from exc
