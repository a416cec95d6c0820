"""The LCEL chain: normalise -> triage -> intent -> retrieve -> score -> gate -> compose -> check.

Every decision on the answer path is made from evidence scores: the triage model, the nearest
examples of small talk and of requests for an overview, and the calibrated gate. No single
word of a question decides anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from chromadb.errors import ChromaError
from langchain_core.runnables import Runnable, RunnableBranch, RunnableLambda, RunnablePassthrough

from assistant.answer import (
    Answerability,
    Candidate,
    Draft,
    ExtractiveGenerator,
    Gate,
    Generator,
    candidates,
    heading,
    judge,
)
from assistant.inputs import MAX_QUESTION_CHARS, bounded_history, normalise, problem
from assistant.records import Answer, Claim
from assistant.retrieval import HybridRetriever, IndexMismatchError, IndexMissingError
from assistant.safety import DISCLAIMER, Triage, is_injection
from corpus.embeddings import Embedder
from corpus.models import CrossEncoder, SentenceEncoder
from corpus.records import Chunk
from corpus.settings import Settings
from corpus.store import Store, StoreError

log = logging.getLogger(__name__)

FOLLOW_UP_MARGIN = 0.15  # the question read with the last one must beat it read alone by this
SUGGESTIONS = 3
OVERVIEW_SECTIONS = 6  # sections named per document in an overview; the rest are counted
SUGGESTION_REACH = 40  # chunks either side searched for other sections (not the whole index)
PASSAGES = 8  # retrieved passages whose sentences are candidates
READ_CHARS = 2 * MAX_QUESTION_CHARS  # read of an over-long message (triage still sees it)

# Examples of messages that are not questions about the documents: small talk, and requests for
# an overview. A message is read as one of them when its nearest example is this close in
# meaning (bge-small cosine) and the gate does not find an answer first.
INTENT_EXAMPLES: dict[str, tuple[str, ...]] = {
    "smalltalk": (
        "hi",
        "hello there",
        "hey, how are you?",
        "good morning",
        "thanks!",
        "thank you so much, that helps",
        "ok cool",
        "great, got it",
        "bye",
        "you're awesome",
    ),
    "overview": (
        "what do these documents cover?",
        "summarize the documents",
        "what topics can I ask you about?",
        "what are your sources?",
        "give me an overview of what you know",
        "what is in your articles?",
    ),
}
INTENT_SIMILARITY = 0.8

Turn = Mapping[str, str]


@dataclass(frozen=True)
class Evidence:
    """What the documents offer for one reading of a question."""

    query: str
    scored: tuple[Candidate, ...]
    verdict: Answerability


def check_citations(draft: Draft) -> Draft:
    """Keep only claims whose sources all resolve to verbatim quotes, and only the sources used."""
    by_n = {c.n: c for c in draft.citations}
    verified = {
        n for n, c in by_n.items() if " ".join(c.quote.split()) in " ".join(c.passage.split())
    }
    claims = tuple(c for c in draft.claims if c.cites and set(c.cites) <= verified)
    used = {n for c in claims for n in c.cites}
    return replace(draft, claims=claims, citations=tuple(c for c in draft.citations if c.n in used))


def follow_up_query(question: str, history: Sequence[Turn]) -> str | None:
    """The question read with the user's previous one, or None without a previous one."""
    previous = [t["content"] for t in history if t.get("role") == "user" and t.get("content")]
    return f"{previous[-1]} {question}" if previous else None


