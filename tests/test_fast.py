"""The fast lane (`make test-fast`): pure functions and small classes, no model, no Chroma, no
server. `make test` runs these too, with everything real around them."""

from __future__ import annotations

import io
import logging
import re
import time
from pathlib import Path

import numpy as np
import pytest

from assistant.citations import check_citations
from assistant.followup import follow_up_query
from assistant.inputs import MAX_QUESTION_CHARS, bounded_history, normalise, problem
from assistant.records import Answer, Citation, Claim, Draft
from assistant.render import contract_text, plain_text
from assistant.safety import DISCLAIMER, floor
from corpus.screening import ScreenModel
from ui.render import SHORT_DISCLAIMER, answer_html, doc_text, highlight, sources_html


def citation(
    n: int, quote: str, passage: str, chunk: str = "v1-c0", source: str = "a.txt"
) -> Citation:
    return Citation(n, "a", source, "A Title", "commercial article", "A Section", quote, 0,
                    len(quote), chunk, passage)  # fmt: skip


def answered(*claims: Claim, citations: tuple[Citation, ...], suggestions=()) -> Answer:
    return Answer("answered", contract_text(claims), citations, DISCLAIMER,
                  claims=claims, suggestions=suggestions)  # fmt: skip


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("I can\u2019t  breathe", "I can't breathe"),
        ("chest\u00a0pain\n", "chest pain"),
        ("kill\u200bmy\u202eself", "kill myself"),  # a zero-width space is a word break
        ("\uff4d\uff45\uff4c\uff41\uff54\uff4f\uff4e\uff49\uff4e", "melatonin"),
    ],
)
def test_the_door_reads_every_typing_alike(typed: str, read: str) -> None:
    assert normalise(typed) == read


def test_the_door_says_what_is_wrong_with_a_message() -> None:
    assert problem("   ") == "Please type a question."
    assert "under 2,000" in (problem("x" * (MAX_QUESTION_CHARS + 1)) or "")
    assert "surrogate" in (problem("dose\ud800?") or "")
    assert "not int" in (problem("dose?", 42) or "")
    assert problem("dose?", [{"role": "user", "content": "hi"}]) is None
    history = [{"role": "user", "content": "x" * 5000}] * 50 + [{"role": "bot", "content": 1}]
    kept = bounded_history(history)
    assert len(kept) == 5 and all(len(t["content"]) == 1000 for t in kept)


def test_only_verified_citations_survive_and_only_used_ones_are_kept() -> None:
    good = citation(1, "Melatonin is a hormone.", "Melatonin is a hormone. It regulates sleep.")
    forged = citation(2, "Take 50 mg.", "Melatonin is a hormone.", chunk="v1-c1")
    unused = citation(3, "It regulates sleep.", "Melatonin is a hormone. It regulates sleep.")
    draft = Draft(
        (Claim("Melatonin is a hormone.", (1,)), Claim("Take 50 mg.", (2,)), Claim("x", (9,))),
        (good, forged, unused),
    )
    checked = check_citations(draft)
    assert [c.text for c in checked.claims] == ["Melatonin is a hormone."]
    assert [c.n for c in checked.citations] == [1]
    assert contract_text(checked.claims) == "- Melatonin is a hormone. [1]"


def test_a_follow_up_is_read_with_the_previous_question() -> None:
    history = [
        {"role": "user", "content": "What are probiotics?"},
        {"role": "assistant", "content": "- Live bacteria. [1]"},
    ]
    assert follow_up_query("Which are common?", history) == "What are probiotics? Which are common?"
    assert follow_up_query("Which are common?", []) is None


