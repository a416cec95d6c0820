"""Gradio chat UI: python app.py [--host H] [--port P]. Ingests first if the index is stale.

Nothing imports this module; it wires the store, the assistant and ingest together.
"""

from __future__ import annotations

import argparse
import hmac
import html
import ipaddress
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from assistant.chain import Assistant
from assistant.records import Answer, Citation
from assistant.safety import DISCLAIMER
from corpus.embeddings import Embedder
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
EVAL_QUESTIONS = Path(__file__).resolve().parent / "evals" / "questions.jsonl"
EVAL_THRESHOLDS = EVAL_QUESTIONS.with_name("thresholds.toml")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>])")

CSS = """
#disclaimer {border-left: 4px solid #b45309; background: #fffbeb; padding: 8px 12px; border-radius: 6px}
.src {border: 1px solid #e5e7eb; border-radius: 8px; padding: 8px 12px; margin-bottom: 10px}
.src-head {font-weight: 600}
.src-meta {color: #6b7280; font-size: 0.85em}
.src-passage {white-space: pre-wrap; margin: 6px 0 0; font-size: 0.92em}
.src-passage mark {background: #fde68a; padding: 0 2px}
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


def escape_markdown(text: str) -> str:
    """Document text as inert markdown: no HTML, no links, no formatting."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def answer_lines(answer: Answer) -> list[str]:
    """The reply as markdown lines; claims are escaped, our own markup is not."""
    if answer.status != "answered":
        body = answer.answer.replace("**This may be an emergency.**", "").strip()
        head = "**URGENT: this may be an emergency.** " if answer.status == "urgent" else ""
        return [head + escape_markdown(body)]
    lines = []
    for line in answer.answer.splitlines():
        match = re.match(r"- \*(.+?):\* (.*) \[(\d+)\]$", line)
        written = re.match(r"- (.*) \[(\d+)\]$", line)  # an LLM's checked sentence
        if match:
            kind, claim, n = match.groups()
            lines.append(f"- *{escape_markdown(kind)}:* {escape_markdown(claim)} [{n}]")
        elif written:
            claim, n = written.groups()
            lines.append(f"- {escape_markdown(claim)} [{n}]")
        else:
            lines.append(escape_markdown(line))
    if answer.generator == "llm":
        lines.append(
            "<sub>Written by the LLM; each sentence was checked against the quote it cites.</sub>"
        )
    elif answer.generator.startswith("extractive (fallback: "):
        reason = answer.generator.removeprefix("extractive (fallback: ").removesuffix(")")
        lines.append(f"<sub>Showing the documents' own sentences: {html.escape(reason)}.</sub>")
    return lines


def reply_markdown(lines: list[str]) -> str:
    """A chat reply: the answer, then the disclaimer in small print."""
    return "\n".join(lines) + f"\n\n<sub>⚕️ {html.escape(DISCLAIMER)}</sub>"


def highlight(passage: str, quotes: list[str]) -> str:
    """The passage, escaped, with each quoted sentence marked."""
    spans = sorted((at, at + len(q)) for q in dict.fromkeys(quotes) if (at := passage.find(q)) >= 0)
    out, last = [], 0
    for start, end in spans:
        if start < last:
            continue
        out += [html.escape(passage[last:start]), f"<mark>{html.escape(passage[start:end])}</mark>"]
        last = end
    return "".join(out) + html.escape(passage[last:])


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
    section = f" · {html.escape(c.section)}" if c.section and c.section != c.title else ""
    return (
        f"<div class='src' id='source-{c.n}' data-also='{ids}'>"
        f"<div class='src-head'>{numbers} {html.escape(c.title)}</div>"
        f"<div class='src-meta'>{html.escape(c.kind)}{section} · {html.escape(c.source)}</div>"
        f"<div class='src-passage'>{highlight(c.passage, [x.quote for x in group])}</div></div>"
    )


