"""HTML renderers: an Answer as the chat's bubble, a document, and the Index panel's sections.

Everything that comes from a document or the index goes through `doc_text`: escaped, never markup,
and with bidirectional controls shown instead of obeyed. The chat renders HTML (no markdown, no
LaTeX), so nothing here is ever parsed back.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

from assistant.records import Answer, Citation, Claim
from assistant.render import BIDI, URGENT_HEAD, plain_text
from corpus.records import Chunk, DocumentEntry
from ingest.pipeline import IngestReport

WITHHELD = "Flagged at ingest: it reads as an instruction to an assistant, so it is never quoted."
SHORT_DISCLAIMER = "Not medical advice."
# Phone numbers in our own guidance text (safety.GUIDANCE, replies.ENGLISH_ONLY), dialled as written.
_PHONE = re.compile(r"\b(1-800-222-1222|116 123|911|112|999|988)\b")


def doc_text(text: str) -> str:
    """Text from a document or the index as inert HTML, shown in its stored order.

    Escaped (never markup), and each bidirectional control made visible, so "0.5 mg" with a
    hidden U+202E cannot display as "gm 5.0".
    """
    return BIDI.sub(
        lambda m: f"<span class='ctl' title='hidden direction control'>[U+{ord(m[0]):04X}]</span>",
        html.escape(text, quote=True),
    )


def dialled(text: str) -> str:
    """Our own guidance text, escaped, each phone number a tel: link that never wraps."""
    return _PHONE.sub(
        lambda m: f"<a class='tel' href='tel:{m[1].replace(' ', '').replace('-', '')}'>{m[1]}</a>",
        html.escape(text),
    )


def claim_html(claim: Claim, key: str) -> str:
    """One answer sentence: who says it, its words isolated from their neighbours, its sources."""
    who = f"<em>{doc_text(claim.label)}:</em> " if claim.label else ""
    refs = "".join(
        f"<a class='ref' href='#{key}-s{n}' aria-label='source {n}'>[{n}]</a>" for n in claim.cites
    )
    return f"<li>{who}<bdi>{doc_text(claim.text)}</bdi> {refs}</li>"


def highlight(passage: str, quotes: Sequence[str], withheld: Sequence[str] = ()) -> str:
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


def sources_html(
    citations: Sequence[Citation], key: str, urls: Mapping[str, str] | None = None
) -> str:
    """The answer's sources: grouped by document (its title once, linked to its original
    address where sources.toml gives one), one card per passage."""
    by_doc: dict[str, dict[str, list[Citation]]] = {}
    for c in citations:
        by_doc.setdefault(c.source, {}).setdefault(c.chunk_id, []).append(c)
    groups = []
    for source, passages in by_doc.items():
        first = next(iter(passages.values()))[0]
        cards = "".join(_card(group, key) for group in passages.values())
        url = (urls or {}).get(source, "")
        link = (
            f" · <a class='src-url' href='{html.escape(url, quote=True)}' target='_blank' "
            f"rel='noopener noreferrer'>original</a>"
            if url
            else ""
        )
        groups.append(
            f"<div class='doc-group'><div class='doc-title'><bdi>{doc_text(first.title)}</bdi> "
            f"<span class='src-meta'>· {doc_text(first.kind)}{link}</span></div>{cards}</div>"
        )
    n = len(citations)
    return f"<details class='sources'><summary>Sources ({n})</summary>{''.join(groups)}</details>"


def _card(group: list[Citation], key: str) -> str:
    c = group[0]
    numbers = "".join(f"[{x.n}]" for x in group)
    anchors = "".join(f"<span id='{key}-s{x.n}' class='anchor'></span>" for x in group[1:])
    section = doc_text(c.section) if c.section and c.section != c.title else ""
    return (
        f"<div class='src' id='{key}-s{c.n}' tabindex='-1'>{anchors}"
        f"<div class='src-head'>{numbers} {section}</div>"
        f"<div class='src-passage'>{highlight(c.passage, [x.quote for x in group], c.withheld)}"
        f"</div><button type='button' class='open-doc' id='{key}-doc-{html.escape(c.chunk_id)}'>"
        "Open the document</button></div>"
    )


def suggestions_html(suggestions: Sequence[str]) -> str:
    """Questions the engine has checked it answers, near this one; each sends when clicked."""
    if not suggestions:
        return ""
    buttons = "".join(
        f"<button type='button' class='suggest'>{doc_text(s)}</button>" for s in suggestions
    )
    return f"<div class='next' aria-label='Questions to ask next'>{buttons}</div>"


def body_html(answer: Answer, key: str, *, upto: int | None = None) -> str:
    """What the answer says (the first `upto` claims while streaming), before its extras."""
    if answer.status == "answered" and answer.citations:
        claims = answer.claims[:upto] if upto is not None else answer.claims
        items = "".join(claim_html(c, key) for c in claims)
        return f"<ul class='claims'>{items}</ul>"
    said = " ".join(c.text for c in answer.claims) if answer.claims else answer.answer
    if answer.status == "urgent":
        return f"<p><strong class='urgent-head'>{URGENT_HEAD}</strong> {dialled(said)}</p>"
    if answer.reason == "not-english":  # our own words, with every emergency number
        return f"<p class='said'>{dialled(said)}</p>"
    return f"<p class='said'>{doc_text(said)}</p>"  # refusals name sections and titles


def answer_html(answer: Answer, key: str, urls: Mapping[str, str] | None = None) -> str:
    """The whole chat bubble: the answer first, then its sources, one row of actions with a
    one-line disclaimer (the full text is at the top of the page), and next questions."""
    parts = [
        body_html(answer, key),
        note_html(answer),
        sources_html(answer.citations, key, urls) if answer.citations else "",
        "<div class='actions'><button type='button' class='copy-text'>Copy</button>"
        f"<small class='disclaimer-line'>⚕️ {SHORT_DISCLAIMER}</small></div>",
        suggestions_html(answer.suggestions),
        f"<div class='plain'>{html.escape(plain_text(answer))}</div>",
    ]
    role = " role='alert'" if answer.status == "urgent" else ""
    return f"<div class='reply reply-{answer.status}'{role}>{''.join(parts)}</div>"


def note_html(answer: Answer) -> str:
    """Who wrote the answer; for an LLM's, the sentences the claim check removed, struck."""
    if answer.fallback is not None:
        note = f"Showing the documents' own sentences: {answer.fallback.detail}."
    elif answer.made_by == "llm":
        note = "Written in plain words by the LLM; each sentence was checked against the quote it cites."
    else:
        return ""
    out = f"<p class='note'><small>{html.escape(note)}</small></p>"
    if answer.removed:
        struck = "".join(f"<li><del><bdi>{doc_text(r)}</bdi></del></li>" for r in answer.removed)
        n = len(answer.removed)
        out += (
            f"<details class='removed'><summary><small>{n} sentence{'s' if n != 1 else ''} "
            "removed: the sources don't say it</small></summary><ul>"
            f"{struck}</ul></details>"
        )
    return out