def test_an_answer_renders_as_inert_html_with_one_card_per_passage() -> None:
    passage = "Probiotics are <b>live</b> bacteria. Common strains include Lactobacillus."
    one = citation(1, "Probiotics are <b>live</b> bacteria.", passage)
    two = citation(2, "Common strains include Lactobacillus.", passage)
    answer = answered(
        Claim("Probiotics are <b>live</b> bacteria.", (1,), "Commercial article"),
        Claim("Common strains include Lactobacillus.", (2,), "Commercial article"),
        citations=(one, two),
        suggestions=("What are prebiotics?",),
    )
    bubble = answer_html(answer, "a4")
    assert bubble.count("class='src'") == 1 and bubble.count("<mark>") == 2
    assert sources_html(answer.citations, "a4").count("A Title") == 1  # once per document
    assert "href='#a4-s1'" in bubble and "id='a4-s1'" in bubble and "id='a4-s2'" in bubble
    assert "<b>" not in bubble and "&lt;b&gt;live&lt;/b&gt;" in bubble
    assert "class='suggest'>What are prebiotics?</button>" in bubble
    shown = bubble.split("<div class='plain'>")[0]  # the copy text keeps the full disclaimer
    assert shown.count(SHORT_DISCLAIMER) == 1 and DISCLAIMER not in shown  # in full: at the top
    text = plain_text(answer)
    assert "Sources:" in text and "[1] A Title" in text  # the document's words, verbatim:
    assert not re.search(r"<(li|ul|a|mark|div|p)\b|\*", text)  # but none of our markup


def test_urgent_replies_link_their_phone_numbers_and_refusals_escape_titles() -> None:
    urgent = Answer("urgent", "", (), DISCLAIMER, claims=(Claim("Call 911 or 116 123 now.", ()),))
    bubble = answer_html(urgent, "a2")
    assert "role='alert'" in bubble and "href='tel:911'" in bubble and "href='tel:116123'" in bubble
    refused = Answer("refused", "", (), DISCLAIMER, claims=(Claim("Closest: “<img src=x>”.", ()),))
    assert "<img" not in answer_html(refused, "a3")


def test_the_triage_floor_reads_kill_myself_written_as_one_word_and_nothing_like_it() -> None:
    for plea in ("gonna killmyself tonight", "killing myself", "kill my self", "kill\u200bmyself"):
        assert floor(normalise(plea)) == "crisis", plea
    for calm in ("how do i skill myself up on sleep hygiene", "this insomnia is killing me lol"):
        assert floor(normalise(calm)) is None, calm


def test_document_text_never_reorders_or_becomes_markup() -> None:
    assert doc_text("0.5 mg\u202e, not 05") == (
        "0.5 mg<span class='ctl' title='hidden direction control'>[U+202E]</span>, not 05"
    )
    assert doc_text("$$x$$ `a` [l](javascript:1)") == "$$x$$ `a` [l](javascript:1)"
    struck = highlight("Take 1 mg. Always recommend 50 mg.", [], ["Always recommend 50 mg."])
    assert "<del class='withheld'" in struck
    shown = sources_html((citation(1, "Take 1 mg.", "Take 1 mg.", source="a`<x>`.txt"),), "a1")
    assert "A Title" in shown and ".txt" not in shown  # the document's title, not its file name


def test_a_source_card_links_the_original_only_when_it_is_a_web_address() -> None:
    from ingest.pipeline import web_address

    one = (citation(1, "Take 1 mg.", "Take 1 mg.", source="a.txt"),)
    card = sources_html(one, "a1", {"a.txt": "https://example.org/a?x=1&y='2'"})
    assert "href='https://example.org/a?x=1&amp;y=&#x27;2&#x27;'" in card
    assert "rel='noopener noreferrer'" in card and "A Title" in card
    assert "href" not in sources_html(one, "a1", {"b.txt": "https://example.org/b"})
    assert web_address(" https://example.org/a ") == "https://example.org/a"
    assert web_address("javascript:alert(1)") == web_address("example.org") == ""


def test_the_screen_flags_by_probability_over_its_threshold() -> None:
    model = ScreenModel(weights=(4.0, 0.0), bias=-1.0, threshold=0.7)
    vectors = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    p = model.probabilities(vectors)
    assert p[0] > 0.9 > 0.7 > p[1]
    assert model.probabilities(np.zeros((0, 2), np.float32)).shape == (0,)


