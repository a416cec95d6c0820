"""The LCEL chain: triage -> condense -> retrieve -> gate -> compose -> check -> disclaimer."""

from __future__ import annotations

import re
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from langchain_core.runnables import Runnable, RunnableBranch, RunnableLambda, RunnablePassthrough

from assistant.answer import Draft, ExtractiveGenerator, Generator, candidates, judge
from assistant.lexicon import key_terms, plain_to_document_words
from assistant.records import Answer
from assistant.retrieval import HybridRetriever, IndexMismatchError, IndexMissingError
from assistant.safety import DISCLAIMER, is_injection, triage
from corpus.embeddings import Embedder
from corpus.records import Chunk
from corpus.settings import Settings
from corpus.store import Store, StoreError

MAX_QUESTION_CHARS = 2000
_MARKER = re.compile(r"\[(\d+)\]")
_FOLLOW_UP = re.compile(
    r"^\s*(and|also|what about|how about|what if|but|so|then|same|ok(ay)?|why)\b|"
    r"\b(it|its|they|them|their|theirs|this|that|these|those|ones|one|he|she|there|such)\b",
    re.I,
)

Turn = Mapping[str, str]


def condense(question: str, history: Sequence[Turn]) -> str:
    """A standalone retrieval query: a short or pronoun-led follow-up borrows the last topic."""
    users = [str(t.get("content", "")) for t in history if t.get("role") == "user"]
    topic = ""
    for previous in users:  # each earlier question, itself condensed against the ones before it
        topic = _fold(previous, topic)
    return _fold(question, topic)


def _fold(question: str, topic: str) -> str:
    terms = key_terms(question)
    if not topic or (terms and not _FOLLOW_UP.search(question)) or len(terms) > 4:
        return question
    extra = [word for stem, word in key_terms(topic).items() if stem not in terms]
    return f"{question} {' '.join(extra)}".strip()


def check_citations(draft: Draft) -> Draft:
    """Keep only lines whose markers all resolve, and only citations a kept line uses."""
    by_n = {c.n: c for c in draft.citations}
    lines = [
        line
        for line in draft.text.splitlines()
        if (markers := [int(m) for m in _MARKER.findall(line)]) and all(m in by_n for m in markers)
    ]
    used = {int(m) for line in lines for m in _MARKER.findall(line)}
    verified = {
        n for n in used if " ".join(by_n[n].quote.split()) in " ".join(by_n[n].passage.split())
    }
    lines = [line for line in lines if {int(m) for m in _MARKER.findall(line)} <= verified]
    kept = tuple(
        c for c in draft.citations if c.n in verified and any(f"[{c.n}]" in line for line in lines)
    )
    return replace(draft, text="\n".join(lines), citations=kept)


