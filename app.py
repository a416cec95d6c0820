"""Gradio chat UI: python app.py [--host H] [--port P]. Ingests first if the index is stale.

Nothing imports this module; it wires the store, the assistant and ingest together.
"""

from __future__ import annotations

import argparse
import atexit
import hmac
import html
import ipaddress
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from assistant.chain import Assistant
from assistant.inputs import MAX_QUESTION_CHARS, normalise
from assistant.records import Answer
from assistant.render import answer_html, doc_text, document_html, streaming_html
from assistant.retrieval import IndexMissingError
from assistant.safety import DISCLAIMER
from corpus.embeddings import Embedder
from corpus.models import SentenceEncoder
from corpus.screening import Screen
from corpus.store import StoreError
from ingest.pipeline import CorpusError, IngestReport, TerminalProgress, ingest
from settings import Settings, SettingsError, offline

EXAMPLES = (
    "How much melatonin should I take?",
    "What are probiotics?",
    "Does melatonin help with IBS?",
    "What are the side effects of melatonin?",
)
STREAM_PAUSE = 0.06  # seconds between streamed sentences
WORKING = "<div class='reply reply-working'><p>Looking in the documents…</p></div>"
MAX_REQUEST_BYTES = 2 * 2**20  # a request body; history beyond the last few turns is never read
QUEUE_CONCURRENCY = 4  # chat answers computed at once (2 cores)
ASK_CONCURRENCY = 4  # /ask calls computed at once
QUEUE_SIZE = 64  # requests waiting; more are turned away with "queue full"
CLOSED_PATHS = (
    "/gradio_api/deep_link",
    "/gradio_api/upload",
    "/gradio_api/process_recording",
    "/gradio_api/stream/",
    "/gradio_api/run-history",
    "/gradio_api/vibe",
    "/gradio_api/undo-vibe",
)
log = logging.getLogger("app")
EVAL_QUESTIONS = Path(__file__).resolve().parent / "evals" / "questions.jsonl"
EVAL_THRESHOLDS = EVAL_QUESTIONS.with_name("thresholds.toml")

CSS = """
#intro h1 {font-size: 1.45rem; margin: 0}
#intro p {margin: 2px 0 0}
#disclaimer p {margin: 0; padding: 6px 10px; border-left: 4px solid #b45309; border-radius: 6px;
  background: #fffbeb; color: #78350f; font-size: 0.9em}
.dark #disclaimer p {background: #2b1d05; color: #fde68a; border-left-color: #f59e0b}
.degraded {padding: 6px 10px; border-radius: 6px; background: #fef3c7; color: #78350f}
.dark .degraded {background: #2b1d05; color: #fde68a}
#send {background: #c2410c; border-color: #c2410c; color: #ffffff}
#send:hover {background: #9a3412}
.reply ul.claims {margin: 0 0 4px; padding-left: 1.1em}
.reply a.ref {font-weight: 700; text-decoration: none; padding: 2px 3px; border-radius: 4px;
  display: inline-block; min-width: 24px; min-height: 24px; text-align: center}
.reply-working p {margin: 0; font-style: italic}
#examples button.example {border: 1px dashed var(--border-color-primary);
  background: transparent; color: var(--body-text-color)}
#new-chat {font-weight: 700}
button.back-to-answer {border: 1px solid var(--border-color-primary); border-radius: 999px;
  padding: 2px 10px; margin-bottom: 6px; background: var(--background-fill-secondary);
  color: var(--body-text-color); cursor: pointer}
.reply a.ref:hover {text-decoration: underline}
.reply a:focus-visible, .reply button:focus-visible {outline: 2px solid #2563eb; outline-offset: 1px}
.reply .said {white-space: pre-line; margin: 0}
.reply-urgent {border: 2px solid #dc2626; background: #fef2f2; color: #7f1d1d; border-radius: 8px;
  padding: 8px 10px}
.reply-urgent a {color: #991b1b; font-weight: 700; text-decoration: underline}
.dark .reply-urgent {background: #450a0a; color: #fee2e2; border-color: #f87171}
.dark .reply-urgent a {color: #fee2e2}
details.sources {margin: 6px 0 2px}
details.sources summary {cursor: pointer; font-weight: 600}
.doc-title {font-weight: 600; margin-top: 6px}
.src {border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px 10px;
  margin: 6px 0}
.src.flash {outline: 3px solid #2563eb}
.src-head {font-weight: 600; font-size: 0.9em}
.src-meta {font-size: 0.85em; font-weight: normal}
.src-passage {white-space: pre-wrap; margin: 4px 0; font-size: 0.92em}
.src-passage mark, #document mark {background: #fde68a; color: #1c1917; padding: 0 2px}
.dark .src-passage mark, .dark #document mark {background: #854d0e; color: #fefce8}
del.withheld {opacity: 0.85}
.ctl {font-family: monospace; font-size: 0.8em; color: #b91c1c}
.dark .ctl {color: #fca5a5}
.reply button.suggest, .reply button.open-doc, .reply button.copy-text {cursor: pointer;
  border: 1px solid var(--border-color-primary); border-radius: 999px; padding: 2px 10px;
  margin: 3px 4px 0 0; background: var(--background-fill-secondary);
  color: var(--body-text-color); font-size: 0.88em; text-align: left}
.next {margin-top: 6px}
.plain {display: none}
.disclaimer-line {margin: 6px 0 0; font-size: 0.85em}
#announce {position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0)}
#chat button[aria-label="Clear"] {display: none}
#index-info table {border-collapse: collapse; margin: 6px 0}
#index-info td, #index-info th {border: 1px solid var(--border-color-primary); padding: 3px 6px}
#document {max-height: 60vh; overflow-y: auto}
@media (max-width: 640px) {
  #intro h1 {font-size: 1.1rem}
  #intro p {display: none}
  #disclaimer p {font-size: 0.75em; padding: 3px 8px}
  #examples button.example {font-size: 0.8em}
  .reply button.suggest, .reply button.open-doc, .reply button.copy-text {min-height: 32px}
  #chat button[aria-label="Like"], #chat button[aria-label="Dislike"] {min-width: 32px;
    min-height: 32px}
}
"""