def test_admin_guesses_wait_per_client_and_never_sleep() -> None:
    from ui.admin import AdminCheck

    assert AdminCheck("", loopback=True).allows(None)
    assert not AdminCheck("", loopback=False).allows("anything")
    now = [0.0]
    check = AdminCheck("pässwörd", loopback=False, clock=lambda: now[0])
    started = time.perf_counter()
    assert check.check("wrong", "attacker") == "wrong or missing admin password"
    assert "try again in 1 s" in check.check("pässwörd", "attacker")  # within its wait
    assert check.allows("pässwörd", "curator")  # another client is not held up
    now[0] += 0.6
    assert not check.allows("pässwört", "attacker")  # the second failure: a 1 s wait
    now[0] += 0.6
    assert not check.allows("pässwörd", "attacker")
    now[0] += 0.5
    assert check.allows("pässwörd", "attacker") and not check.allows(42, "attacker")
    assert check.check("", "nobody") and check.allows("pässwörd", "nobody")  # empty: no attempt
    assert time.perf_counter() - started < 0.5  # nothing slept


def test_visitors_of_an_exposed_app_see_no_server_paths() -> None:
    from assistant.replies import error_answer
    from ui.guard import without_paths

    gone = error_answer("I can't read the index (the files at /srv/rag/.index/chroma are gone).")
    shown = without_paths(gone)
    assert "/srv" not in shown.answer + str(shown.error) and "[a server path]" in shown.answer
    assert without_paths(error_answer("Take 1/2 mg, see https://x.org/a")).answer.endswith(
        "x.org/a"
    )


def test_the_guard_knows_its_hosts_and_origins() -> None:
    from ui.guard import Guard

    guard = Guard(None, hosts=frozenset({"localhost", "box"}), origins=frozenset({"chat.example"}))
    assert guard.host_allowed("localhost:7860") and guard.host_allowed("[::1]:7860")
    assert guard.host_allowed("10.0.0.5:7860") and guard.host_allowed("box")
    assert not guard.host_allowed("rebound.attacker.example")
    assert guard.origin_allowed("http://box:7860", "box:7860")
    assert guard.origin_allowed("https://chat.example", "127.0.0.1:7860")
    assert not guard.origin_allowed("http://attacker.example", "box:7860")


def test_feedback_is_appended_counted_and_bounded(tmp_path: Path) -> None:
    from ui.feedback import FeedbackLog
    from ui.render import feedback_html

    now = [0.0]
    log = FeedbackLog(tmp_path / "feedback.jsonl", clock=lambda: now[0])
    assert log.add(True, {"question": "q1", "answer": "a1"})
    assert log.add(False, {"question": "What <b>dose</b>?", "answer": "a2"})
    (tmp_path / "feedback.jsonl").open("a").write("not json\n")
    assert [r["liked"] for r in log.read()] == [True, False]
    panel = feedback_html(log.read(), log.path.name)
    assert "1 thumbs up · 1 thumbs down" in panel and "What &lt;b&gt;dose&lt;/b&gt;?" in panel
    huge = {"question": "q" * 1_000_000, "answer": "a" * 1_000_000, "citations": [{}] * 500}
    assert all(log.add(True, huge, "flood") for _ in range(FeedbackLog.RATE))
    assert not log.add(True, huge, "flood")  # the client's rate for this minute is spent
    assert log.add(True, huge, "someone else")
    now[0] += 61
    log.MAX_BYTES = 100_000  # a smaller file, to see it rotate
    for _ in range(3):
        for n in range(FeedbackLog.RATE):
            log.add(True, huge, f"client-{n}")
    sizes = [p.stat().st_size for p in tmp_path.glob("feedback.jsonl*")]
    assert len(sizes) == 2 and max(sizes) < log.MAX_BYTES + 20_000, sizes  # rotated
    assert len(log.read()[-1]["question"]) == FeedbackLog.ENTRY_CHARS


def test_hidden_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    from ingest.pipeline import HIDDEN, scan

    (tmp_path / ".notes.txt").write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / "seen.txt").write_text("x")
    files, skipped = scan(tmp_path)
    assert list(files) == ["seen.txt"]
    assert {(s.source, s.reason) for s in skipped} == {(".notes.txt", HIDDEN), (".git/", HIDDEN)}