class Assistant:
    """Question (+ history) -> grounded Answer. Call `warm_up()` once, then `ask()` many times."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        embedder: Embedder | None = None,
        llm: Generator | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._embedder = embedder or Embedder.from_settings(settings)
        self.extractive = ExtractiveGenerator()
        self.llm: Any = llm
        if llm is None and settings.generator != "extractive":
            from assistant.llm import LLMGenerator, make_chat_model

            label = f"the LLM ({settings.llm_model or settings.generator})"
            self.llm = LLMGenerator(make_chat_model(settings), self._embedder, label)
        self._retriever: HybridRetriever | None = None
        self._chain: Runnable | None = None
        self._coverage: tuple[str, str] = ("", "")  # (index generation, sentence)

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

    def warm_up(self) -> None:
        """Load the model, open the index, build BM25; raises IndexMissingError on an empty index."""
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
        self.ask("warm up")  # first-call costs (torch, chroma, LCEL) are paid here, not by a user

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

    def ask(self, question: str, history: Sequence[Turn] = (), *, use_llm: bool = True) -> Answer:
        """Answer one question; never raises for bad input (status 'error' instead).

        With an LLM configured, `use_llm=False` answers extractively for this question.
        """
        started = time.perf_counter()
        turns = [
            {"role": t["role"], "content": t["content"]}
            for t in history
            if isinstance(t, Mapping)
            and isinstance(t.get("role"), str)
            and isinstance(t.get("content"), str)
        ]  # malformed turns are ignored, never fatal
        try:
            answer: Answer = self.chain.invoke(
                {"question": question, "history": turns, "use_llm": use_llm and bool(self.llm)}
            )
        except Exception as exc:  # noqa: BLE001 - a user gets a message, never a stack trace
            answer = self._failure(exc)
        return _with_latency(answer, started)

    def _failure(self, exc: Exception) -> Answer:
        """An answer saying what broke; an unreadable index is reopened on the next question."""
        print(f"error answering a question: {type(exc).__name__}: {exc}", file=sys.stderr)
        if isinstance(exc, IndexMismatchError):
            return error_answer(str(exc))
        if isinstance(exc, IndexMissingError | StoreError) or type(exc).__module__.startswith(
            "chromadb"
        ):
            self.reopen()
            return error_answer(
                "I can't read the document index right now "
                f"({_short(exc)}). Re-ingest the documents (the Index panel's Re-ingest button, "
                "or `make ingest`) and ask again."
            )
        return error_answer(f"Something went wrong while answering ({type(exc).__name__}).")

    # -- steps of the chain ---------------------------------------------------------------

    def grounded(self, state: dict[str, Any]) -> Answer:
        """The answer to the condensed query; if the LLM's rewrite finds nothing, the rules'."""
        answer = self._grounded(state, state["query"])
        if answer.status == "refused" and state.get("use_llm") and state["history"]:
            rules = self.rules_query(state)  # a small LLM's rewrite can lose the question
            if rules != state["query"]:
                return self._grounded(state, rules)
        return answer

    def _grounded(self, state: dict[str, Any], query: str) -> Answer:
        """Retrieve, gate, compose and check: the answer path proper."""
        retriever = self.retriever
        if not retriever.store.readable():
            raise StoreError(f"the index files at {self.settings.index_dir} are gone")
        passages = retriever.passages(query)
        snap = retriever.snapshot()
        terms = key_terms(query)
        qvec = np.asarray(self._embedder.embed_query(query), dtype=np.float32)
        scored = candidates(terms, qvec, passages, self._store, snap.vocabulary, query)
        verdict = judge(terms, scored, snap.vocabulary)
        if not verdict.answerable:
            return refusal(self.coverage(), verdict.reason, verdict.unknown, query)
        generator = self.llm if state.get("use_llm") else self.extractive
        draft = check_citations(generator.compose(state["question"], scored))
        if not draft.citations:
            return refusal(self.coverage(), "weak-evidence", (), query)
        return Answer(
            "answered",
            draft.text,
            draft.citations,
            DISCLAIMER,
            query=query,
            generator=draft.made_by,
        )

    def condensed(self, state: dict[str, Any]) -> str:
        """The retrieval query: the LLM rewrites a follow-up when it can, else the word rules."""
        question, history = state["question"], state["history"]
        if state.get("use_llm") and history and hasattr(self.llm, "rewrite"):
            try:
                return plain_to_document_words(self.llm.rewrite(question, history))
            except Exception as exc:  # noqa: BLE001 - a failed rewrite is not a failed answer
                print(f"LLM query rewrite failed, using the rules: {exc}", file=sys.stderr)
        return self.rules_query(state)

    def rules_query(self, state: dict[str, Any]) -> str:
        """The retrieval query the word rules make of a question and its history."""
        return plain_to_document_words(condense(state["question"], state["history"]))

    def coverage(self) -> str:
        """One sentence naming what the documents cover, read from the live index once per version."""
        snap = self.retriever.snapshot()
        if self._coverage[0] != snap.generation:
            self._coverage = (snap.generation, describe(snap.chunks))
        return self._coverage[1]


def describe(chunks: Sequence[Chunk]) -> str:
    """The documents by title and kind, and the topics their section headings name most."""
    entries = {c.doc_id: c for c in chunks}
    if not entries:
        return "No documents are indexed yet."
    named = [f"*{c.title}* (a {c.kind})" for c in sorted(entries.values(), key=lambda c: c.title)]
    topics = Counter(word for c in chunks for word in key_terms(c.section or "").values())
    common = [w for w, _ in topics.most_common(5)]
    about = f" Ask me about what they cover, such as {_join(common, 'or')}." if common else ""
    return f"My documents are {_join(named, 'and')}.{about}"


def build_chain(assistant: Assistant) -> Runnable:
    """Wire the steps as LCEL runnables; the branch order is the safety order."""
    screen = RunnablePassthrough.assign(
        problem=RunnableLambda(lambda s: _problem(s["question"])),
        urgency=RunnableLambda(
            lambda s: triage(s["question"]) if isinstance(s["question"], str) else None
        ),
    )
    answer_path = RunnablePassthrough.assign(
        query=RunnableLambda(assistant.condensed)
    ) | RunnableLambda(assistant.grounded)
    return screen | RunnableBranch(
        (lambda s: s["problem"] is not None, RunnableLambda(lambda s: error_answer(s["problem"]))),
        (
            lambda s: s["urgency"] is not None,
            RunnableLambda(lambda s: urgent_answer(s["urgency"].message)),
        ),
        (
            lambda s: is_injection(s["question"]),
            RunnableLambda(lambda s: refusal(assistant.coverage(), "injection", (), s["question"])),
        ),
        answer_path,
    )


def _problem(question: object) -> str | None:
    if not isinstance(question, str) or not question.strip():
        return "Please type a question."
    if len(question) > MAX_QUESTION_CHARS:
        return f"That message is {len(question):,} characters long; please keep questions under {MAX_QUESTION_CHARS:,}."
    return None


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def error_answer(message: str) -> Answer:
    """Input that is not a question."""
    return Answer("error", message, (), DISCLAIMER, error=message)


def urgent_answer(message: str) -> Answer:
    """Emergency guidance only: no retrieval, no dosing."""
    return Answer(
        "urgent", f"**This may be an emergency.** {message}", (), DISCLAIMER, reason="urgent"
    )


_REFUSALS = {
    "no-topic": "I can only answer questions about what my documents say, and I couldn't find a question about them there.",
    "unknown-terms": "My documents don't mention {unknown}, so I can't answer that.",
    "not-together": "My documents don't answer that question: they touch on some of its words, but never say this.",
    "weak-evidence": "My documents don't answer that question.",
    "injection": "I can't change my instructions or reveal them; I only answer questions from my documents.",
}


def refusal(coverage: str, reason: str, unknown: Sequence[str], query: str) -> Answer:
    """A refusal that says why and what the documents do cover."""
    head = _REFUSALS[reason].format(unknown=_join([f"“{w}”" for w in unknown], "or"))
    text = f"{head} {coverage}"
    return Answer("refused", text, (), DISCLAIMER, query=query, reason=reason)


def _join(items: Sequence[str], conjunction: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {conjunction} " + items[-1]


def _with_latency(answer: Answer, started: float) -> Answer:
    return replace(answer, latency_ms=(time.perf_counter() - started) * 1000)