# Clicks inside answers: a citation opens its source card, a suggested question is sent, "Copy
# answer" copies clean text, "Open the document" asks the server for the whole document.
JS = """
() => {
  const live = document.getElementById('announce');
  if (live) { live.setAttribute('aria-live', 'polite'); live.setAttribute('role', 'status'); }
  const showSource = (id) => {
    let card = document.getElementById(id);
    if (!card) return;
    if (card.classList.contains('anchor')) card = card.closest('.src');
    const details = card.closest('details');
    if (details) details.open = true;
    card.scrollIntoView({block: 'nearest'});
    card.focus({preventScroll: true});
    card.classList.add('flash');
    setTimeout(() => card.classList.remove('flash'), 1800);
  };
  const send = (text) => {
    const box = document.querySelector('#question textarea');
    box.value = text;
    box.dispatchEvent(new Event('input', {bubbles: true}));
    setTimeout(() => document.querySelector('#send').click(), 60);
  };
  const copy = (text, button) => {
    const done = () => { button.textContent = 'Copied'; setTimeout(() => button.textContent = 'Copy answer', 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
    } else {
      const area = document.createElement('textarea');
      area.value = text; document.body.appendChild(area); area.select();
      document.execCommand('copy'); area.remove(); done();
    }
  };
  document.addEventListener('focusin', (event) => {  // a citation reached by keyboard
    const ref = event.target.closest && event.target.closest('.reply a.ref');
    if (!ref) return;
    const card = document.getElementById(ref.getAttribute('href').slice(1));
    const details = card && card.closest('details');
    if (details) details.open = true;
  });
  document.addEventListener('click', (event) => {
    const ref = event.target.closest('.reply a.ref');
    if (ref) { event.preventDefault(); showSource(ref.getAttribute('href').slice(1)); return; }
    const next = event.target.closest('.reply button.suggest');
    if (next) { send(next.textContent); return; }
    const copier = event.target.closest('.reply button.copy-text');
    if (copier) { copy(copier.closest('.reply').querySelector('.plain').textContent, copier); return; }
    const back = event.target.closest('button.back-to-answer');
    if (back && window.lastOpener) {
      window.lastOpener.scrollIntoView({block: 'center'}); window.lastOpener.focus(); return;
    }
    const opener = event.target.closest('.reply button.open-doc');
    if (opener) {
      window.lastOpener = opener;
      const box = document.querySelector('#open-doc textarea');
      box.value = opener.id.replace(/^a[0-9]+-doc-/, '') + '|' + Date.now();
      box.dispatchEvent(new Event('input', {bubbles: true}));
    }
  });
}
"""
SCROLL_TO_DOCUMENT = (
    "() => { const t = document.getElementById('doc-target');"
    " if (t) { t.setAttribute('tabindex', '-1'); t.scrollIntoView({block: 'center'});"
    " t.focus({preventScroll: true}); } }"
)


