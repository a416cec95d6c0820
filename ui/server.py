"""Start-up and launch: bring the index up to date, warm up, serve the chat behind the guard."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.chain import Assistant
from assistant.retrieval import IndexMissingError
from corpus.embeddings import Embedder
from corpus.models import SentenceEncoder
from corpus.screening import Screen
from corpus.store import StoreError
from ingest.pipeline import TerminalProgress, ingest
from settings import Settings, offline
from ui.admin import AdminCheck
from ui.feedback import FeedbackLog
from ui.guard import Guard, allowed_hosts, is_loopback
from ui.services import EvalRuns, IndexAdmin

if TYPE_CHECKING:
    from ui.chat import ChatUI

STATIC = Path(__file__).resolve().parent / "static"
QUEUE_CONCURRENCY = 4  # chat answers computed at once (2 cores)
QUEUE_SIZE = 64  # requests waiting; more are turned away with "queue full"
# Libraries that log a line per request or DEBUG detail: the console keeps the app's own lines.
QUIET = ("bm25s", "httpx", "httpcore", "chromadb", "gradio", "urllib3", "uvicorn.access")
log = logging.getLogger("app")


class StartError(Exception):
    """The app can't start; the message says why."""


def quiet_logs() -> None:
    """Keep the console to the app's own INFO lines and the URL."""
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


def start(settings: Settings, embedder: Embedder, screen: Screen) -> str:
    """Bring the index up to date; '' or, when that can't be done, why (the old index serves)."""
    try:
        with TerminalProgress() as progress:
            report = ingest(
                settings, embedder=embedder, screen=screen, progress=progress, log=progress.write
            )
    except (StoreError, OSError) as exc:  # read-only or full disk: serve what is there
        log.warning("serving the index as it was: %s", exc)
        return f"the index could not be brought up to date ({str(exc).splitlines()[0]})."
    log.info(
        "index: %d chunks (%d added, %d updated, %d removed)",
        report.chunks_total,
        report.added,
        report.updated,
        report.removed,
    )
    return ""


def warmed(
    settings: Settings, embedder: Embedder, encoder: SentenceEncoder, degraded: str, scratch: str
) -> tuple[Assistant, str]:
    """A warmed-up assistant, over a copy of the index when it can't be opened in place."""
    assistant = Assistant(settings, embedder=embedder, encoder=encoder)
    try:
        assistant.warm_up()
        return assistant, degraded
    except IndexMissingError as exc:
        raise StartError(str(exc)) from exc
    except StoreError as exc:
        if not degraded or not (settings.index_dir / "chroma").is_dir():
            raise StartError(str(exc)) from exc
        # Chroma opens its files for writing even to read: serve a copy of a read-only index
        copy = Path(scratch, "index")
        shutil.copytree(settings.index_dir, copy, ignore=shutil.ignore_patterns("feedback.jsonl"))
        log.warning("the index can't be opened in place (%s): serving a copy", exc)
        degraded += " The index folder is read-only, so a copy of it is served."
    assistant = Assistant(settings.replace(index_dir=copy), embedder=embedder, encoder=encoder)
    try:
        assistant.warm_up()
    except (IndexMissingError, StoreError) as again:
        raise StartError(str(again)) from again
    return assistant, degraded


def chat_ui(
    settings: Settings,
    assistant: Assistant,
    embedder: Embedder,
    screen: Screen | None = None,
    *,
    degraded: str = "",
) -> ChatUI:
    """The chat over this assistant, with its services: index admin, evals, feedback, admin."""
    from ui.chat import ChatUI  # imports gradio: after offline()

    return ChatUI(
        assistant,
        IndexAdmin(settings, assistant, embedder, screen),
        EvalRuns(assistant.settings),
        FeedbackLog(settings.index_dir / "feedback.jsonl"),
        AdminCheck(settings.admin_password.get_secret_value(), loopback=is_loopback(settings.host)),
        degraded=degraded,
    )


def serve(settings: Settings) -> None:
    """Ingest (with progress on the terminal), warm up, then serve until stopped."""
    started = time.perf_counter()
    offline()
    quiet_logs()
    if not settings.corpus_dir.is_dir():
        raise StartError(f"corpus folder not found: {settings.corpus_dir}")
    # Gradio's files go to a folder of this run's own, removed at exit; uploads are closed anyway.
    scratch = tempfile.mkdtemp(prefix="rag-gradio-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a stop, like Ctrl-C: atexit runs
    os.environ["GRADIO_TEMP_DIR"] = scratch
    embedder = Embedder.from_settings(settings)
    encoder = SentenceEncoder()  # one bge-small for triage, intents and the ingest screen
    screen = Screen(encoder)
    degraded = start(settings, embedder, screen)
    assistant, degraded = warmed(settings, embedder, encoder, degraded, scratch)
    assistant.check_suggestions()  # once per index generation, then cached beside the index

    import gradio as gr  # after offline(): no analytics, no downloads
    from starlette.middleware import Middleware

    quiet_logs()  # gradio sets its loggers up on import
    demo = chat_ui(settings, assistant, embedder, screen, degraded=degraded).build()
    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )  # system fonts: the page loads nothing from outside this machine
    demo.queue(default_concurrency_limit=QUEUE_CONCURRENCY, max_size=QUEUE_SIZE)
    guard = Middleware(Guard, hosts=allowed_hosts(settings), origins=settings.listed_hosts())
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        theme=theme,
        css=(STATIC / "app.css").read_text(encoding="utf-8"),
        js=(STATIC / "app.js").read_text(encoding="utf-8"),
        footer_links=["api"],
        prevent_thread_lock=True,
        quiet=True,
        max_file_size="1kb",
        app_kwargs={"middleware": [guard]},
    )
    log.info(
        "ready in %.1f s: http://%s:%s", time.perf_counter() - started, settings.host, settings.port
    )
    demo.block_thread()