class Assistant:
    """Question (+ history) -> grounded Answer. Call `warm_up()` once, then `ask()` many times."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        embedder: Embedder | None = None,
        llm: Generator | None = None,
        reranker: Any = None,
        encoder: Any = None,
        gate: Gate | None = None,
        triage: Triage | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._embedder = embedder or Embedder.from_settings(settings)
        self.reranker = reranker or CrossEncoder()
        self.encoder = encoder or SentenceEncoder()
        self.gate = gate
        self.triage = triage or Triage(self.encoder)
        self.extractive = ExtractiveGenerator(gate)
        self.llm: Any = llm
        if llm is None and settings.generator != "extractive":
            from assistant.llm import LLMGenerator, make_chat_model

            label = f"the LLM ({settings.llm_model or settings.generator})"
            self.llm = LLMGenerator(make_chat_model(settings), self._embedder, label)
        self._retriever: HybridRetriever | None = None
        self._chain: Runnable | None = None
        self._intents: dict[str, np.ndarray] = {}
        self._overview: tuple[str, str] = ("", "")  # (index generation, text)

    @property
    def retriever(self) -> HybridRetriever:
        """The hybrid retriever (a LangChain BaseRetriever) over this index."""
        if self._retriever is None:
            self._store = self._store or Store.open(self.settings)
            self._retriever = HybridRetriever(store=self._store, embedder=self._embedder)
        return self._retriever

    @property
    def store(self) -> Store:
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
            return error_answer(str(exc))
        if isinstance(exc, IndexMissingError | StoreError | ChromaError):
            self.reopen()
            return error_answer(
                "I can't read the document index right now "
                f"({_short(exc)}). Re-ingest the documents (the Index panel's Re-ingest button, "
                "or `make ingest`) and ask again."
            )
        return error_answer(f"Something went wrong while answering ({type(exc).__name__}).")

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

    def intent(self, question: str) -> str | None:
        """'smalltalk' or 'overview' when the message is closest in meaning to those examples."""
        if not self._intents:
            self._intents = {
                name: self.encoder.encode(list(examples))
                for name, examples in INTENT_EXAMPLES.items()
            }
        vector = self.encoder.encode([question])[0]
        best = {name: float(np.max(vectors @ vector)) for name, vectors in self._intents.items()}
        name = max(best, key=best.__getitem__)
        return name if best[name] >= INTENT_SIMILARITY else None

    def respond(self, state: dict[str, Any]) -> Answer:
        """Small talk, an overview, or the grounded answer, whichever the evidence supports."""
        question, history = state["question"], state["history"]
        mode = state.get("mode")
        alone = self.evidence(question, mode=mode)
        chosen = alone
        if (
            not alone.verdict.answerable or alone.verdict.probability < 1.0 - FOLLOW_UP_MARGIN
        ) and (joined := follow_up_query(question, history)):
            together = self.evidence(joined, mode=mode)
            if together.verdict.answerable and (
                together.verdict.probability >= alone.verdict.probability + FOLLOW_UP_MARGIN
            ):
                chosen = together
        if not chosen.verdict.answerable:
            intent = self.intent(question)
            if intent == "smalltalk":
                return self.small_talk()
            if intent == "overview":
                return self.overview()
            return self.refusal(alone)
        return self.grounded(state, chosen)

    def grounded(self, state: dict[str, Any], evidence: Evidence) -> Answer:
        """Compose and check the answer from evidence the gate accepted."""
        generator: Any = self.extractive
        if state.get("use_llm"):
            generator = self.llm
            if is_injection(state["question"]):  # only an LLM can be instructed
                draft = self.extractive.compose(state["question"], evidence.scored)
                draft = replace(
                    draft, made_by="extractive (fallback: the question reads as instructions)"
                )
                return self._answered(check_citations(draft), evidence.query)
        draft = check_citations(generator.compose(state["question"], evidence.scored))
        if not draft.citations:
            return self.refusal(evidence)
        return self._answered(draft, evidence.query)

    def _answered(self, draft: Draft, query: str) -> Answer:
        return Answer(
            "answered",
            draft.text,
            draft.citations,
            DISCLAIMER,
            query=query,
            generator=draft.made_by,
            suggestions=self.suggestions([c.chunk_id for c in draft.citations]),
            claims=draft.claims,
        )

    def refusal(self, evidence: Evidence) -> Answer:
        """Say the documents don't answer, what they say closest to it, and what they do answer."""
        near = _nearest(evidence)
        if near is not None:
            where = f"the {near.kind} “{near.title}”"
            if near.section and near.section != near.title:
                where = f"the section “{near.section}” of {where}"
            head = f"My documents don't answer that. The closest they come is {where}."
        else:
            head = "My documents don't answer that."
        suggestions = self.suggestions([near.id] if near is not None else [])
        text = head + (" You could ask: " + " · ".join(suggestions) if suggestions else "")
        return Answer(
            "refused",
            text,
            (),
            DISCLAIMER,
            query=evidence.query,
            reason="not-covered",
            suggestions=suggestions,
            claims=(Claim(head, ()),),
        )

    def suggestions(self, chunk_ids: Sequence[str]) -> tuple[str, ...]:
        """Questions the documents answer, from the sections nearest these passages."""
        snap = self.retriever.snapshot()
        chunks = snap.chunks
        around = [snap.position[i] for i in chunk_ids if i in snap.position] or [0]
        asked = {heading(chunks[i]) for i in around}
        found: list[str] = []
        for distance in range(1, SUGGESTION_REACH):
            for j in (i + sign * distance for i in around for sign in (1, -1)):
                section = chunks[j].section if 0 <= j < len(chunks) else None
                if section and section != chunks[j].title and section not in asked:
                    asked.add(section)
                    found.append(f"What does the {chunks[j].kind} say about “{section}”?")
                if len(found) == SUGGESTIONS:
                    return tuple(found)
        return tuple(found)

    def small_talk(self) -> Answer:
        """A short friendly reply that says what can be asked."""
        text = "Happy to help! " + self.overview_sentence()
        return Answer(
            "answered", text, (), DISCLAIMER, reason="smalltalk", suggestions=self.suggestions([])
        )

    def overview(self) -> Answer:
        """Each document's title, kind and sections, read from the live index."""
        snap = self.retriever.snapshot()
        if self._overview[0] != snap.generation:
            self._overview = (snap.generation, describe(snap.chunks))
        return Answer(
            "answered",
            self._overview[1],
            (),
            DISCLAIMER,
            reason="overview",
            suggestions=self.suggestions([]),
        )

    def overview_sentence(self) -> str:
        """One sentence naming the documents by title and kind."""
        entries = {c.doc_id: c for c in self.retriever.snapshot().chunks}
        named = [
            f"“{c.title}” (a {c.kind})" for c in sorted(entries.values(), key=lambda c: c.title)
        ]
        if not named:
            return "No documents are indexed yet."
        return f"I answer questions from my documents: {_join(named, 'and')}."