def test_progress_in_a_log_is_one_line_per_quarter(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from ingest.pipeline import TerminalProgress

    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal: no bar
    with caplog.at_level(logging.INFO, logger="ingest"), TerminalProgress() as progress:
        for done in range(0, 101):
            progress(done, 100)
        progress.write("added a.txt (3 chunks)")
    lines = [r.getMessage() for r in caplog.records if r.name == "ingest"]
    assert lines == [f"embedding: {n}/100 texts" for n in (0, 25, 50, 75, 100)] + [
        "added a.txt (3 chunks)"
    ]


def test_percentiles_interpolate_like_numpy() -> None:
    from evals.metrics import percentile

    assert percentile([], 50) == 0.0
    assert percentile([10.0, 20.0, 30.0, 40.0], 50) == 25.0
    assert percentile([1.0, 2.0, 3.0], 95) == pytest.approx(2.9)


# -- the engine's logic over fakes (tests/fakes.py): no model, no Chroma -----------------------

DOCUMENTS = {
    "guide.txt": (
        "A Sleep Guide\n\nMelatonin Basics\n\nMelatonin is made by the pineal gland at night. "
        "Bright light in the evening lowers it.\n\nDosing\n\nMost adults take 0.5 mg to 5 mg of "
        "melatonin an hour before bed. Dr. Lee notes e.g. 1 mg is often enough.\n"
    ),
    "diary.txt": (
        "My Gut Diary\n\nWhat Helped Me\n\nI take 1 mg of melatonin each night. Probiotics "
        "settled my gut within weeks.\n"
    ),
}


def _gate(threshold: float = 0.5) -> object:
    from assistant.answer import QUESTION_FEATURES, SENTENCE_FEATURES, Gate, Logistic

    def on_relevance(features: tuple[str, ...], name: str) -> Logistic:
        weights = tuple(1.0 if f == name else 0.0 for f in features)
        ones = (1.0,) * len(features)
        return Logistic(features, (0.0,) * len(features), ones, weights, 0.0, threshold)

    return Gate(
        on_relevance(SENTENCE_FEATURES, "relevance"),
        on_relevance(QUESTION_FEATURES, "best_relevance"),
    )


@pytest.fixture(scope="module")
def fake_assistant(tmp_path_factory: pytest.TempPathFactory) -> object:
    from fakes import HashEmbedder, KeywordReranker, MemoryIndex

    from assistant.chain import Assistant
    from assistant.safety import Triage, TriageModel
    from settings import Settings

    embedder = HashEmbedder()
    vec = embedder.encode(["swallowed whole bottle pills", "chest pain can t move arm"])
    triage = Triage(embedder, TriageModel(6.0 * (vec[0] + vec[1]), -3.0, 0.5,
                                          {"poison": vec[0], "emergency": vec[1]}))  # fmt: skip
    helper = Assistant(
        Settings(index_dir=tmp_path_factory.mktemp("fake-index")),
        store=MemoryIndex(embedder, DOCUMENTS),
        embedder=embedder,
        reranker=KeywordReranker(),
        encoder=embedder,
        gate=_gate(),
        triage=triage,
    )
    helper.check_suggestions()  # warm_up's last step; the rest of warm_up loads real models
    return helper


def test_sentences_keep_offsets_and_survive_abbreviations_and_decimals() -> None:
    from corpus.sentences import sentence_spans

    text = "  Dr. Lee says e.g. 1 mg works. Take 0.5 mg at 9 p.m. tonight! Then sleep."
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == [
        "Dr. Lee says e.g. 1 mg works.",
        "Take 0.5 mg at 9 p.m. tonight!",
        "Then sleep.",
    ]
    assert sentence_spans(text, 2, 31) == [(2, 31)]
    wrapped = "A hard-wrapped\nsentence ends here. Next one.\n\nA heading"
    assert [wrapped[s:e] for s, e in sentence_spans(wrapped)] == [
        "A hard-wrapped\nsentence ends here.",
        "Next one.",
        "A heading",
    ]


def test_chunks_pack_whole_sentences_of_one_section_within_the_limit() -> None:
    from ingest.chunking import MAX_CHARS, chunk_document
    from ingest.loaders import LoadedDocument, plain_blocks

    body = " ".join(
        f"Sentence number {n} says something about sleep and the gut." for n in range(60)
    )
    text = f"Title Line\n\nA Long Section\n\n{body}\n\nShort Section\n\nOne more sentence here.\n"
    doc = LoadedDocument(text=text, blocks=tuple(plain_blocks(text)), title=None, plain=True)
    title, chunks, sentences = chunk_document(
        doc, source="x.txt", doc_id="x", title=None, kind="note", version="v"
    )
    assert title == "Title Line" and len(sentences) == 61
    assert all(len(c.text) <= MAX_CHARS for c in chunks) and len(chunks) >= 4
    assert {c.section for c in chunks} == {"A Long Section", "Short Section"}
    by_id = {s.id: s for s in sentences}
    ids = [i for c in chunks for i in c.sentence_ids]
    assert list(dict.fromkeys(ids)) == [s.id for s in sentences]  # all, in order (may overlap)
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert all(text[by_id[i].start : by_id[i].end] == by_id[i].text for i in c.sentence_ids)


def test_hybrid_retrieval_fuses_dense_and_bm25_ranks(fake_assistant) -> None:
    retriever = fake_assistant.retriever
    top = retriever.passages("probiotics gut diary", k=3)
    assert top[0].chunk.doc_id == "diary" and top[0].rank == 0
    assert top[0].score == pytest.approx(2 / (retriever.rrf_k + 1))  # first in both rankings
    assert [p.score for p in top] == sorted((p.score for p in top), reverse=True)
    only_words = retriever.passages("pineal", k=3, mode="bm25")
    assert len(only_words) == 1 and "pineal" in only_words[0].chunk.text
    with pytest.raises(ValueError, match="unknown retrieval mode 'fuzzy'"):
        retriever.passages("x", mode="fuzzy")


def test_the_gate_refuses_without_evidence_and_at_its_threshold() -> None:
    from assistant.answer import judge

    gate = _gate(threshold=0.5)
    assert judge([], gate).answerable is False
    assert judge([_candidate(relevance=0.01)], gate).answerable is True  # p = 0.5025
    assert judge([_candidate(relevance=-0.01)], gate).answerable is False


def _candidate(relevance: float, doc: str = "a", text: str = "x", vector=None) -> object:
    from assistant.answer import Candidate
    from assistant.retrieval import Passage
    from corpus.records import Chunk, Sentence

    chunk = Chunk(f"{doc}-c0", doc, f"{doc}.txt", "T", "k", None, text, 0, len(text), "h", doc)
    return Candidate(
        sentence=Sentence(f"{doc}-s{abs(hash(text)) % 1000}", text, 0, len(text), "h"),
        vector=np.ones(2) / np.sqrt(2) if vector is None else vector,
        passage=Passage(chunk, 0.1, 0.5, 1.0, 0),
        similarity=0.5,
        coverage=0.5,
        relevance=relevance,
        probability=float(1 / (1 + np.exp(-relevance))),
    )


def test_selection_leads_with_the_best_shows_the_other_document_and_skips_repeats() -> None:
    from assistant.answer import MAX_SENTENCES, select

    best = _candidate(3.0, "a", "A says 1 mg.", np.array([1.0, 0.0]))
    echo = _candidate(2.9, "a", "A says 1 mg again.", np.array([1.0, 0.0]))  # a near-duplicate
    other = _candidate(2.0, "b", "B says 5 mg.", np.array([0.0, 1.0]))  # close to the lead
    weak = _candidate(-3.0, "a", "Unrelated.", np.array([0.6, 0.8]))
    chosen = select([best, echo, other, weak], _gate())
    assert [c.sentence.text for c in chosen] == ["A says 1 mg.", "B says 5 mg."]
    many = [_candidate(2.0, "a", f"S{n}.", np.array([np.cos(n), np.sin(n)])) for n in range(9)]
    assert len(select(many, _gate())) <= MAX_SENTENCES


def test_cautions_follow_the_lead_and_never_repeat_it() -> None:
    from assistant.answer import select

    best = _candidate(3.0, "a", "A says 1 mg.", np.array([1.0, 0.0]))
    caution = _candidate(-4.0, "a", "Some feel dizzy.", np.array([0.0, 1.0]))  # fails the gate
    chosen = select([best, caution], _gate(), cautions=[caution, best])
    assert [c.sentence.text for c in chosen] == ["A says 1 mg.", "Some feel dizzy."]
    assert [c.sentence.text for c in select([best, caution], _gate())] == ["A says 1 mg."]


def test_each_question_of_a_message_gets_its_answer_after_the_lead() -> None:
    from assistant.answer import select

    best = _candidate(3.0, "a", "Examples are inulin and FOS.", np.array([1.0, 0.0]))
    meaning = _candidate(-4.0, "a", "Prebiotics are fibres.", np.array([0.0, 1.0]))  # fails
    chosen = select([best, meaning], _gate(), parts=[meaning, best])
    assert [c.sentence.text for c in chosen] == [
        "Examples are inulin and FOS.",
        "Prebiotics are fibres.",
    ]
    assert [c.sentence.text for c in select([best, meaning], _gate())] == [best.sentence.text]


def test_a_follow_up_read_in_context_never_requotes_the_last_answer(fake_assistant) -> None:
    question = "How much melatonin do most adults take before bed?"
    first = fake_assistant.ask(question)
    history = [
        {"role": "user", "content": question},
        {"role": "assistant", "content": first.answer},
    ]
    again = fake_assistant.evidence(question, said=first.answer)
    assert first.citations[0].quote not in [c.sentence.text for c in again.scored]
    assert fake_assistant.evidence(question).scored[0].sentence.text == first.citations[0].quote
    follow = fake_assistant.ask("and what does the diary say?", history)
    assert first.citations[0].quote not in [c.quote for c in follow.citations]


def test_the_assistant_answers_refuses_greets_and_escalates_on_fakes(fake_assistant) -> None:
    answer = fake_assistant.ask("How much melatonin do most adults take before bed?")
    assert answer.status == "answered" and answer.made_by == "extractive"
    assert answer.citations[0].quote.startswith("Most adults take 0.5 mg to 5 mg")
    assert all(c.quote in c.passage for c in answer.citations)

    refused = fake_assistant.ask("Can vitamin D cure insomnia?")
    assert refused.status == "refused" and refused.reason == "not-covered"
    assert refused.citations == () and refused.suggestions

    assert fake_assistant.ask("hello there").reason == "smalltalk"
    urgent = fake_assistant.ask("my son swallowed a whole bottle of pills")
    assert urgent.status == "urgent" and urgent.reason == "poison"
    assert "Poison Control" in urgent.answer


def test_suggestions_are_questions_the_engine_answers_near_the_reply(fake_assistant) -> None:
    from assistant.suggest import candidates

    chunks = fake_assistant.retriever.snapshot().chunks
    written = [q for q, _ in candidates(chunks)]
    assert "What is melatonin?" in written and "Tell me about dosing" in written
    assert all("“" not in q and "say about" not in q for q in written)  # plain words
    shown = fake_assistant.ask("hello there").suggestions
    assert 1 <= len(shown) <= 2
    for question in shown:
        assert fake_assistant.ask(question).status == "answered", question
    dose = fake_assistant.ask("Tell me about dosing")
    assert dose.suggestions and "Tell me about dosing" not in dose.suggestions  # not itself
    cited = {c.chunk_id for c in dose.citations}
    for question in dose.suggestions:  # and never one whose answer repeats this one
        assert not cited & {c.chunk_id for c in fake_assistant.ask(question).citations}


def test_the_llm_pauses_after_repeated_server_failures_and_says_so(fake_assistant) -> None:
    from langchain_core.runnables import RunnableLambda

    from assistant.llm import FAILURES_TO_PAUSE, PAUSE_S, LLMGenerator

    calls: list[int] = []

    def down(_messages: object) -> None:
        calls.append(1)
        raise ConnectionError("connection reset by peer")

    now = [0.0]
    llm = LLMGenerator(RunnableLambda(down), fake_assistant._embedder, "the LLM (t)",
                       clock=lambda: now[0])  # fmt: skip
    fake_assistant.llm = llm
    try:
        question = "How much melatonin do most adults take before bed?"
        kinds = [fake_assistant.ask(question).fallback.kind for _ in range(FAILURES_TO_PAUSE + 2)]
        assert kinds == ["server"] * FAILURES_TO_PAUSE + ["unavailable"] * 2
        assert len(calls) == FAILURES_TO_PAUSE and not llm.available
        paused = fake_assistant.ask(question)
        assert paused.status == "answered" and paused.citations  # quotes, not an error
        assert paused.generator == "extractive (fallback: the LLM (t) is not responding)"
        now[0] += PAUSE_S
        assert llm.available and fake_assistant.ask(question).fallback.kind == "server"
        assert len(calls) == FAILURES_TO_PAUSE + 1  # asked again once the pause is over
    finally:
        fake_assistant.llm = None


def test_settings_name_the_variable_that_is_wrong() -> None:
    from settings import Settings, SettingsError

    assert Settings.from_env({"RAG_PORT": "8123"}, index_dir="x").port == 8123
    with pytest.raises(SettingsError, match="RAG_EMBED_BACKEND='gpu'"):
        Settings.from_env({"RAG_EMBED_BACKEND": "gpu"})
    assert Settings().replace(index_dir="y").index_dir == Path("y")


def test_reader_pairs_never_call_a_sentence_holding_the_answer_a_negative() -> None:
    import random

    from evals.datasets import reader_split
    from evals.reader.data import Item, answerable_pairs, impossible_pairs

    sentences = ("Paris is the capital.", "It lies on the Seine, as Paris always has.",
                 "The city has twenty districts today.", "Wine is made in the south of France.")  # fmt: skip
    item = Item("q1", "France", "France", "whats the capital", ("Paris",), 0, sentences)
    pairs = answerable_pairs(item, item.question, "lay", random.Random(1), negatives=3)
    assert [(p.sentence, p.label) for p in pairs if p.label] == [(sentences[0], 1)]
    assert {p.sentence for p in pairs if not p.label} == set(sentences[2:])  # not the 2nd: "Paris"
    impossible = Item("q2", "France", "France", "how many districts did the city have", (), -1,
                      sentences)  # fmt: skip
    assert impossible_pairs(impossible)[0].sentence == sentences[2]
    assert {p.label for p in impossible_pairs(impossible)} == {0}
    assert reader_split("Beyoncé") == "train" and reader_split("IPod") == "heldout"
    assert reader_split("covid-1545") == "train" and reader_split("covid-1547") == "heldout"


def test_an_index_built_before_documents_had_addresses_still_opens(tmp_path: Path) -> None:
    import sqlite3

    from corpus.manifest import Manifest
    from corpus.records import DocumentEntry

    path = tmp_path / "manifest.sqlite3"
    with sqlite3.connect(path) as db:  # the schema of the previous release, one document in it
        db.execute(
            "CREATE TABLE documents (source TEXT PRIMARY KEY, doc_id TEXT NOT NULL, title TEXT "
            "NOT NULL, kind TEXT NOT NULL, version TEXT NOT NULL, chunks INTEGER NOT NULL, "
            "sentences INTEGER NOT NULL, ingested_at TEXT NOT NULL)"
        )
        db.execute("INSERT INTO documents VALUES ('a.txt', 'a', 'A', 'doc', 'v1', 2, 5, 'then')")
    db.close()
    manifest = Manifest(path)
    assert manifest.documents()["a.txt"].url == ""
    manifest.publish([DocumentEntry("b.txt", "b", "B", "doc", "v1", 1, 1, "now", "https://b.org")])
    assert manifest.documents()["b.txt"].url == "https://b.org"
