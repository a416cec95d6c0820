"""The Assistant façade and its LCEL chain: normalise -> triage -> retrieve -> gate -> compose.

Every decision on the answer path is made from evidence scores: the triage model, the nearest
examples of small talk and of requests for an overview (`intent.py`), and the calibrated gate
(`answer.py`). The wording of every reply lives in `replies.py`; renderers (`render.py`) format
the typed Answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from chromadb.errors import ChromaError
from langchain_core.runnables import Runnable, RunnableBranch, RunnableLambda, RunnablePassthrough

from assistant import replies
from assistant.answer import (
    Answerability,
    Candidate,
    ExtractiveGenerator,
    Gate,
    Generator,
    candidates,
    judge,
)
from assistant.citations import check_citations
from assistant.followup import Turn, follow_up_query, joined_is_better, worth_joining
from assistant.inputs import MAX_QUESTION_CHARS, bounded_history, normalise, problem
from assistant.intent import Intents
from assistant.language import LanguageCheck
from assistant.records import Answer, Fallback
from assistant.retrieval import HybridRetriever, IndexMismatchError, IndexMissingError
from assistant.safety import Triage, is_injection
from corpus import embeddings
from corpus.models import CrossEncoder, SentenceEncoder
from corpus.protocols import Embedder, Index, Reranker, TextEncoder
from corpus.records import Chunk
from corpus.store import Store, StoreError
from settings import Settings

log = logging.getLogger(__name__)

PASSAGES = 8  # retrieved passages whose sentences are candidates
READ_CHARS = 2 * MAX_QUESTION_CHARS  # read of an over-long message (triage reads all of it)


@dataclass(frozen=True)
class Evidence:
    """What the documents offer for one reading of a question."""

    query: str
    scored: tuple[Candidate, ...]
    verdict: Answerability

    def nearest(self) -> Chunk | None:
        """The passage whose sentence came closest to answering, if any came close at all."""
        if not self.scored:
            return None
        best = max(self.scored, key=lambda c: c.relevance)
        return best.passage.chunk if best.passage.dense >= 0.25 else None


class Assistant:
    """Question (+ history) -> grounded Answer. Call `warm_up()` once, then `ask()` many times."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Index | None = None,
        embedder: Embedder | None = None,
        llm: Generator | None = None,
        reranker: Reranker | None = None,
        encoder: TextEncoder | None = None,
        gate: Gate | None = None,
        triage: Triage | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._embedder = embedder or embeddings.Embedder.from_settings(settings)
        self.reranker: Reranker = reranker or CrossEncoder()
        self.encoder: TextEncoder = encoder or SentenceEncoder()
        self.gate = gate
        self.triage = triage or Triage(self.encoder)
        self.language = LanguageCheck()
        self.intent = Intents(self.encoder)
        self.extractive = ExtractiveGenerator(gate)
        self.llm: Generator | None = llm
        if llm is None and settings.generator != "extractive":
            from assistant.llm import LLMGenerator, make_chat_model

            label = f"the LLM ({settings.llm_model or settings.generator})"
            self.llm = LLMGenerator(make_chat_model(settings), self._embedder, label)
        self._retriever: HybridRetriever | None = None
        self._chain: Runnable | None = None
        self._overview: tuple[str, str] = ("", "")  # (index generation, text)

    @property
    def retriever(self) -> HybridRetriever:
        """The hybrid retriever (a LangChain BaseRetriever) over this index."""
        if self._retriever is None:
            self._store = self._store or Store.open(self.settings)
            self._retriever = HybridRetriever(store=self._store, embedder=self._embedder)
        return self._retriever

    @property
    def store(self) -> Index:
        """The index this assistant reads."""
        return self.retriever.store

    def reopen(self) -> None:
        """Drop the index handles; the next question opens the index afresh (after a rebuild)."""
        self._store = None
        self._retriever = None

    def document_of(self, chunk_id: str) -> list[Chunk]:
        """The live chunks of the document holding this chunk, in reading order."""
        chunks = self.retriever.snapshot().chunks
        source = next((c.source for c in chunks if c.id == chunk_id), None)
        return sorted((c for c in chunks if c.source == source), key=lambda c: c.start)

    def warm_up(self) -> None:
        """Load the models and the gate, open the index, build BM25; IndexMissingError if empty."""
        self._calibrated()
        self.reranker.warm_up()
        self.triage.warm_up()
        self.language.warm_up()
        self.retriever.warm_up()
        if not self.retriever.snapshot().chunks:
            raise IndexMissingError(
                f"no index at {self.settings.index_dir}: run `make ingest` (python -m ingest) first"
            )
        if self.retriever.store.profile().endswith("|search-only"):
            raise IndexMissingError(
                f"the index at {self.settings.index_dir} was built with --search-only: it ranks "
                "documents (python -m assistant search) but holds no sentences to quote; "
                "re-ingest without --search-only to ask questions"
            )
        self.ask("warm up")  # first-call costs (onnxruntime, chroma, LCEL) are paid here

    @property
    def chain(self) -> Runnable:
        """The LCEL chain from {question, history} to an Answer."""
        if self._chain is None:
            self._chain = build_chain(self)
        return self._chain

    @property
    def generator_name(self) -> str:
        """What writes answers by default: 'extractive', or the LLM's description."""
        return "extractive" if self.llm is None else getattr(self.llm, "label", "LLM")

    def ask(
        self,
        question: str,
        history: Sequence[Turn] = (),
        *,
        use_llm: bool = True,
        mode: str | None = None,
    ) -> Answer:
        """Answer one question; never raises for bad input (status 'error' instead).

        The question and history are normalised and bounded here, once. With an LLM configured,
        `use_llm=False` answers extractively for this question.
        """
        started = time.perf_counter()
        state = {
            "question": normalise(question[:READ_CHARS]) if isinstance(question, str) else question,
            "message": normalise(question) if isinstance(question, str) else question,  # triage
            "problem": problem(question, history),
            "history": bounded_history(history),
            "use_llm": use_llm and bool(self.llm),
            "mode": mode,  # retrieval mode for this question only (evals compare them)
        }
        try:
            answer: Answer = self.chain.invoke(state)
        except Exception as exc:  # noqa: BLE001 - a user gets a message, never a stack trace
            answer = self._failure(exc)
        return _with_latency(answer, started)

    def _failure(self, exc: Exception) -> Answer:
        """An answer saying what broke; an unreadable index is reopened on the next question."""
        log.error("error answering a question: %s: %s", type(exc).__name__, exc)
        if isinstance(exc, IndexMismatchError):
            return replies.error_answer(str(exc))
        if isinstance(exc, IndexMissingError | StoreError | ChromaError):
            self.reopen()
            return replies.error_answer(
                "I can't read the document index right now "
                f"({replies.short(exc)}). Re-ingest the documents (the Index panel's Re-ingest "
                "button, or `make ingest`) and ask again."
            )
        return replies.error_answer(f"Something went wrong while answering ({type(exc).__name__}).")

    # -- steps of the chain ---------------------------------------------------------------

    def evidence(self, query: str, *, k: int | None = None, mode: str | None = None) -> Evidence:
        """Retrieve passages for a query and score their sentences; the gate's verdict on them."""
        gate = self._calibrated()
        retriever = self.retriever
        if not retriever.store.readable():
            raise StoreError(f"the index files at {self.settings.index_dir} are gone")
        passages = retriever.passages(query, k=k or PASSAGES, mode=mode)
        qvec = np.asarray(self._embedder.embed_query(query), dtype=np.float32)
        scored = candidates(
            query,
            qvec,
            passages,
            retriever.store,
            retriever.snapshot().vocabulary,
            self.reranker,
            gate,
        )
        return Evidence(query, tuple(scored), judge(scored, gate))

    def _calibrated(self) -> Gate:
        """The gate, loaded from its calibration file on first use."""
        if self.gate is None:
            self.gate = Gate.load()
            self.extractive = ExtractiveGenerator(self.gate)
        return self.gate

    def respond(self, state: dict[str, Any]) -> Answer:
        """Small talk, an overview, or the grounded answer, whichever the evidence supports."""
        question, history = state["question"], state["history"]
        mode = state.get("mode")
        intent = self.intent(question)
        if intent == "smalltalk":  # "hi", "thanks!": the reader of issue 23 finds them quotes
            return replies.small_talk(self.retriever.snapshot().chunks, self.suggestions([]))
        alone = self.evidence(question, mode=mode)
        chosen = alone
        if worth_joining(alone.verdict) and (joined := follow_up_query(question, history)):
            together = self.evidence(joined, mode=mode)
            if joined_is_better(alone.verdict, together.verdict):
                chosen = together
        if chosen.verdict.answerable:
            return self.grounded(state, chosen)
        snap = self.retriever.snapshot()
        if intent == "overview":
            if self._overview[0] != snap.generation:
                self._overview = (snap.generation, replies.describe(snap.chunks))
            return replies.overview(self._overview[1], self.suggestions([]))
        near = alone.nearest()
        return replies.refusal(
            alone.query, near, self.suggestions([near.id] if near is not None else [])
        )

    def grounded(self, state: dict[str, Any], evidence: Evidence) -> Answer:
        """Compose and check the answer from evidence the gate accepted."""
        question = state["question"]
        if state.get("use_llm") and self.llm is not None:
            if is_injection(question):  # only an LLM can be instructed
                why = Fallback("instructions", "the question reads as instructions")
                draft = replace(self.extractive.compose(question, evidence.scored), fallback=why)
            else:
                draft = self.llm.compose(question, evidence.scored)
        else:
            draft = self.extractive.compose(question, evidence.scored)
        draft = check_citations(draft)
        if not draft.citations:
            near = evidence.nearest()
            return replies.refusal(
                evidence.query, near, self.suggestions([near.id] if near is not None else [])
            )
        return replies.answered(
            draft, evidence.query, self.suggestions([c.chunk_id for c in draft.citations])
        )

    def suggestions(self, chunk_ids: Sequence[str]) -> tuple[str, ...]:
        """Questions the documents answer, from the sections nearest these passages."""
        snap = self.retriever.snapshot()
        return replies.suggestions(snap.chunks, snap.position, chunk_ids)


