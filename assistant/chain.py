"""The Assistant: one question's path, read top to bottom in `Assistant._answer`.

door (normalise, bound) -> triage -> form -> language -> sure small talk -> evidence (retrieve,
read; a follow-up also read with the previous question) -> gate -> compose (quotes, or a checked
LLM) -> reply, or an overview, small talk or a refusal. Each step returns early with its own
reply. LangChain is the retriever's adapter (`HybridRetriever`, a `BaseRetriever`) and the LLM's
prompt chain (`assistant.llm`).

Every decision on the answer path is made from evidence scores: the triage model, a classifier
of small talk and of requests for an overview (`intent.py`), and the calibrated gate
(`answer.py`). The wording of every reply lives in `replies.py`; renderers (`render.py`) format
the typed Answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from chromadb.errors import ChromaError

from assistant import replies
from assistant.answer import (
    Answerability,
    Candidate,
    ExtractiveGenerator,
    Gate,
    Generator,
    candidates,
    heading,
    judge,
)
from assistant.citations import check_citations, claim_text
from assistant.followup import follow_up_query, joined_is_better, worth_joining
from assistant.inputs import MAX_QUESTION_CHARS, Turn, bounded_history, normalise, problem
from assistant.intent import Intents
from assistant.language import LanguageCheck
from assistant.llm import LLMGenerator
from assistant.records import Answer, Fallback
from assistant.referral import WHO, Referrals
from assistant.retrieval import HybridRetriever, IndexMismatchError, IndexMissingError
from assistant.safety import Triage, is_injection
from assistant.sections import Sections
from assistant.suggest import Suggestions, nearest
from corpus import embeddings
from corpus.models import CrossEncoder, SentenceEncoder
from corpus.protocols import Embedder, Index, Reranker, TextEncoder
from corpus.records import Chunk
from corpus.sentences import sentences
from corpus.store import Store, StoreError
from settings import Settings

log = logging.getLogger(__name__)

PASSAGES = 8  # retrieved passages whose sentences are candidates
CAUTION_FLOOR = 0.2  # a caution quoted for a question about safety: its sentence probability
MAX_CAUTIONS = 2
MAX_PARTS = 3  # a message of up to this many sentences also has each read alone
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
        self.referrals = Referrals(self.encoder)
        self.sections = Sections(self.encoder)
        self.extractive = ExtractiveGenerator(gate)
        self.llm: Generator | None = llm
        if llm is None and settings.generator != "extractive":
            from assistant.llm import make_chat_model

            label = f"the LLM ({settings.llm_model or settings.generator})"
            self.llm = LLMGenerator(
                make_chat_model(settings), self._embedder, label, fallback=self.extractive
            )
        self._retriever: HybridRetriever | None = None
        self._overview: tuple[str, str] = ("", "")  # (index generation, text)
        self.suggester = Suggestions(settings.index_dir)
        self._checking = threading.local()  # set while this thread checks suggestions

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
        self.intent.warm_up()
        self.referrals.warm_up()
        self.sections.warm_up()
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
        self.ask("warm up")  # first-call costs (onnxruntime, chroma) are paid here

    def check_suggestions(self) -> int:
        """Ask every candidate suggestion of this index generation once (cached beside the
        index; a few seconds per generation); how many the engine answers. The chat calls it
        after `warm_up` and after a re-ingest; until then answers suggest nothing."""
        snap = self.retriever.snapshot()
        checked = self.suggester.checked(snap.generation)
        if checked is None:
            self._checking.active = True  # the checking answers suggest nothing themselves
            try:
                ask = lambda q: self.ask(q, use_llm=False)  # noqa: E731
                checked = self.suggester.check(snap.generation, snap.chunks, ask)
            finally:
                self._checking.active = False
        return len(checked)

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
        on_text: Callable[[str], None] | None = None,
    ) -> Answer:
        """Answer one question; never raises for bad input (status 'error' instead).

        With an LLM configured, `use_llm=False` answers extractively for this question; `mode`
        picks the retrieval mode for this question only (evals compare them); `on_text` sees the
        LLM's draft as it streams in, before the claim check.
        """
        started = time.perf_counter()
        try:
            answer = self._answer(question, history, use_llm and bool(self.llm), mode, on_text)
        except Exception as exc:  # noqa: BLE001 - a user gets a message, never a stack trace
            answer = self._failure(exc)
        return _with_latency(answer, started)

    def _answer(
        self,
        question: str,
        history: Sequence[Turn],
        use_llm: bool,
        mode: str | None,
        on_text: Callable[[str], None] | None = None,
    ) -> Answer:
        """The path, in safety order: door -> triage -> form -> language -> sure small talk ->
        evidence (the question alone, or read with the previous one) -> gate -> compose; else
        an overview, small talk or a refusal."""
        message = normalise(question) if isinstance(question, str) else question
        turns = bounded_history(history)
        # Triage reads any readable text first, even a message too long or malformed to
        # answer: an emergency gets its guidance before any complaint about the message.
        readable = isinstance(message, str) and bool(message.strip())
        if readable and (urgency := self.triage(message, turns)) is not None:
            # in another language, which guidance fits is a guess: give every number
            foreign = self.language.foreign(message[:MAX_QUESTION_CHARS])
            text = replies.ENGLISH_ONLY if foreign else urgency.message
            return replies.urgent_answer(text, urgency.kind)
        if (why := problem(question, history)) is not None:
            return replies.error_answer(why)
        asked = message[:READ_CHARS]
        if self.language.foreign(asked, last_said(turns)):
            return replies.english_only(asked)
        intent = self.intent(asked, conversation=bool(last_said(turns)))
        if intent == "smalltalk" and self.intent.sure_smalltalk(asked):
            return self.small_talk()  # "thanks!" is never read: the reader would find it quotes
        alone = self.evidence(asked, mode=mode)
        chosen = alone
        if worth_joining(alone.verdict) and (joined := follow_up_query(asked, turns)):
            together = self.evidence(joined, mode=mode, said=last_said(turns, "assistant"))
            if joined_is_better(alone.verdict, together.verdict):
                chosen = together
        if chosen.verdict.answerable:
            return self.grounded(asked, chosen, turns, use_llm, on_text)
        if intent == "overview":
            return self.overview()
        if intent == "smalltalk":  # "hello there, can you help me?": a greeting, not a refusal
            return self.small_talk()
        return self.refusal(alone, turns)

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

    # -- the steps ------------------------------------------------------------------------

    def evidence(
        self, query: str, *, k: int | None = None, mode: str | None = None, said: str = ""
    ) -> Evidence:
        """Retrieve passages for a query and score their sentences; the gate's verdict on them.

        `said`: the previous answer, when a follow-up is read with the previous question. A
        follow-up asks for something new, so a sentence that answer already quoted is not its
        answer ("what about ibd?" after the IBS benefit must not repeat the IBS benefit).
        """
        gate = self._calibrated()
        retriever = self.retriever
        if not retriever.store.readable():
            raise StoreError(f"the index files at {self.settings.index_dir} are gone")
        qvec = np.asarray(self._embedder.embed_query(query), dtype=np.float32)  # embedded once
        passages = retriever.passages(query, k=k or PASSAGES, mode=mode, qvec=qvec)
        scored = candidates(
            query,
            qvec,
            passages,
            retriever.store,
            retriever.snapshot().vocabulary,
            self.reranker,
            gate,
        )
        # Dropped after reading, not before: read first, a reference line keeps its shortlist
        # slot, and dropping it earlier let "What dose of melatonin is safe during pregnancy?"
        # (held-out) be answered with the adult dose.
        listed = {
            c.sentence.id
            for c in scored
            if self.sections.heading_is("references", heading(c.passage.chunk))
        }
        if listed and not self.sections.asks_sources(query):  # a reference line is not a claim
            scored = [c for c in scored if c.sentence.id not in listed]
        if said:  # `said` went through the door (normalised), so the quote goes through it too
            scored = [c for c in scored if normalise(claim_text(c.sentence.text)) not in said]
        return Evidence(query, tuple(scored), judge(scored, gate))

    def _calibrated(self) -> Gate:
        """The gate, loaded from its calibration file on first use."""
        if self.gate is None:
            self.gate = Gate.load()
            self.extractive.gate = self.gate  # the LLM's fallback is this same generator
        return self.gate

    def small_talk(self) -> Answer:
        """A short friendly reply naming what the documents are, with starter questions."""
        return replies.small_talk(self.retriever.snapshot().chunks, self.suggestions([]))

    def overview(self) -> Answer:
        """What the documents cover (described once per index generation)."""
        snap = self.retriever.snapshot()
        if self._overview[0] != snap.generation:
            self._overview = (snap.generation, replies.describe(snap.chunks))
        return replies.overview(self._overview[1], self.suggestions([]))

    def grounded(
        self,
        question: str,
        evidence: Evidence,
        history: Sequence[Turn],
        use_llm: bool,
        on_text: Callable[[str], None] | None = None,
    ) -> Answer:
        """Compose and check the answer from evidence the gate accepted."""
        if use_llm and self.llm is not None:
            if is_injection(question):  # only an LLM can be instructed
                why = Fallback("instructions", "the question reads as instructions")
                draft = replace(self.extractive.compose(question, evidence.scored), fallback=why)
            elif on_text is not None and isinstance(self.llm, LLMGenerator):
                draft = self.llm.compose(question, evidence.scored, on_text)
            else:
                draft = self.llm.compose(question, evidence.scored)
        else:
            draft = self.extractive.compose(
                question,
                evidence.scored,
                self.cautions_for(question, evidence),
                self.part_answers(question, evidence),
            )
        draft = check_citations(draft)
        if not draft.citations:
            return self.refusal(evidence, history)
        cited = [c.chunk_id for c in draft.citations]
        return replies.answered(draft, evidence.query, self.suggestions(cited, question))

    def cautions_for(self, question: str, evidence: Evidence) -> list[Candidate]:
        """For a question about safety, the best candidates from the documents' cautions."""
        if not self.sections.asks_safety(question):
            return []
        found = [
            c
            for c in evidence.scored
            if c.probability >= CAUTION_FLOOR
            and self.sections.heading_is("cautions", heading(c.passage.chunk))
        ]
        return found[:MAX_CAUTIONS]

    def part_answers(self, question: str, evidence: Evidence) -> list[Candidate]:
        """For a message of two or three sentences read alone, the best sentence for each that
        the gate answers alone too ("wat r prebiotics exactly?? and examples pls" asks two
        things). Only after the whole message was answered: a part never decides."""
        parts = sentences(question)
        if evidence.query != question or not 1 < len(parts) <= MAX_PARTS:
            return []
        read = [self.evidence(part) for part in parts]
        return [e.scored[0] for e in read if e.verdict.answerable and e.scored]

    def refusal(self, evidence: Evidence, history: Sequence[Turn]) -> Answer:
        """The documents don't answer: what they say nearest, and who to ask instead."""
        near = evidence.nearest()
        who = WHO[self.referrals(evidence.query, last_said(history))] if near is not None else ""
        around = [near.id] if near is not None else []
        return replies.refusal(evidence.query, near, self.suggestions(around), who)

    def suggestions(self, chunk_ids: Sequence[str], asked: str = "") -> tuple[str, ...]:
        """Questions the engine has checked it answers, nearest these passages (with none, a
        starter per document); none before `check_suggestions` has run for this index."""
        if getattr(self._checking, "active", False):
            return ()
        snap = self.retriever.snapshot()
        checked = self.suggester.checked(snap.generation)
        return () if checked is None else nearest(checked, snap.position, chunk_ids, asked)


def last_said(history: Sequence[Turn], role: str = "user") -> str:
    """The previous turn of the user (or the assistant) in the (bounded) history, or ''."""
    return next((t["content"] for t in reversed(history) if t.get("role") == role), "")


def _with_latency(answer: Answer, started: float) -> Answer:
    return replace(answer, latency_ms=(time.perf_counter() - started) * 1000)