def writing_html(draft: str) -> str:
    """An LLM's draft while it streams in, before the claim check."""
    return (
        "<div class='reply reply-working reply-writing'><p><small>Writing… each sentence will be "
        f"checked against its source.</small></p><p class='said'><bdi>{doc_text(draft)}</bdi></p>"
        "</div>"
    )


def streaming_html(answer: Answer, key: str, shown: int) -> str:
    """The bubble while its sentences appear one by one."""
    return f"<div class='reply reply-{answer.status}'>{body_html(answer, key, upto=shown)}</div>"


def document_html(chunks: Sequence[Chunk], target: str, url: str = "") -> str:
    """A whole document as indexed, section by section, with the cited passage marked."""
    if not chunks:
        return "<p>That document is no longer in the index.</p>"
    out = [f"<div class='doc-view'><h3><bdi>{doc_text(chunks[0].title)}</bdi></h3>"]
    link = (
        f" · <a href='{html.escape(url, quote=True)}' target='_blank' rel='noopener noreferrer'>"
        f"{doc_text(url)}</a>"
        if url
        else ""
    )
    out.append(f"<p class='src-meta'>{doc_text(chunks[0].kind)}{link}</p>")
    section: str | None = None
    for chunk in chunks:
        if chunk.section and chunk.section != section and chunk.section != chunk.title:
            out.append(f"<h4><bdi>{doc_text(chunk.section)}</bdi></h4>")
        section = chunk.section
        text = highlight(chunk.text, [], chunk.withheld)
        if chunk.id == target:
            out.append(f"<p class='doc-target' id='doc-target'><mark>{text}</mark></p>")
        else:
            out.append(f"<p>{text}</p>")
    return "".join(out) + "</div>"


def announce(answer: Answer) -> str:
    """What a screen reader hears when a reply is ready."""
    if answer.status == "urgent":
        return "Urgent: this may be an emergency. The reply says whom to call."
    if answer.citations:
        n = len(answer.citations)
        return f"Answer ready, with {n} source{'s' if n != 1 else ''}."
    return "Reply ready."


# -- the Index panel ----------------------------------------------------------------------


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """An HTML table; every cell is already escaped HTML."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table class='index-table'><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def unreadable_html(why: str) -> str:
    """The Index panel when the index can't be read."""
    return (
        f"<p><strong>The index can't be read</strong> ({doc_text(why)}). "
        "Press <strong>Re-ingest</strong> to rebuild it from the corpus.</p>"
    )