def build_chain(assistant: Assistant) -> Runnable:
    """Wire the steps as LCEL runnables; the branch order is the safety order.

    Any readable text is triaged first, even a message too long or malformed to answer: an
    emergency gets its guidance before any complaint about the form of the message.
    """
    screen = RunnablePassthrough.assign(
        urgency=RunnableLambda(
            lambda s: (
                assistant.triage(s["message"], s["history"])
                if isinstance(s["message"], str) and s["message"].strip()
                else None
            )
        ),
    )
    return (
        screen
        | RunnableBranch(
            (
                lambda s: s["urgency"] is not None,
                RunnableLambda(  # in another language, which guidance fits is a guess: say all
                    lambda s: replies.urgent_answer(
                        replies.ENGLISH_ONLY
                        if assistant.language.foreign(s["message"][:2000])
                        else s["urgency"].message,
                        s["urgency"].kind,
                    )
                ),
            ),
            (
                lambda s: s["problem"] is not None,
                RunnableLambda(lambda s: replies.error_answer(s["problem"])),
            ),
            (
                lambda s: assistant.language.foreign(s["question"], last_said(s["history"])),
                RunnableLambda(lambda s: replies.english_only(s["question"])),
            ),
            RunnableLambda(assistant.respond),
        )
    )


def last_said(history: Sequence[Turn]) -> str:
    """The user's previous turn in the (bounded) history, or ''."""
    return next((t["content"] for t in reversed(history) if t.get("role") == "user"), "")


def _with_latency(answer: Answer, started: float) -> Answer:
    return replace(answer, latency_ms=(time.perf_counter() - started) * 1000)
