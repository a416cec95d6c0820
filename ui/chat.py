"""The chat: a `ChatUI` whose handlers are methods over injected services, and `build()`.

Answering is the Assistant's; the index's admin side is `IndexAdmin`'s; eval runs are `EvalRuns`'s;
thumbs go to the `FeedbackLog`; every admin action passes the `AdminCheck` first. Handlers return
values (rendered by `ui.render`), so a test drives each one without a browser.
"""

from __future__ import annotations

import html
import queue
import threading
import time
from collections.abc import Callable, Iterator

import gradio as gr

from assistant import replies
from assistant.chain import Assistant
from assistant.inputs import MAX_QUESTION_CHARS, normalise
from assistant.records import Answer
from assistant.safety import DISCLAIMER
from corpus.store import StoreError
from ingest.pipeline import CorpusError
from ui import render
from ui.admin import AdminCheck
from ui.feedback import FeedbackLog
from ui.guard import client_of, without_paths
from ui.services import EvalRuns, IndexAdmin, IndexUnreadable

STREAM_PAUSE = 0.06  # seconds between streamed sentences
DRAFT_EVERY = 0.25  # seconds between updates of an LLM's draft
WORKING = "<div class='reply reply-working'><p>Looking in the documents…</p></div>"
ASK_CONCURRENCY = 4  # /ask calls computed at once
TITLE = "Melatonin & gut-health assistant"
SCROLL_TO_DOCUMENT = (
    "() => { const t = document.getElementById('doc-target');"
    " if (t) { t.setAttribute('tabindex', '-1'); t.scrollIntoView({block: 'center'});"
    " t.focus({preventScroll: true}); } }"
)


def refused(why: str) -> str:
    """An admin action turned away, and why."""
    return f"<p><strong>Refused:</strong> {html.escape(why)}.</p>"