def is_loopback(host: str) -> bool:
    """Is this bind address reachable only from this machine?"""
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """An HTML table; every cell is already escaped HTML."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table class='index-table'><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def render_index(assistant: Assistant, model_path: str) -> str:
    """The Index panel's summary (HTML): documents, chunks, model, last ingest, flagged text."""
    store = assistant.store
    try:
        if not store.readable():
            raise StoreError("its files are gone")
        docs = sorted(store.documents().values(), key=lambda d: d.source)
        flagged = store.flagged()
    except Exception as exc:  # noqa: BLE001 - deleted or corrupted under us: say so
        assistant.reopen()
        return (
            f"<p><strong>The index can't be read</strong> ({doc_text(str(exc).splitlines()[0])}). "
            "Press <strong>Re-ingest</strong> to rebuild it from the corpus.</p>"
        )
    model = "/".join(model_path.rstrip("/").split("/")[-2:])
    rows = [
        (
            f"<bdi>{doc_text(d.title)}</bdi>",
            doc_text(d.kind),
            str(d.chunks),
            f"<code><bdi>{doc_text(d.source)}</bdi></code>",
        )
        for d in docs
    ]
    out = (
        f"<p><strong>{len(docs)} documents, {sum(d.chunks for d in docs)} chunks</strong> · "
        f"embedding model <code>{html.escape(model)}</code> · last ingest "
        f"{html.escape(store.last_ingest() or 'never')}</p>"
        + _table(("Title", "Kind", "Chunks", "File"), rows)
    )
    if flagged:
        out += (
            f"<p><strong>{len(flagged)} sentence{'s' if len(flagged) != 1 else ''} flagged at "
            "ingest</strong>: they read as instructions to an assistant, not as information, so "
            "they are never quoted. Check these documents.</p>"
            + _table(
                ("File", "Sentence"),
                [
                    (
                        f"<code><bdi>{doc_text(f.source)}</bdi></code>",
                        f"<bdi>{doc_text(f.text)}</bdi>",
                    )
                    for f in flagged
                ],
            )
        )
    return out


def render_titles(assistant: Assistant) -> str:
    """What any visitor may see of the index: the titles of its documents, nothing more."""
    try:
        titles = sorted({d.title for d in assistant.store.documents().values()})
    except Exception:  # noqa: BLE001 - an unreadable index: the curator view says why
        titles = []
    if not titles:
        return "<p>The documents can't be listed right now.</p>"
    items = "".join(f"<li><bdi>{doc_text(t)}</bdi></li>" for t in titles)
    return f"<p>Answers come only from these documents:</p><ul>{items}</ul>"


def render_review(assistant: Assistant) -> str:
    """The curator's list of documents added or changed since they last marked the index
    reviewed, each with the sentences ingest flagged in it."""
    try:
        fresh = assistant.store.unreviewed()
        flagged = assistant.store.flagged()
    except Exception:  # noqa: BLE001 - render_index already says the index can't be read
        return ""
    if not fresh:
        return "<h4>New since your last review</h4><p>Nothing: every document is reviewed.</p>"
    rows = []
    for d in fresh:
        marks = [f for f in flagged if f.source == d.source]
        notes = "".join(f"<li><bdi>{doc_text(f.text)}</bdi></li>" for f in marks)
        rows.append(
            (
                f"<bdi>{doc_text(d.title)}</bdi>",
                f"<code><bdi>{doc_text(d.source)}</bdi></code>",
                html.escape(d.ingested_at),
                f"<ul>{notes}</ul>" if marks else "none",
            )
        )
    return (
        f"<h4>New since your last review: {len(fresh)} document{'s' if len(fresh) != 1 else ''}"
        "</h4><p>Read their claims before people rely on them; flagged sentences are never "
        "quoted. Press <strong>Mark reviewed</strong> when done.</p>"
        + _table(("Title", "File", "Ingested", "Flagged sentences"), rows)
    )


_PATH = re.compile(r"(?<![\w.:/])/(?:[\w.@+-]+/)*[\w.@+-]+")


def without_paths(answer: Answer) -> Answer:
    """An error answer with server paths taken out (for visitors of an exposed app)."""
    if answer.status != "error":
        return answer
    text = _PATH.sub("[a server path]", answer.answer)
    error = None if answer.error is None else _PATH.sub("[a server path]", answer.error)
    return replace(answer, answer=text, error=error)


def client_of(request: Any) -> str:
    """The address a request came from ('' when unknown), for per-client limits."""
    client = getattr(request, "client", None)
    return str(getattr(client, "host", "") or "")


def render_report(report: IngestReport) -> str:
    """An ingest report for people (HTML)."""
    head = (
        f"<p><strong>Re-ingest done in {report.seconds:.2f} s:</strong> {report.added} added, "
        f"{report.updated} updated, {report.removed} removed, {report.unchanged} unchanged; "
        f"{report.chunks_embedded} chunks embedded, {report.chunks_total} in the index.</p>"
    )
    items = [
        f"<li>skipped <code><bdi>{doc_text(s.source)}</bdi></code>: {doc_text(s.reason)}</li>"
        for s in report.skipped
    ] + [
        f"<li>flagged in <code><bdi>{doc_text(f.source)}</bdi></code>: <bdi>{doc_text(f.text)}</bdi></li>"
        for f in report.flagged
    ]
    return head + (f"<ul>{''.join(items)}</ul>" if items else "")


