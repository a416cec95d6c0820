"""Gradio chat UI: python app.py [--host H] [--port P]. Ingests first if the index is stale.

Nothing imports this module; it wires the store, the assistant and ingest together.
"""

from __future__ import annotations

import argparse
import atexit
import hmac
import html
import ipaddress
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from assistant.chain import Assistant
from assistant.inputs import MAX_QUESTION_CHARS, normalise
from assistant.records import Answer, Citation, Claim
from assistant.retrieval import IndexMissingError
from assistant.safety import DISCLAIMER
from corpus.embeddings import Embedder
from corpus.models import SentenceEncoder
from corpus.screening import Screen
from corpus.settings import Settings
from corpus.store import StoreError
from ingest.pipeline import CorpusError, IngestReport, TerminalProgress, ingest

EXAMPLES = (
    "How much melatonin should I take?",
    "What are probiotics?",
    "Does melatonin help with IBS?",
    "What are the side effects of melatonin?",
)
STREAM_PAUSE = 0.06  # seconds between streamed sentences
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
#disclaimer {border-left: 4px solid #b45309; background: #fffbeb; padding: 8px 12px; border-radius: 6px}
.src {border: 1px solid #e5e7eb; border-radius: 8px; padding: 8px 12px; margin-bottom: 10px}
.src-head {font-weight: 600}
.src-meta {color: #6b7280; font-size: 0.85em}
.src-passage {white-space: pre-wrap; margin: 6px 0 0; font-size: 0.92em}
.src-passage mark {background: #fde68a; padding: 0 2px}
.src-passage del.withheld {color: #6b7280}
.ctl {font-family: monospace; font-size: 0.8em; color: #b91c1c}
.badge {display: inline-block; padding: 6px 10px; border-radius: 6px; margin-bottom: 8px}
.badge-urgent {background: #fee2e2; color: #991b1b; border: 2px solid #dc2626; font-weight: 700}
.badge-refused {background: #f3f4f6; color: #374151}
.badge-error {background: #fef3c7; color: #92400e}
"""


def is_loopback(host: str) -> bool:
    """Is this bind address reachable only from this machine?"""
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def doc_text(text: str) -> str:
    """Text from a document or the index as inert HTML, shown in its stored order.

    Escaped (never markup), and each bidirectional control made visible, so "0.5 mg" with a
    hidden U+202E cannot display as "gm 5.0".
    """
    return _BIDI.sub(
        lambda m: f"<span class='ctl' title='hidden direction control'>[U+{ord(m[0]):04X}]</span>",
        html.escape(text, quote=True),
    )


def claim_html(claim: Claim) -> str:
    """One answer sentence: who says it, the words isolated from their neighbours, its sources."""
    who = f"<em>{doc_text(claim.label)}:</em> " if claim.label else ""
    refs = "".join(f"<a href='#source-{n}' class='ref'>[{n}]</a>" for n in claim.cites)
    return f"<li>{who}<bdi>{doc_text(claim.text)}</bdi> {refs}</li>"


def reply_parts(answer: Answer) -> list[str]:
    """The reply as HTML pieces, streamed one by one; the chat renders HTML, never markdown."""
    if answer.status == "answered" and answer.claims:
        parts = [claim_html(c) for c in answer.claims]
        if answer.generator == "llm":
            note = "Written by the LLM; each sentence was checked against the quote it cites."
            parts.append(f"<p class='note'><small>{note}</small></p>")
        elif answer.generator.startswith("extractive (fallback: "):
            reason = answer.generator.removeprefix("extractive (fallback: ").removesuffix(")")
            note = f"Showing the documents' own sentences: {html.escape(reason)}."
            parts.append(f"<p class='note'><small>{note}</small></p>")
        return parts
    body = answer.answer.replace("**This may be an emergency.**", "").strip()
    head = (
        "<strong>URGENT: this may be an emergency.</strong> " if answer.status == "urgent" else ""
    )
    return [f"<p class='reply-{answer.status}'>{head}{doc_text(body)}</p>"]


def reply_html(parts: list[str], *, done: bool = True) -> str:
    """A chat reply from its pieces; the finished one ends with the disclaimer in small print."""
    claims = "".join(p for p in parts if p.startswith("<li>"))
    rest = "".join(p for p in parts if not p.startswith("<li>"))
    body = (f"<ul class='claims'>{claims}</ul>" if claims else "") + rest
    return body + (
        f"<p class='disclaimer'><small>⚕️ {html.escape(DISCLAIMER)}</small></p>" if done else ""
    )


WITHHELD = "Flagged at ingest: it reads as an instruction to an assistant, so it is never quoted."


def highlight(passage: str, quotes: list[str], withheld: tuple[str, ...] = ()) -> str:
    """The passage, escaped, with each quoted sentence marked and each withheld one struck."""
    marks = [(q, "mark") for q in dict.fromkeys(quotes)] + [(w, "del") for w in withheld]
    spans = sorted(
        (at, at + len(text), tag) for text, tag in marks if (at := passage.find(text)) >= 0
    )
    out, last = [], 0
    for start, end, tag in spans:
        if start < last:
            continue
        title = f" class='withheld' title='{WITHHELD}'" if tag == "del" else ""
        out += [
            doc_text(passage[last:start]),
            f"<{tag}{title}><bdi>{doc_text(passage[start:end])}</bdi></{tag}>",
        ]
        last = end
    return "".join(out) + doc_text(passage[last:])


def render_sources(answer: Answer | None) -> str:
    """The Sources panel: one card per citation, the quote highlighted inside its passage."""
    if answer is None:
        return "<p class='src-meta'>Sources for each answer appear here.</p>"
    badge = {
        "urgent": "<div class='badge badge-urgent'>Urgent: call for help now</div>",
        "refused": "<div class='badge badge-refused'>Not covered by the documents: no sources</div>",
        "error": "<div class='badge badge-error'>Not a question</div>",
    }.get(answer.status, "")
    by_passage: dict[str, list[Citation]] = {}
    for c in answer.citations:  # one card per passage, with every quote from it marked
        by_passage.setdefault(c.chunk_id, []).append(c)
    cards = [badge] + [_card(group) for group in by_passage.values()]
    return "\n".join(part for part in cards if part)


def _card(group: list[Citation]) -> str:
    c = group[0]
    numbers = "".join(f"[{x.n}]" for x in group)
    ids = " ".join(f"source-{x.n}" for x in group[1:])
    section = f" · {doc_text(c.section)}" if c.section and c.section != c.title else ""
    return (
        f"<div class='src' id='source-{c.n}' data-also='{ids}'>"
        f"<div class='src-head'>{numbers} <bdi>{doc_text(c.title)}</bdi></div>"
        f"<div class='src-meta'>{doc_text(c.kind)}{section} · <bdi>{doc_text(c.source)}</bdi></div>"
        f"<div class='src-passage'>{highlight(c.passage, [x.quote for x in group], c.withheld)}"
        "</div></div>"
    )


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
    """The one check in front of every admin action (re-ingest, run evals).

    Open on loopback; on another address only with RAG_ADMIN_PASSWORD set. Guesses are compared
    as UTF-8 bytes in constant time, one at a time, and each failure doubles the wait before the
    next answer (0.5 s, 1 s, 2 s ... up to 8 s), so guessing is slow.
    """

    def __init__(self, password: str, *, loopback: bool, delay: float = 0.5, cap: float = 8.0):
        self._password = password.encode("utf-8", "surrogatepass")
        self.enabled = loopback or bool(password)
        self.needs_password = bool(password)
        self._delay, self._cap, self._failures = delay, cap, 0
        self._lock = threading.Lock()

    def allows(self, guess: object) -> bool:
        """Is this guess the admin password (or is none needed)? Slow after failures."""
        if not self.enabled:
            return False
        if not self.needs_password:
            return True
        given = guess.encode("utf-8", "surrogatepass") if isinstance(guess, str) else b""
        with self._lock:
            if hmac.compare_digest(given, self._password):
                self._failures = 0
                return True
            self._failures += 1
            time.sleep(min(self._delay * 2 ** (self._failures - 1), self._cap))
            return False


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


def build_ui(
    settings: Settings,
    assistant: Assistant,
    embedder: Embedder,
    screen: Screen | None = None,
    *,
    degraded: str = "",
) -> Any:
    """The Blocks app: chat, sources, index panel, and the /ask API endpoint."""
    import gradio as gr

    admin = AdminCheck(
        os.environ.get("RAG_ADMIN_PASSWORD", ""), loopback=is_loopback(settings.host)
    )
    refused = "<p><strong>Refused:</strong> wrong or missing admin password.</p>"

    def respond(
        message: str, chat: list[dict], history: list[dict], use_llm: bool = True
    ) -> Iterator[tuple]:
        answer = assistant.ask(message, history, use_llm=use_llm)
        parts = reply_parts(answer)
        shown = normalise(message) if isinstance(message, str) else ""
        chat = [*chat, {"role": "user", "content": f"<bdi>{html.escape(shown)}</bdi>"}]
        history = [*history, {"role": "user", "content": message}]
        cleared: Any = ""  # empty the textbox once: later updates must not wipe a new question
        for n in range(1, len(parts)):  # sentences appear one by one
            partial = {"role": "assistant", "content": reply_html(parts[:n], done=False)}
            yield cleared, [*chat, partial], history, gr.skip()
            cleared = gr.skip()
            time.sleep(STREAM_PAUSE)
        history = [*history, {"role": "assistant", "content": answer.answer}]
        reply = {"role": "assistant", "content": reply_html(parts)}
        yield cleared, [*chat, reply], history, render_sources(answer)

    def new_chat() -> tuple:
        return [], [], render_sources(None), ""

    def reingest(password: str, progress: Any = gr.Progress()) -> tuple[str, str]:  # noqa: B008
        if not admin.allows(password):
            return refused, render_index(assistant, embedder.model_path)

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
                render_index(assistant, embedder.model_path),
            )
        finally:
            assistant.reopen()  # a rebuilt index is opened afresh by the next question
        return render_report(report), render_index(assistant, embedder.model_path)

    def run_evals(password: str) -> str:
        if not admin.allows(password):
            return refused
        from evals.metrics import load_questions
        from evals.runner import evaluate, load_thresholds, run, violations

        questions = load_questions(EVAL_QUESTIONS, "test")  # the held-out split the gate uses
        report = evaluate(run(assistant, questions), settings.corpus_dir)
        return render_evals(report, violations(report["overall"], load_thresholds(EVAL_THRESHOLDS)))

    with gr.Blocks(title="Melatonin & gut-health assistant") as demo:
        gr.Markdown(
            "# Melatonin & gut-health assistant\n"
            "Answers only from its documents, quoting them with numbered sources."
        )
        gr.Markdown(f"⚕️ **Medical disclaimer.** {DISCLAIMER}", elem_id="disclaimer")
        if degraded:
            gr.HTML(
                f"<div class='badge badge-error' role='status'><strong>Degraded:</strong> "
                f"{doc_text(degraded)} Answers come from the index as it was.</div>",
                elem_id="degraded",
            )
        history = gr.State([])
        if assistant.llm is None:
            gr.Markdown(
                "Answers: the documents' own sentences, quoted (extractive).", elem_id="generator"
            )
        else:
            gr.HTML(
                f"Answers: written by {html.escape(assistant.generator_name)}; every sentence "
                "is checked against the passage it cites, with quotes as the fallback.",
                elem_id="generator",
            )
        use_llm = gr.Checkbox(
            value=assistant.llm is not None,
            label="Use the LLM (untick for quotes only)",
            visible=assistant.llm is not None,
            elem_id="use-llm",
        )
        with gr.Row():
            with gr.Column(scale=3):
                chat = (
                    gr.Chatbot(  # replies are HTML built from escaped parts: no markdown, no math
                        label="Chat",
                        elem_id="chat",
                        height=460,
                        sanitize_html=True,
                        render_markdown=False,
                        latex_delimiters=[],
                        buttons=["copy"],
                    )
                )
                with gr.Row():
                    question = gr.Textbox(
                        placeholder="Ask about melatonin, sleep, the gut microbiome…",
                        show_label=False,
                        elem_id="question",
                        scale=5,
                        max_lines=4,
                        max_length=MAX_QUESTION_CHARS,
                    )
                    send = gr.Button("Send", variant="primary", elem_id="send", scale=1)
                with gr.Row():
                    clear = gr.Button("New chat", elem_id="new-chat", size="sm")
                    for text in EXAMPLES:
                        gr.Button(text, size="sm", elem_classes=["example"]).click(
                            lambda t=text: t, outputs=question, api_visibility="private"
                        )
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.HTML(render_sources(None), elem_id="sources")
        with gr.Accordion("Index", open=False, elem_id="index-panel"):
            index_info = gr.HTML(render_index(assistant, embedder.model_path), elem_id="index-info")
            with gr.Row():
                password = gr.Textbox(
                    label="Admin password",
                    type="password",
                    visible=admin.needs_password,
                    scale=2,
                    elem_id="admin-password",
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

        outputs = [question, chat, history, sources]
        inputs = [question, chat, history, use_llm]
        gr.on(  # a question sent while an answer streams is asked right after it, not dropped
            [question.submit, send.click],
            respond,
            inputs,
            outputs,
            api_visibility="private",
            trigger_mode="always_last",
        )
        clear.click(new_chat, outputs=[chat, history, sources, question], api_visibility="private")
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
            return assistant.ask(question, history, use_llm=use_llm).to_json()

    return demo


def start(settings: Settings, embedder: Embedder, screen: Screen) -> str:
    """Bring the index up to date; '' or, when that can't be done, why (the old index serves)."""
    try:
        with TerminalProgress() as progress:
            report = ingest(settings, embedder=embedder, screen=screen, progress=progress)
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
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    settings = Settings.from_env(host=args.host, port=args.port)
    if not settings.corpus_dir.is_dir():
        sys.exit(f"error: corpus folder not found: {settings.corpus_dir}")
    # Gradio's files go to a folder of this run's own, removed at exit; uploads are closed anyway.
    scratch = tempfile.mkdtemp(prefix="rag-gradio-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
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
        shutil.copytree(settings.index_dir / "chroma", copy / "chroma")
        log.warning("the index can't be opened in place (%s): serving a copy", exc)
        degraded += " The index folder is read-only, so a copy of it is served."
        assistant = Assistant(replace(settings, index_dir=copy), embedder=embedder, encoder=encoder)
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