class ChatUI:
    """The chat's handlers, over the assistant and the services; `build()` lays them out."""

    def __init__(
        self,
        assistant: Assistant,
        index: IndexAdmin,
        evals: EvalRuns,
        feedback: FeedbackLog,
        admin: AdminCheck,
        *,
        degraded: str = "",
    ) -> None:
        self.assistant, self.index, self.evals = assistant, index, evals
        self.feedback, self.admin, self.degraded = feedback, admin, degraded
        strangers = admin.needs_password or not admin.enabled  # visitors who are not the curator
        self.private: Callable[[Answer], Answer] = without_paths if strangers else (lambda a: a)

    # -- the chat ---------------------------------------------------------------------------

    def respond(
        self,
        message: str,
        chat: list[dict],
        history: list[dict],
        answers: dict,
        use_llm: bool = True,
    ) -> Iterator[tuple]:
        """Send: the question shows at once, then a working bubble, then the answer sentence by
        sentence. Yields (question box, chat, history, answers by position, announcement)."""
        if not isinstance(message, str) or not message.strip():
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()  # an empty send: nothing
            return
        shown = f"<bdi>{render.doc_text(normalise(message))}</bdi>"
        chat = [*chat, {"role": "user", "content": shown}]
        working = {"role": "assistant", "content": WORKING}
        yield "", [*chat, working], gr.skip(), gr.skip(), "Looking in the documents."
        if use_llm and self.assistant.llm is not None:  # the draft shows as it is written
            answer = replies.error_answer("Something went wrong while answering.")
            for item in self._streamed(message, history):
                if isinstance(item, str):
                    writing = {"role": "assistant", "content": render.writing_html(item)}
                    yield gr.skip(), [*chat, writing], gr.skip(), gr.skip(), gr.skip()
                else:
                    answer = item  # the last item: the checked answer
        else:
            answer = self.assistant.ask(message, history, use_llm=False)
        answer = self.private(answer)
        if answer.fallback is not None and answer.fallback.kind == "server" and not self.llm_up():
            gr.Info(  # once, when the failures pause the LLM; the status line says it too
                "The LLM is not responding: answers are the documents' own sentences for now.",
                duration=6,
            )
        history = [*history, {"role": "user", "content": message}]
        index = len(chat)  # the reply's position in the chat, which the thumbs report
        key = f"a{index}"
        for upto in range(1, len(answer.claims) if answer.citations else 0):
            partial = {"role": "assistant", "content": render.streaming_html(answer, key, upto)}
            yield gr.skip(), [*chat, partial], history, gr.skip(), gr.skip()
            time.sleep(STREAM_PAUSE)
        history = [*history, {"role": "assistant", "content": answer.answer}]
        answers = {**answers, str(index): {"question": message, **answer.to_json()}}
        bubble = render.answer_html(answer, key, self.index.urls() if answer.citations else {})
        yield (
            gr.skip(),
            [*chat, {"role": "assistant", "content": bubble}],
            history,
            answers,
            (render.announce(answer)),
        )

    def _streamed(self, message: str, history: list[dict]) -> Iterator[str | Answer]:
        """The LLM's draft as it grows (at most every DRAFT_EVERY seconds), then the Answer."""
        drafts: queue.Queue[str | Answer] = queue.Queue()

        def work() -> None:
            try:
                drafts.put(self.assistant.ask(message, history, use_llm=True, on_text=drafts.put))
            except BaseException as exc:  # noqa: BLE001 - ask never raises; never hang the chat
                drafts.put(replies.error_answer(f"Something went wrong ({type(exc).__name__})."))

        threading.Thread(target=work, daemon=True).start()
        shown = 0.0
        while True:
            item = drafts.get()
            if not isinstance(item, str):
                yield item
                return
            if time.monotonic() - shown >= DRAFT_EVERY and drafts.empty():
                shown = time.monotonic()
                yield item

    def ask(self, question: str, history: list[dict] | None = None, use_llm: bool = True) -> dict:
        """Answer one question; returns the same JSON as `python -m assistant ask --json`."""
        return self.private(self.assistant.ask(question, history, use_llm=use_llm)).to_json()

    def new_chat(self) -> tuple:
        """Clear the chat, its history, the document viewer and the question box."""
        return [], [], {}, "", "", gr.update(visible=False), ""

    def llm_up(self) -> bool:
        """Is the LLM (if any) answering?"""
        return getattr(self.assistant.llm, "available", True)

    def show_llm(self, use_llm: bool) -> str:
        """The status line: who writes the answers now."""
        llm = self.assistant.llm
        return render.llm_html(
            self.assistant.generator_name,
            present=llm is not None,
            use_llm=use_llm,
            available=getattr(llm, "available", True),
            failing=getattr(llm, "failing", False),
        )

    def judge(self, answers: dict, data: gr.LikeData, request: gr.Request) -> None:
        """A thumbs up or down on a reply, saved for the curator."""
        index = data.index[0] if isinstance(data.index, list | tuple) else data.index
        record = answers.get(str(index))
        if record is None or not isinstance(data.liked, bool):
            return
        try:
            saved = self.feedback.add(data.liked, record, client_of(request))
        except OSError as exc:
            gr.Warning(f"Your feedback could not be saved ({exc.strerror or exc}).")
        else:
            if saved:
                gr.Info("Thanks: your feedback was saved for the curator.", duration=2)
            else:
                gr.Warning("That is a lot of feedback at once; please wait a minute.")

    def open_document(self, request: str) -> tuple:
        """The whole document of a cited passage, in the viewer, the passage marked."""
        chunk_id = request.split("|")[0]
        chunks = self.assistant.document_of(chunk_id)
        url = self.index.urls().get(chunks[0].source, "") if chunks else ""
        title = render.doc_text(chunks[0].title) if chunks else ""
        back = (  # kept in view at the top of the viewer while the document scrolls
            "<div class='doc-bar'><button type='button' class='back-to-answer'>Back to the answer"
            f"</button> <span class='doc-bar-title'><bdi>{title}</bdi></span></div>"
        )
        viewer = f"<div class='doc-box'>{back}{render.document_html(chunks, chunk_id, url)}</div>"
        return gr.update(visible=True, open=True), viewer

    # -- the Index panel --------------------------------------------------------------------

    def titles(self) -> str:
        """What any visitor sees of the index: its documents' titles."""
        return render.titles_html(self.index.titles())

    def curator_panel(self) -> str:
        """The curator's view: documents, flagged text, what is new, feedback."""
        why = (
            self.degraded
            and f"<div class='degraded' role='status'>{render.doc_text(self.degraded)}</div>"
        )
        try:
            view = self.index.view()
        except IndexUnreadable as exc:
            body = render.unreadable_html(str(exc))
        else:
            body = render.index_html(
                view.documents, view.flagged, view.model, view.last_ingest
            ) + render.review_html(view.unreviewed, view.flagged)
        return why + body + render.feedback_html(self.feedback.read(), self.feedback.path.name)

    def panel_for(self, password: str, request: gr.Request) -> str:
        """Opening the Index panel: the curator's view behind the admin check, else titles."""
        if self.admin.allows(password, client_of(request)):
            return self.curator_panel()
        return self.titles()

    def curator_view(self, password: str, request: gr.Request) -> tuple[str, str]:
        """The Curator view button: (message, panel)."""
        why = self.admin.check(password, client_of(request))
        return (refused(why), self.titles()) if why else ("", self.curator_panel())

    def mark_reviewed(self, password: str, request: gr.Request) -> tuple[str, str]:
        """Mark every document reviewed: (message, panel)."""
        why = self.admin.check(password, client_of(request))
        if why:
            return refused(why), self.titles()
        try:
            fresh = self.index.mark_reviewed()
        except OSError as exc:
            return f"<p><strong>Not saved:</strong> {render.doc_text(str(exc))}</p>", (
                self.curator_panel()
            )
        note = (
            f"<p>Marked reviewed ({fresh} new or changed document{'s' if fresh != 1 else ''}).</p>"
        )
        return note, self.curator_panel()

    def reingest(
        self,
        password: str,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> tuple[str, str]:
        """Re-ingest the corpus, then check the new suggestions: (report, panel)."""
        why = self.admin.check(password, client_of(request))
        if why:
            return refused(why), self.titles()

        def step(done: int, total: int) -> None:
            progress((done, total), desc="embedding", unit="texts")

        progress(0, desc="scanning the corpus")
        try:
            report = self.index.reingest(step)
            progress(1, desc="checking the suggested questions")
            self.assistant.check_suggestions()
        except (StoreError, CorpusError, OSError) as exc:
            failed = f"<p><strong>Re-ingest failed:</strong> {render.doc_text(str(exc))}</p>"
            return failed, self.curator_panel()
        return render.report_html(report), self.curator_panel()

    def run_evals(self, password: str, request: gr.Request) -> str:
        """Run the held-out eval split (in a child process): its summary."""
        why = self.admin.check(password, client_of(request))
        if why:
            return refused(why)
        try:
            return render.evals_html(self.evals.run())
        except RuntimeError as exc:
            return f"<p><strong>The eval run failed:</strong> {render.doc_text(str(exc))}</p>"

    def examples(self) -> tuple[str, ...]:
        """Questions for an empty chat, each one the engine has checked it answers."""
        return self.assistant.suggestions([])

    # -- the layout -------------------------------------------------------------------------

    def build(self) -> gr.Blocks:
        """The Blocks app: chat, the document viewer, the Index panel, and the /ask endpoint."""
        admin = self.admin
        with gr.Blocks(title=TITLE) as demo:
            gr.HTML(  # the full disclaimer, once, at the top; each reply has a short line
                f"<header><h1>{html.escape(TITLE)}</h1><p>Answers only from its documents, "
                "with numbered sources you can tap.</p></header>"
                f"<div id='disclaimer'><p>⚕️ {html.escape(DISCLAIMER)}</p></div>",
                elem_id="intro",
            )
            if self.degraded:  # the details (paths, errors) are the curator's: see the Index panel
                gr.HTML(
                    "<div class='degraded' role='status'><strong>Degraded:</strong> the documents "
                    "could not be brought up to date, so answers come from the index as it was."
                    "</div>",
                    elem_id="degraded",
                )
            history = gr.State([])
            answers = gr.State({})
            generator = gr.HTML(
                self.show_llm(True), elem_id="generator", visible=self.assistant.llm is not None
            )
            use_llm = gr.Checkbox(
                value=self.assistant.llm is not None,
                label="Use the LLM (untick for quotes only)",
                visible=self.assistant.llm is not None,
                elem_id="use-llm",
            )
            chat = gr.Chatbot(  # replies are HTML built from escaped parts: no markdown, no math
                label="Conversation",
                show_label=False,
                elem_id="chat",
                height="62vh",
                min_height=260,
                autoscroll=False,  # ui/static/app.js scrolls to the start of each new reply
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
                    placeholder="Ask a question…",
                    elem_id="question",
                    scale=5,
                    lines=1,
                    max_lines=4,
                    max_length=MAX_QUESTION_CHARS,
                )
                send = gr.Button("Send", variant="primary", elem_id="send", scale=1, min_width=72)
            examples = self.examples()
            with gr.Row(elem_id="examples"):
                clear = gr.Button("New chat", elem_id="new-chat", size="sm", variant="secondary")
                example_buttons = [
                    gr.Button(text, size="sm", elem_classes=["example"]) for text in examples
                ]
            status = gr.HTML("", elem_id="announce")
            with gr.Accordion(
                "Document", open=True, visible=False, elem_id="document-panel"
            ) as panel:
                document = gr.HTML("", elem_id="document")
            open_request = gr.Textbox(
                visible="hidden", elem_id="open-doc", label="document to open"
            )
            with gr.Accordion("Index", open=False, elem_id="index-panel") as index_accordion:
                index_info = gr.HTML(self.titles(), elem_id="index-info")
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
                        "Re-ingest and evals are disabled: the app is bound to a non-loopback "
                        "address and `RAG_ADMIN_PASSWORD` is not set."
                    )
                report = gr.HTML("", elem_id="ingest-report")
                evals_button = gr.Button(
                    "Run evals", elem_id="run-evals", interactive=admin.enabled, size="sm"
                )
                eval_summary = gr.HTML("", elem_id="eval-summary")

            private = {"api_visibility": "private"}
            outputs = [question, chat, history, answers, status]
            gr.on(  # a question sent while an answer streams is asked right after it, not dropped
                [question.submit, send.click],
                self.respond,
                [question, chat, history, answers, use_llm],
                outputs,
                trigger_mode="always_last",
                **private,
            ).then(self.show_llm, use_llm, generator, **private)
            for button, text in zip(example_buttons, examples, strict=True):  # sent at once

                def ask_example(
                    chat: list[dict], history: list[dict], answers: dict, use_llm: bool, text=text
                ) -> Iterator[tuple]:
                    yield from self.respond(text, chat, history, answers, use_llm)

                button.click(
                    ask_example, [chat, history, answers, use_llm], outputs, **private
                ).then(self.show_llm, use_llm, generator, **private)
            reset = [chat, history, answers, question, status, panel, document]
            clear.click(self.new_chat, outputs=reset, **private)
            chat.clear(self.new_chat, outputs=reset, **private)  # the same, from the bin
            chat.like(self.judge, [answers], None, **private)
            use_llm.change(self.show_llm, use_llm, generator, **private)
            index_accordion.expand(self.panel_for, [password], index_info, **private)
            curator_button.click(self.curator_view, [password], [report, index_info], **private)
            reviewed_button.click(self.mark_reviewed, [password], [report, index_info], **private)
            open_request.change(
                self.open_document, open_request, [panel, document], **private
            ).then(None, js=SCROLL_TO_DOCUMENT)
            evals_button.click(
                self.run_evals, [password], eval_summary, concurrency_limit=1, **private
            )
            reingest_button.click(
                self.reingest, [password], [report, index_info], concurrency_limit=1, **private
            )
            gr.api(self.ask, api_name="ask", concurrency_limit=ASK_CONCURRENCY)
        return demo