def _nearest(evidence: Evidence) -> Chunk | None:
    """The passage whose sentence came closest to answering, if any did at all."""
    if not evidence.scored:
        return None
    best = max(evidence.scored, key=lambda c: c.relevance)
    return best.passage.chunk if best.passage.dense >= 0.25 else None


def describe(chunks: Sequence[Chunk]) -> str:
    """An overview: each document's title and kind, and the sections it has."""
    documents: dict[str, list[Chunk]] = {}
    for c in chunks:
        documents.setdefault(c.doc_id, []).append(c)
    if not documents:
        return "No documents are indexed yet."
    lines = [f"I answer from {len(documents)} document{'s' if len(documents) > 1 else ''}:"]
    for parts in sorted(documents.values(), key=lambda p: p[0].title):
        sections = list(
            dict.fromkeys(c.section for c in parts if c.section and c.section != c.title)
        )
        shown = "; ".join(sections[:OVERVIEW_SECTIONS])
        more = len(sections) - OVERVIEW_SECTIONS
        about = f": {shown}" + (f"; and {more} more sections" if more > 0 else "") if shown else ""
        lines.append(f"- “{parts[0].title}” (a {parts[0].kind}){about}.")
    return "\n".join(lines)


def build_chain(assistant: Assistant) -> Runnable:
    """Wire the steps as LCEL runnables; the branch order is the safety order.

    Any readable text is triaged first, even a message too long or malformed to answer: an
    emergency gets its guidance before any complaint about the form of the message.
    """
    screen = RunnablePassthrough.assign(
        urgency=RunnableLambda(
            lambda s: (
                assistant.triage(s["question"])
                if isinstance(s["question"], str) and s["question"].strip()
                else None
            )
        ),
    )
    return screen | RunnableBranch(
        (
            lambda s: s["urgency"] is not None,
            RunnableLambda(lambda s: urgent_answer(s["urgency"].message, s["urgency"].kind)),
        ),
        (lambda s: s["problem"] is not None, RunnableLambda(lambda s: error_answer(s["problem"]))),
        RunnableLambda(assistant.respond),
    )


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def error_answer(message: str) -> Answer:
    """Input that is not a question."""
    return Answer("error", message, (), DISCLAIMER, error=message)


def urgent_answer(message: str, kind: str = "emergency") -> Answer:
    """Emergency guidance only: no retrieval, no dosing."""
    return Answer(
        "urgent",
        f"**This may be an emergency.** {message}",
        (),
        DISCLAIMER,
        reason=kind,
        claims=(Claim(message, ()),),
    )


def _join(items: Sequence[str], conjunction: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {conjunction} " + items[-1]


def _with_latency(answer: Answer, started: float) -> Answer:
    return replace(answer, latency_ms=(time.perf_counter() - started) * 1000)