def index_html(
    docs: Sequence[DocumentEntry], flagged: Sequence[Any], model: str, last_ingest: str
) -> str:
    """The curator's summary: documents, chunks, model, last ingest, flagged text."""
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
        f"<p><strong>{_plural(len(docs), 'document')}, {sum(d.chunks for d in docs)} chunks"
        f"</strong> · embedding model <code>{html.escape(model)}</code> · last ingest "
        f"{html.escape(last_ingest or 'never')}</p>"
        + _table(("Title", "Kind", "Chunks", "File"), rows)
    )
    if flagged:
        out += (
            f"<p><strong>{_plural(len(flagged), 'sentence')} flagged at ingest</strong>: they "
            "read as instructions to an assistant, not as information, so they are never "
            "quoted. Check these documents.</p>"
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


def titles_html(titles: Sequence[str]) -> str:
    """What any visitor may see of the index: the titles of its documents, nothing more."""
    if not titles:
        return "<p>The documents can't be listed right now.</p>"
    items = "".join(f"<li><bdi>{doc_text(t)}</bdi></li>" for t in titles)
    return f"<p>Answers come only from these documents:</p><ul>{items}</ul>"


def review_html(fresh: Sequence[DocumentEntry], flagged: Sequence[Any]) -> str:
    """Documents added or changed since the curator last marked the index reviewed, each with
    the sentences ingest flagged in it."""
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
        f"<h4>New since your last review: {_plural(len(fresh), 'document')}</h4><p>Read their "
        "claims before people rely on them; flagged sentences are never quoted. Press "
        "<strong>Mark reviewed</strong> when done.</p>"
        + _table(("Title", "File", "Ingested", "Flagged sentences"), rows)
    )


def report_html(report: IngestReport) -> str:
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


def evals_html(report: Mapping[str, Any]) -> str:
    """The eval summary shown after a run from the Index panel (report.json of `python -m
    evals`)."""
    o = report["overall"]
    problems = list(report.get("thresholds_missed", []))

    def pct(name: str) -> str:
        return "–" if o.get(name) is None else f"{o[name]:.0%}"

    verdict = (
        "All thresholds met."
        if not problems
        else "<strong>Thresholds missed:</strong> " + html.escape("; ".join(problems))
    )
    failed = "".join(
        f"<li>failed <code>{html.escape(f['id'])}</code>: {doc_text(f['question'])}</li>"
        for f in report.get("failures", [])[:10]
    )
    return (
        f"<p><strong>Evals on the {o['questions']} held-out questions:</strong> answer accuracy "
        f"{pct('answer_accuracy')}, refusal recall {pct('refusal_recall')}, refusal precision "
        f"{pct('refusal_precision')}, urgent recall {pct('urgent_recall')}, citation validity "
        f"{pct('citation_validity')}, disclaimer {pct('disclaimer_rate')}; p50 "
        f"{o['latency_p50_ms']} ms.</p><p>{verdict}</p>" + (f"<ul>{failed}</ul>" if failed else "")
    )


def feedback_html(records: Sequence[Mapping[str, Any]], file_name: str) -> str:
    """The Index panel's Feedback section: counts and the latest thumbs-down."""
    ups = sum(1 for r in records if r.get("liked") is True)
    downs = [r for r in records if r.get("liked") is False]
    head = (
        f"<h4>Feedback</h4><p>{ups} thumbs up · {len(downs)} thumbs down "
        f"<span class='src-meta'>(saved as <code>{html.escape(file_name)}</code> in the "
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


def llm_html(label: str, *, present: bool, use_llm: bool, available: bool, failing: bool) -> str:
    """Who writes the answers now: the LLM, or the documents' own sentences, and why."""
    if not present:
        return ""
    if not use_llm:
        return (
            "Answers: the documents' own sentences, quoted with their sources (the LLM is "
            "switched off for this chat)."
        )
    name = html.escape(label)
    subject = name[:1].upper() + name[1:]  # "The LLM (smollm2)"
    if not available:
        return (
            f"<div class='degraded' role='status'><strong>LLM unavailable.</strong> {subject}, "
            "which words the answers, is not responding, so answers are the documents' own "
            "sentences, quoted with their sources. Nothing to do on your side: it is tried again "
            "after a minute.</div>"
        )
    if failing:
        return (
            f"<div class='degraded' role='status'>{subject} did not respond to the last "
            "question, so that answer is the documents' own sentences.</div>"
        )
    return (
        f"Answers: written by {name}; every sentence is checked against the passage it cites, "
        "with quotes as the fallback."
    )