def render_index(assistant: Assistant, model_path: str) -> str:
    """The Index panel's summary: documents, chunks, model, last ingest."""
    store = assistant.store
    try:
        if not store.readable():
            raise StoreError("its files are gone")
        docs = sorted(store.documents().values(), key=lambda d: d.source)
    except Exception as exc:  # noqa: BLE001 - deleted or corrupted under us: say so
        assistant.reopen()
        return (
            f"**The index can't be read** ({escape_markdown(str(exc).splitlines()[0])}). "
            "Press **Re-ingest** to rebuild it from the corpus."
        )
    rows = "\n".join(
        f"| {escape_markdown(d.title)} | {escape_markdown(d.kind)} | {d.chunks} | `{d.source}` |"
        for d in docs
    )
    return (
        f"**{len(docs)} documents, {sum(d.chunks for d in docs)} chunks** · embedding model "
        f"`{'/'.join(model_path.rstrip('/').split('/')[-2:])}` · last ingest {store.last_ingest() or 'never'}"
        f"\n\n| Title | Kind | Chunks | File |\n|---|---|---|---|\n{rows}"
    )


def render_report(report: IngestReport) -> str:
    """An ingest report for people."""
    lines = [
        f"**Re-ingest done in {report.seconds:.2f} s:** {report.added} added, {report.updated} "
        f"updated, {report.removed} removed, {report.unchanged} unchanged; "
        f"{report.chunks_embedded} chunks embedded, {report.chunks_total} in the index."
    ]
    lines += [f"- skipped `{s.source}`: {escape_markdown(s.reason)}" for s in report.skipped]
    return "\n".join(lines)


def render_evals(report: dict[str, Any], problems: list[str]) -> str:
    """The eval summary shown after a run from the Index panel."""
    o = report["overall"]

    def pct(name: str) -> str:
        return "–" if o.get(name) is None else f"{o[name]:.0%}"

    lines = [
        f"**Evals on the {o['questions']} held-out questions:** answer accuracy {pct('answer_accuracy')}, "
        f"refusal recall {pct('refusal_recall')}, refusal precision {pct('refusal_precision')}, "
        f"urgent recall {pct('urgent_recall')}, citation validity {pct('citation_validity')}, "
        f"disclaimer {pct('disclaimer_rate')}; p50 {o['latency_p50_ms']} ms.",
        "All thresholds met." if not problems else "**Thresholds missed:** " + "; ".join(problems),
    ]
    lines += [
        f"- failed `{f['id']}`: {escape_markdown(f['question'])}" for f in report["failures"][:10]
    ]
    return "\n\n".join(lines[:2]) + ("\n\n" + "\n".join(lines[2:]) if lines[2:] else "")