def render_evals(report: dict[str, Any], problems: list[str]) -> str:
    """The eval summary (HTML) shown after a run from the Index panel."""
    o = report["overall"]

    def pct(name: str) -> str:
        return "–" if o.get(name) is None else f"{o[name]:.0%}"

    verdict = (
        "All thresholds met."
        if not problems
        else "<strong>Thresholds missed:</strong> " + html.escape("; ".join(problems))
    )
    failed = "".join(
        f"<li>failed <code>{html.escape(f['id'])}</code>: {doc_text(f['question'])}</li>"
        for f in report["failures"][:10]
    )
    return (
        f"<p><strong>Evals on the {o['questions']} held-out questions:</strong> answer accuracy "
        f"{pct('answer_accuracy')}, refusal recall {pct('refusal_recall')}, refusal precision "
        f"{pct('refusal_precision')}, urgent recall {pct('urgent_recall')}, citation validity "
        f"{pct('citation_validity')}, disclaimer {pct('disclaimer_rate')}; p50 "
        f"{o['latency_p50_ms']} ms.</p><p>{verdict}</p>" + (f"<ul>{failed}</ul>" if failed else "")
    )


class AdminCheck:
    """The one check in front of every admin action (curator view, re-ingest, run evals).

    Open on loopback; on another address only with RAG_ADMIN_PASSWORD set. Guesses are compared
    as UTF-8 bytes in constant time. Failures are counted per client address: after each one
    that client is refused at once, without comparing, for a wait that doubles (0.5 s, 1 s,
    2 s ... up to 8 s). Nothing sleeps, so a guess never holds a lock or a queue slot that
    answering needs, and one client's failures never delay another's right password.
    """

    def __init__(
        self,
        password: str,
        *,
        loopback: bool,
        delay: float = 0.5,
        cap: float = 8.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._password = password.encode("utf-8", "surrogatepass")
        self.enabled = loopback or bool(password)
        self.needs_password = bool(password)
        self._delay, self._cap, self._clock = delay, cap, clock
        self._failures: dict[str, tuple[int, float]] = {}  # client -> (failures, refused until)
        self._lock = threading.Lock()

    def allows(self, guess: object, client: str = "") -> bool:
        """Is this guess the admin password (or is none needed)? Always False while the client
        waits out its last failure; an empty guess is no attempt and costs nothing."""
        return self.check(guess, client) == ""

    def check(self, guess: object, client: str = "") -> str:
        """'' when the guess is allowed, else why not (wrong password, or wait N s)."""
        if not self.enabled:
            return "admin actions are disabled on this address"
        if not self.needs_password:
            return ""
        given = guess.encode("utf-8", "surrogatepass") if isinstance(guess, str) else b""
        if not given:
            return "wrong or missing admin password"
        now = self._clock()
        with self._lock:
            if len(self._failures) > 10_000:  # bounded: forget the waits that are over
                self._failures = {k: v for k, v in self._failures.items() if v[1] > now}
            failures, until = self._failures.get(client, (0, 0.0))
            if now < until:
                return f"too many wrong passwords; try again in {math.ceil(until - now)} s"
            if hmac.compare_digest(given, self._password):
                self._failures.pop(client, None)
                return ""
            failures += 1
            wait = min(self._delay * 2 ** (failures - 1), self._cap)
            self._failures[client] = (failures, now + wait)
            return "wrong or missing admin password"


class Guard:
    """ASGI middleware in front of Gradio for an app that may be exposed.

    - Host must be a loopback name, an IP literal, this machine's name, or in RAG_ALLOWED_HOSTS
      (a made-up name means DNS rebinding); a browser's Origin must match the Host.
    - Request bodies are capped at MAX_REQUEST_BYTES.
    - Endpoints this app never uses are closed: deep links (shareable snapshots of any chat,
      forged or not), uploads, recordings, media streams, run history.
    """

    def __init__(
        self,
        app: Any,
        *,
        hosts: frozenset[str],
        origins: frozenset[str] = frozenset(),
        max_body: int = MAX_REQUEST_BYTES,
    ):
        self.app, self.hosts, self.max_body = app, hosts, max_body
        self.origins = origins  # names from RAG_ALLOWED_HOSTS: a reverse proxy's, for instance

    def origin_allowed(self, origin: str, host: str) -> bool:
        """A browser's page must come from this app (or a name it was told to serve)."""
        parts = urlsplit(origin)
        return parts.netloc.lower() == host.lower() or (parts.hostname or "") in self.origins

    def host_allowed(self, host: str) -> bool:
        """Is this Host header (with or without port) one we serve?"""
        name = urlsplit(f"//{host}").hostname or ""
        try:
            ipaddress.ip_address(name)
            return True  # an address can't be rebound to another machine
        except ValueError:
            return name.lower() in self.hosts

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Refuse what the app must not serve; pass everything else to Gradio."""
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host, origin = headers.get("host", ""), headers.get("origin")
        path = scope.get("path", "")
        if not self.host_allowed(host):
            return await _refuse(scope, send, 400, f"Unknown host {host!r}: set RAG_ALLOWED_HOSTS.")
        if origin and origin != "null" and not self.origin_allowed(origin, host):
            return await _refuse(scope, send, 403, "Cross-origin request refused.")
        if path.startswith(CLOSED_PATHS) or "deep_link=" in scope.get("query_string", b"").decode(
            "latin-1"
        ):
            return await _refuse(scope, send, 404, "Not available in this app.")
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > self.max_body:
            return await _refuse(
                scope, send, 413, f"Request body too large (limit {self.max_body:,} bytes)."
            )
        seen = 0

        async def capped() -> dict:  # bodies without a length are counted as they arrive
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            return {"type": "http.disconnect"} if seen > self.max_body else message

        return await self.app(scope, capped if scope["type"] == "http" else receive, send)


async def _refuse(scope: dict, send: Any, status: int, text: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """Host names served besides IP literals: loopback, this machine, RAG_ALLOWED_HOSTS."""
    names = {"localhost", socket.gethostname(), socket.getfqdn(), settings.host, *listed_hosts()}
    return frozenset(n.lower() for n in names if n)


def listed_hosts() -> frozenset[str]:
    """The names in RAG_ALLOWED_HOSTS (comma-separated), lower-cased."""
    listed = os.environ.get("RAG_ALLOWED_HOSTS", "").split(",")
    return frozenset(h.strip().lower() for h in listed if h.strip())


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


def llm_status(assistant: Assistant, use_llm: bool = True) -> str:
    """Who writes the answers now: the LLM, or the documents' own sentences, and why."""
    llm = assistant.llm
    if llm is None:
        return ""
    if not use_llm:
        return (
            "Answers: the documents' own sentences, quoted with their sources (the LLM is "
            "switched off for this chat)."
        )
    name = html.escape(assistant.generator_name)
    subject = name[:1].upper() + name[1:]  # "The LLM (smollm2)"
    if not getattr(llm, "available", True):
        return (
            f"<div class='degraded' role='status'><strong>LLM unavailable.</strong> {subject}, "
            "which words the answers, is not responding, so answers are the documents' own "
            "sentences, quoted with their sources. Nothing to do on your side: it is tried again "
            "after a minute.</div>"
        )
    if getattr(llm, "failing", False):
        return (
            f"<div class='degraded' role='status'>{subject} did not respond to the last "
            "question, so that answer is the documents' own sentences.</div>"
        )
    return (
        f"Answers: written by {name}; every sentence is checked against the passage it cites, "
        "with quotes as the fallback."
    )


def render_feedback(log_: FeedbackLog) -> str:
    """The Index panel's Feedback section: counts and the latest thumbs-down."""
    records = log_.read()
    ups = sum(1 for r in records if r.get("liked") is True)
    downs = [r for r in records if r.get("liked") is False]
    head = (
        f"<h4>Feedback</h4><p>{ups} thumbs up · {len(downs)} thumbs down "
        f"<span class='src-meta'>(saved as <code>{html.escape(log_.path.name)}</code> in the "
        "index folder)</span></p>"
    )
    if not downs:
        return head
    rows = [
        (html.escape(str(r.get("time", ""))), doc_text(str(r.get("question", ""))),
         doc_text(str(r.get("answer", ""))[:300]))
        for r in reversed(downs[-10:])
    ]  # fmt: skip
    return head + _table(("When", "Question", "Answer"), rows)


def build_ui(
    settings: Settings,
    assistant: Assistant,
    embedder: Embedder,
    screen: Screen | None = None,
    *,
    degraded: str = "",
) -> Any:
    """The Blocks app: chat, the document viewer, the Index panel, and the /ask API endpoint."""
    offline()
    import gradio as gr

    admin = AdminCheck(
        os.environ.get("RAG_ADMIN_PASSWORD", ""), loopback=is_loopback(settings.host)
    )
    feedback = FeedbackLog(settings.index_dir / "feedback.jsonl")
    strangers = admin.needs_password or not admin.enabled  # visitors who are not the curator
    private = without_paths if strangers else (lambda answer: answer)

    def respond(
        message: str, chat: list[dict], history: list[dict], answers: dict, use_llm: bool = True
    ) -> Iterator[tuple]:
        if not isinstance(message, str) or not message.strip():
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()  # an empty send: nothing
            return
        chat = [*chat, {"role": "user", "content": f"<bdi>{doc_text(normalise(message))}</bdi>"}]
        working = {"role": "assistant", "content": WORKING}
        yield "", [*chat, working], gr.skip(), gr.skip(), "Looking in the documents."
        answer = private(assistant.ask(message, history, use_llm=use_llm))
        if answer.fallback is not None and answer.fallback.kind == "server" and not llm_up():
            gr.Info(  # once, when the failures pause the LLM; the status line says it too
                "The LLM is not responding: answers are the documents' own sentences for now.",
                duration=6,
            )
        history = [*history, {"role": "user", "content": message}]
        index = len(chat)  # the reply's position in the chat, which the thumbs report
        key = f"a{index}"
        for shown in range(1, len(answer.claims) if answer.citations else 0):
            partial = {"role": "assistant", "content": streaming_html(answer, key, shown)}
            yield gr.skip(), [*chat, partial], history, gr.skip(), gr.skip()
            time.sleep(STREAM_PAUSE)
        history = [*history, {"role": "assistant", "content": answer.answer}]
        answers = {**answers, str(index): {"question": message, **answer.to_json()}}
        reply = {"role": "assistant", "content": answer_html(answer, key)}
        yield gr.skip(), [*chat, reply], history, answers, announce(answer)

    def llm_up() -> bool:
        return getattr(assistant.llm, "available", True)

    def show_llm(use_llm: bool) -> str:
        return llm_status(assistant, use_llm)

    def new_chat() -> tuple:
        return [], [], {}, "", "", gr.update(visible=False), ""

    def judge(answers: dict, data: Any, request: Any) -> None:
        index = data.index[0] if isinstance(data.index, list | tuple) else data.index
        record = answers.get(str(index))
        if record is None or not isinstance(data.liked, bool):
            return
        try:
            saved = feedback.add(data.liked, record, client_of(request))
        except OSError as exc:
            gr.Warning(f"Your feedback could not be saved ({exc.strerror or exc}).")
        else:
            if saved:
                gr.Info("Thanks: your feedback was saved for the curator.")
            else:
                gr.Warning("That is a lot of feedback at once; please wait a minute.")

    # resolved here: gradio is imported lazily
    judge.__annotations__.update(data=gr.LikeData, request=gr.Request)

    def open_document(request: str) -> tuple:
        chunk_id = request.split("|")[0]
        chunks = assistant.document_of(chunk_id)
        back = "<button type='button' class='back-to-answer'>Back to the answer</button>"
        return gr.update(visible=True, open=True), back + document_html(chunks, chunk_id)

    def curator_panel() -> str:
        why = f"<div class='degraded' role='status'>{doc_text(degraded)}</div>" if degraded else ""
        return (
            why
            + render_index(assistant, embedder.model_path)
            + render_review(assistant)
            + render_feedback(feedback)
        )

    def panel_for(password: str, request: Any) -> str:
        """The curator's view behind the admin check; any other visitor sees the titles."""
        return curator_panel() if admin.allows(password, client_of(request)) else titles()

    def titles() -> str:
        return render_titles(assistant)

    def curator_view(password: str, request: Any) -> tuple[str, str]:
        why = admin.check(password, client_of(request))
        if why:
            return f"<p><strong>Refused:</strong> {html.escape(why)}.</p>", titles()
        return "", curator_panel()

    def mark_reviewed(password: str, request: Any) -> tuple[str, str]:
        why = admin.check(password, client_of(request))
        if why:
            return f"<p><strong>Refused:</strong> {html.escape(why)}.</p>", titles()
        try:
            fresh = assistant.store.mark_reviewed()
        except OSError as exc:
            return f"<p><strong>Not saved:</strong> {doc_text(str(exc))}</p>", curator_panel()
        note = (
            f"<p>Marked reviewed ({fresh} new or changed document{'s' if fresh != 1 else ''}).</p>"
        )
        return note, curator_panel()

    def reingest(password: str, request: Any, progress: Any = gr.Progress()) -> tuple[str, str]:  # noqa: B008
        why = admin.check(password, client_of(request))
        if why:
            return f"<p><strong>Refused:</strong> {html.escape(why)}.</p>", titles()

        def step(done: int, total: int) -> None:
            progress((done, total), desc="embedding", unit="texts")

        progress(0, desc="scanning the corpus")
        try:
            report = ingest(
                settings, embedder=embedder, screen=screen, progress=step, log=lambda _: None
            )
        except (StoreError, CorpusError, OSError) as exc:
            return (
                f"<p><strong>Re-ingest failed:</strong> {doc_text(str(exc))}</p>",
                curator_panel(),
            )
        finally:
            assistant.reopen()  # a rebuilt index is opened afresh by the next question
        return render_report(report), curator_panel()

    def run_evals(password: str, request: Any) -> str:
        why = admin.check(password, client_of(request))
        if why:
            return f"<p><strong>Refused:</strong> {html.escape(why)}.</p>"
        from evals.metrics import load_questions
        from evals.runner import evaluate, load_thresholds, run, violations

        questions = load_questions(EVAL_QUESTIONS, "test")  # the held-out split the gate uses
        report = evaluate(run(assistant, questions), settings.corpus_dir)
        return render_evals(report, violations(report["overall"], load_thresholds(EVAL_THRESHOLDS)))

    for handler in (panel_for, curator_view, mark_reviewed, reingest, run_evals):
        handler.__annotations__["request"] = gr.Request  # gradio fills it in

    with gr.Blocks(title="Melatonin & gut-health assistant") as demo:
        gr.HTML(
            "<header><h1>Melatonin &amp; gut-health assistant</h1><p>Answers only from its "
            "documents, quoting them with numbered sources. Tap a number to see its source.</p>"
            "</header>",
            elem_id="intro",
        )
        gr.HTML(
            f"<p><strong>⚕️ Medical disclaimer.</strong> {html.escape(DISCLAIMER)}</p>",
            elem_id="disclaimer",
        )
        if degraded:  # the details (paths, errors) are the curator's: see the Index panel
            gr.HTML(
                "<div class='degraded' role='status'><strong>Degraded:</strong> the documents "
                "could not be brought up to date, so answers come from the index as it was.</div>",
                elem_id="degraded",
            )
        history = gr.State([])
        answers = gr.State({})
        generator = gr.HTML(llm_status(assistant), elem_id="generator")
        use_llm = gr.Checkbox(
            value=assistant.llm is not None,
            label="Use the LLM (untick for quotes only)",
            visible=assistant.llm is not None,
            elem_id="use-llm",
        )
        chat = gr.Chatbot(  # replies are HTML built from escaped parts: no markdown, no math
            label="Conversation",
            elem_id="chat",
            height="58vh",
            min_height=260,
            sanitize_html=True,
            render_markdown=False,
            latex_delimiters=[],
            buttons=[],
            feedback_options=("Like", "Dislike"),
            placeholder="Ask a question below, or pick one of the examples.",
        )
        with gr.Row(elem_id="ask-row", equal_height=True):
            question = gr.Textbox(
                label="Your question",
                show_label=False,
                placeholder="Ask about melatonin, sleep, the gut microbiome…",
                elem_id="question",
                scale=5,
                lines=1,
                max_lines=4,
                max_length=MAX_QUESTION_CHARS,
            )
            send = gr.Button("Send", variant="primary", elem_id="send", scale=1, min_width=72)
        with gr.Row(elem_id="examples"):
            clear = gr.Button("New chat", elem_id="new-chat", size="sm", variant="secondary")
            example_buttons = [
                gr.Button(text, size="sm", elem_classes=["example"]) for text in EXAMPLES
            ]
        status = gr.HTML("", elem_id="announce")
        with gr.Accordion("Document", open=True, visible=False, elem_id="document-panel") as panel:
            document = gr.HTML("", elem_id="document")
        open_request = gr.Textbox(visible="hidden", elem_id="open-doc", label="document to open")
        with gr.Accordion("Index", open=False, elem_id="index-panel") as index_accordion:
            index_info = gr.HTML(titles(), elem_id="index-info")
            with gr.Row():
                password = gr.Textbox(
                    label="Admin password",
                    type="password",
                    visible=admin.needs_password,
                    scale=2,
                    elem_id="admin-password",
                )
                curator_button = gr.Button(
                    "Curator view", elem_id="curator-view", interactive=admin.enabled, scale=1
                )
                reviewed_button = gr.Button(
                    "Mark reviewed", elem_id="mark-reviewed", interactive=admin.enabled, scale=1
                )
                reingest_button = gr.Button(
                    "Re-ingest", elem_id="reingest", interactive=admin.enabled, scale=1
                )
            if not admin.enabled:
                gr.Markdown(
                    "Re-ingest and evals are disabled: the app is bound to a non-loopback address "
                    "and `RAG_ADMIN_PASSWORD` is not set."
                )
            report = gr.HTML("", elem_id="ingest-report")
            evals_button = gr.Button(
                "Run evals", elem_id="run-evals", interactive=admin.enabled, size="sm"
            )
            eval_summary = gr.HTML("", elem_id="eval-summary")

        outputs = [question, chat, history, answers, status]
        gr.on(  # a question sent while an answer streams is asked right after it, not dropped
            [question.submit, send.click],
            respond,
            [question, chat, history, answers, use_llm],
            outputs,
            api_visibility="private",
            trigger_mode="always_last",
        ).then(show_llm, use_llm, generator, api_visibility="private")
        for button, text in zip(example_buttons, EXAMPLES, strict=True):  # examples send at once

            def ask_example(
                chat: list[dict], history: list[dict], answers: dict, use_llm: bool, text=text
            ) -> Iterator[tuple]:
                yield from respond(text, chat, history, answers, use_llm)

            button.click(
                ask_example, [chat, history, answers, use_llm], outputs, api_visibility="private"
            ).then(show_llm, use_llm, generator, api_visibility="private")
        reset = [chat, history, answers, question, status, panel, document]
        clear.click(new_chat, outputs=reset, api_visibility="private")
        chat.clear(new_chat, outputs=reset, api_visibility="private")  # the same, from the bin
        chat.like(judge, [answers], None, api_visibility="private")
        use_llm.change(show_llm, use_llm, generator, api_visibility="private")
        index_accordion.expand(panel_for, [password], index_info, api_visibility="private")
        curator_button.click(
            curator_view, [password], [report, index_info], api_visibility="private"
        )
        reviewed_button.click(
            mark_reviewed, [password], [report, index_info], api_visibility="private"
        )
        open_request.change(
            open_document, open_request, [panel, document], api_visibility="private"
        ).then(None, js=SCROLL_TO_DOCUMENT)
        evals_button.click(
            run_evals, [password], eval_summary, api_visibility="private", concurrency_limit=1
        )
        reingest_button.click(
            reingest,
            [password],
            [report, index_info],
            api_visibility="private",
            concurrency_limit=1,
        )

        @gr.api(api_name="ask", concurrency_limit=ASK_CONCURRENCY)
        def ask(question: str, history: list[dict] | None = None, use_llm: bool = True) -> dict:
            """Answer one question; returns the same JSON as `python -m assistant ask --json`."""
            return private(assistant.ask(question, history, use_llm=use_llm)).to_json()

    return demo


def announce(answer: Answer) -> str:
    """What a screen reader hears when a reply is ready."""
    if answer.status == "urgent":
        return "Urgent: this may be an emergency. The reply says whom to call."
    if answer.citations:
        n = len(answer.citations)
        return f"Answer ready, with {n} source{'s' if n != 1 else ''}."
    return "Reply ready."


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


def main(argv: list[str] | None = None) -> None:
    """Bring the index up to date (with progress on the terminal), warm up, then serve."""
    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__)
    parser.add_argument("--host", help="bind address (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, help="port (default 7860)")
    args = parser.parse_args(argv)
    offline()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    started = time.perf_counter()
    try:
        settings = Settings.from_env(host=args.host, port=args.port)
    except SettingsError as exc:
        parser.error(str(exc))
    if not settings.corpus_dir.is_dir():
        sys.exit(f"error: corpus folder not found: {settings.corpus_dir}")
    # Gradio's files go to a folder of this run's own, removed at exit; uploads are closed anyway.
    scratch = tempfile.mkdtemp(prefix="rag-gradio-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a stop, like Ctrl-C: atexit runs
    os.environ["GRADIO_TEMP_DIR"] = scratch
    embedder = Embedder.from_settings(settings)
    encoder = SentenceEncoder()  # one bge-small for triage, intents and the ingest screen
    screen = Screen(encoder)
    degraded = start(settings, embedder, screen)
    assistant = Assistant(settings, embedder=embedder, encoder=encoder)
    try:
        assistant.warm_up()
    except StoreError as exc:
        if not degraded or not (settings.index_dir / "chroma").is_dir():
            sys.exit(f"error: {exc}")
        # Chroma opens its files for writing even to read: serve a copy of a read-only index
        copy = Path(scratch, "index")
        shutil.copytree(settings.index_dir, copy, ignore=shutil.ignore_patterns("feedback.jsonl"))
        log.warning("the index can't be opened in place (%s): serving a copy", exc)
        degraded += " The index folder is read-only, so a copy of it is served."
        assistant = Assistant(settings.replace(index_dir=copy), embedder=embedder, encoder=encoder)
        try:
            assistant.warm_up()
        except (IndexMissingError, StoreError) as again:
            sys.exit(f"error: {again}")
    except IndexMissingError as exc:
        sys.exit(f"error: {exc}")
    demo = build_ui(settings, assistant, embedder, screen, degraded=degraded)
    import gradio as gr
    from starlette.middleware import Middleware

    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )  # system fonts: the page loads nothing from outside this machine
    demo.queue(default_concurrency_limit=QUEUE_CONCURRENCY, max_size=QUEUE_SIZE)
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        theme=theme,
        css=CSS,
        footer_links=["api"],
        js=JS,
        prevent_thread_lock=True,
        quiet=True,
        max_file_size="1kb",
        app_kwargs={
            "middleware": [Middleware(Guard, hosts=allowed_hosts(settings), origins=listed_hosts())]
        },
    )
    log.info(
        "ready in %.1f s: http://%s:%s", time.perf_counter() - started, settings.host, settings.port
    )
    demo.block_thread()


if __name__ == "__main__":
    main()
