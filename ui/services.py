"""The services the chat's handlers call: the index's admin side, and eval runs.

The UI never imports `evals`: an eval run is `python -m evals` in a child process, read back from
its report.json.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.chain import Assistant
from corpus.embeddings import Embedder
from corpus.records import DocumentEntry, Flagged
from corpus.screening import Screen
from corpus.store import StoreError
from ingest.pipeline import IngestReport, ingest
from settings import PROJECT, Settings

log = logging.getLogger(__name__)

EVAL_TIMEOUT = 900.0  # seconds an eval run from the Index panel may take


class IndexUnreadable(Exception):
    """The index's files are gone or broken; a re-ingest rebuilds them."""


@dataclass(frozen=True)
class IndexView:
    """What the curator sees of the index."""

    documents: tuple[DocumentEntry, ...]
    flagged: tuple[Flagged, ...]
    unreviewed: tuple[DocumentEntry, ...]
    model: str  # the embedding model's folder, its last two parts
    last_ingest: str


class IndexAdmin:
    """The index as the curator works on it: look, re-ingest, mark reviewed."""

    def __init__(
        self,
        settings: Settings,
        assistant: Assistant,
        embedder: Embedder,
        screen: Screen | None = None,
    ) -> None:
        self.settings, self.assistant, self.embedder, self.screen = (
            settings,
            assistant,
            embedder,
            screen,
        )

    def view(self) -> IndexView:
        """Documents, flagged sentences and what is new since the last review; IndexUnreadable
        when the index can't be read (it is reopened for the next question)."""
        store = self.assistant.store
        try:
            if not store.readable():
                raise StoreError("its files are gone")
            docs = tuple(sorted(store.documents().values(), key=lambda d: d.source))
            view = IndexView(
                docs,
                tuple(store.flagged()),
                tuple(store.unreviewed()),
                "/".join(self.embedder.model_path.rstrip("/").split("/")[-2:]),
                store.last_ingest() or "",
            )
        except Exception as exc:
            self.assistant.reopen()
            raise IndexUnreadable(str(exc).splitlines()[0] if str(exc) else repr(exc)) from exc
        return view

    def titles(self) -> list[str]:
        """The titles of the indexed documents (what any visitor may see); [] if unreadable."""
        try:
            return sorted({d.title for d in self.assistant.store.documents().values()})
        except Exception:  # noqa: BLE001 - an unreadable index: the curator view says why
            return []

    def urls(self) -> dict[str, str]:
        """Each indexed document's original address, by source, where sources.toml gives one."""
        try:
            return {s: d.url for s, d in self.assistant.store.documents().items() if d.url}
        except Exception:  # noqa: BLE001 - cards then show titles without links
            return {}

    def reingest(self, progress: Callable[[int, int], None] | None = None) -> IngestReport:
        """Bring the index up to date with the corpus; the assistant reopens it afterwards."""
        try:
            return ingest(
                self.settings,
                embedder=self.embedder,
                screen=self.screen,
                progress=progress,
                log=lambda _: None,
            )
        finally:
            self.assistant.reopen()  # a rebuilt index is opened afresh by the next question

    def mark_reviewed(self) -> int:
        """Mark every live document reviewed; how many were new or changed."""
        return self.assistant.store.mark_reviewed()


class EvalRuns:
    """The held-out eval split, run by `python -m evals` in a child process."""

    def __init__(self, settings: Settings, timeout: float = EVAL_TIMEOUT) -> None:
        self.settings, self.timeout = settings, timeout

    def run(self) -> dict[str, Any]:
        """Run the test split against this index; its report (report.json), or RuntimeError."""
        with tempfile.TemporaryDirectory(prefix="rag-evals-") as folder:
            command = [
                sys.executable,
                "-m",
                "evals",
                "--split",
                "test",
                "--index",
                str(self.settings.index_dir),
                "--corpus",
                str(self.settings.corpus_dir),
                "--report",
                folder,
            ]
            try:
                done = subprocess.run(
                    command, cwd=PROJECT, capture_output=True, text=True, timeout=self.timeout
                )
            except subprocess.TimeoutExpired as exc:
                raise RuntimeError(f"the eval run took over {self.timeout:.0f} s") from exc
            report = Path(folder, "report.json")
            if done.returncode not in (0, 1) or not report.is_file():  # 1: a threshold missed
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                log.warning("eval run failed (exit %d): %s", done.returncode, last)
                raise RuntimeError(last)
            return json.loads(report.read_text(encoding="utf-8"))