def build_ui(settings: Settings, assistant: Assistant, embedder: Embedder) -> Any:
    """The Blocks app: chat, sources, index panel, and the /ask API endpoint."""
    import gradio as gr

    admin_password = os.environ.get("RAG_ADMIN_PASSWORD", "")
    admin_open = is_loopback(settings.host) or bool(admin_password)

    def respond(
        message: str, chat: list[dict], history: list[dict], use_llm: bool = True
    ) -> Iterator[tuple]:
        answer = assistant.ask(message, history, use_llm=use_llm)
        lines = answer_lines(answer)
        chat = [*chat, {"role": "user", "content": escape_markdown(message)}]
        history = [*history, {"role": "user", "content": message}]
        shown: list[str] = []
        cleared: Any = ""  # empty the textbox once: later updates must not wipe a new question
        for line in lines:  # sentences appear one by one
            shown.append(line)
            partial = {"role": "assistant", "content": "\n".join(shown)}
            yield cleared, [*chat, partial], history, gr.skip()
            cleared = gr.skip()
            time.sleep(STREAM_PAUSE)
        history = [*history, {"role": "assistant", "content": answer.answer}]
        reply = {"role": "assistant", "content": reply_markdown(lines)}
        yield gr.skip(), [*chat, reply], history, render_sources(answer)

    def new_chat() -> tuple:
        return [], [], render_sources(None), ""

    def reingest(password: str, progress: Any = gr.Progress()) -> tuple[str, str]:  # noqa: B008
        if not admin_open or (admin_password and not hmac.compare_digest(password, admin_password)):
            return "**Re-ingest refused:** wrong or missing admin password.", render_index(
                assistant, embedder.model_path
            )

        def step(done: int, total: int) -> None:
            progress((done, total), desc="embedding", unit="texts")

        progress(0, desc="scanning the corpus")
        try:
            report = ingest(settings, embedder=embedder, progress=step, log=lambda _: None)
        except (StoreError, CorpusError) as exc:
            return f"**Re-ingest failed:** {escape_markdown(str(exc))}", render_index(
                assistant, embedder.model_path
            )
        finally:
            assistant.reopen()  # a rebuilt index is opened afresh by the next question
        return render_report(report), render_index(assistant, embedder.model_path)

    def run_evals() -> str:
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
        history = gr.State([])
        if assistant.llm is None:
            gr.Markdown(
                "Answers: the documents' own sentences, quoted (extractive).", elem_id="generator"
            )
        else:
            gr.Markdown(
                f"Answers: written by {escape_markdown(assistant.generator_name)}; every sentence "
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
                chat = gr.Chatbot(
                    label="Chat", elem_id="chat", height=460, sanitize_html=True, buttons=["copy"]
                )
                with gr.Row():
                    question = gr.Textbox(
                        placeholder="Ask about melatonin, sleep, the gut microbiome…",
                        show_label=False,
                        elem_id="question",
                        scale=5,
                        max_lines=4,
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
            index_info = gr.Markdown(
                render_index(assistant, embedder.model_path), elem_id="index-info"
            )
            with gr.Row():
                password = gr.Textbox(
                    label="Admin password", type="password", visible=bool(admin_password), scale=2
                )
                reingest_button = gr.Button(
                    "Re-ingest", elem_id="reingest", interactive=admin_open, scale=1
                )
            if not admin_open:
                gr.Markdown(
                    "Re-ingest is disabled: the app is bound to a non-loopback address and "
                    "`RAG_ADMIN_PASSWORD` is not set."
                )
            report = gr.Markdown("", elem_id="ingest-report")
            evals_button = gr.Button(
                "Run evals", elem_id="run-evals", interactive=admin_open, size="sm"
            )
            eval_summary = gr.Markdown("", elem_id="eval-summary")

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
            run_evals, outputs=eval_summary, api_visibility="private", concurrency_limit=1
        )
        reingest_button.click(
            reingest,
            [password],
            [report, index_info],
            api_visibility="private",
            concurrency_limit=1,
        )

        @gr.api(api_name="ask")
        def ask(question: str, history: list[dict] | None = None, use_llm: bool = True) -> dict:
            """Answer one question; returns the same JSON as `python -m assistant ask --json`."""
            return assistant.ask(question, history or [], use_llm=use_llm).to_json()

    return demo


def main(argv: list[str] | None = None) -> None:
    """Bring the index up to date (with progress on the terminal), warm up, then serve."""
    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__)
    parser.add_argument("--host", help="bind address (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, help="port (default 7860)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    settings = Settings.from_env(host=args.host, port=args.port)
    if not settings.corpus_dir.is_dir():
        sys.exit(f"error: corpus folder not found: {settings.corpus_dir}")
    embedder = Embedder.from_settings(settings)
    with TerminalProgress() as progress:
        report = ingest(settings, embedder=embedder, progress=progress)
    print(
        f"index: {report.chunks_total} chunks ({report.added} added, {report.updated} updated, "
        f"{report.removed} removed)",
        file=sys.stderr,
    )
    assistant = Assistant(settings, embedder=embedder)
    assistant.warm_up()
    demo = build_ui(settings, assistant, embedder)
    import gradio as gr

    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )  # system fonts: the page loads nothing from outside this machine
    demo.queue(default_concurrency_limit=8)
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        theme=theme,
        css=CSS,
        footer_links=["api"],
        prevent_thread_lock=True,
        quiet=True,
    )
    print(
        f"ready in {time.perf_counter() - started:.1f} s: http://{settings.host}:{settings.port}",
        file=sys.stderr,
        flush=True,
    )
    demo.block_thread()


if __name__ == "__main__":
    main()
