"""Renderers: an Answer as the chat's HTML bubble, or as clean text for the clipboard.

Everything that comes from a document or the index goes through `doc_text`: escaped, never markup,
and with bidirectional controls shown instead of obeyed. The chat renders HTML (no markdown, no
LaTeX), so nothing here is ever parsed back.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from assistant.records import Answer, Citation, Claim
from assistant.safety import DISCLAIMER
from corpus.records import Chunk

WITHHELD = "Flagged at ingest: it reads as an instruction to an assistant, so it is never quoted."
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Phone numbers in our own guidance text (safety.GUIDANCE), dialled as written.
_PHONE = re.compile(r"\b(1-800-222-1222|116 123|911|112|999|988)\b")
URGENT_HEAD = "⚠ URGENT: this may be an emergency."


def contract_text(claims: Sequence[Claim]) -> str:
    """The JSON contract's `answer`: one markdown bullet per claim, its markers at the end."""
    lines = []
    for claim in claims:
        who = f"*{claim.label}:* " if claim.label else ""
        lines.append(f"- {who}{claim.text} {''.join(f'[{n}]' for n in claim.cites)}")
    return "\n".join(lines)


def urgent_text(message: str) -> str:
    """The JSON contract's `answer` for an emergency: the warning, then the guidance."""
    return f"**This may be an emergency.** {message}"


def doc_text(text: str) -> str:
    """Text from a document or the index as inert HTML, shown in its stored order.

    Escaped (never markup), and each bidirectional control made visible, so "0.5 mg" with a
    hidden U+202E cannot display as "gm 5.0".
    """
    return _BIDI.sub(
        lambda m: f"<span class='ctl' title='hidden direction control'>[U+{ord(m[0]):04X}]</span>",
        html.escape(text, quote=True),
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


def sources_html(citations: Sequence[Citation], key: str) -> str:
    """The answer's sources: grouped by document (its title once), one card per passage."""
    by_doc: dict[str, dict[str, list[Citation]]] = {}
    for c in citations:
        by_doc.setdefault(c.source, {}).setdefault(c.chunk_id, []).append(c)
    groups = []
    for passages in by_doc.values():
        first = next(iter(passages.values()))[0]
        cards = "".join(_card(group, key) for group in passages.values())
        groups.append(
            f"<div class='doc-group'><div class='doc-title'><bdi>{doc_text(first.title)}</bdi> "
            f"<span class='src-meta'>· {doc_text(first.kind)} · <bdi>{doc_text(first.source)}"
            f"</bdi></span></div>{cards}</div>"
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
    """Questions the documents answer, near this one; each sends when clicked."""
    if not suggestions:
        return ""
    buttons = "".join(
        f"<button type='button' class='suggest'>{doc_text(s)}</button>" for s in suggestions
    )
    return f"<div class='next'><span class='next-label'>Ask next:</span> {buttons}</div>"


def body_html(answer: Answer, key: str, *, upto: int | None = None) -> str:
    """What the answer says (the first `upto` claims while streaming), before its extras."""
    if answer.status == "answered" and answer.citations:
        claims = answer.claims[:upto] if upto is not None else answer.claims
        items = "".join(claim_html(c, key) for c in claims)
        return f"<ul class='claims'>{items}</ul>"
    said = " ".join(c.text for c in answer.claims) if answer.claims else answer.answer
    if answer.status == "urgent":
        linked = _PHONE.sub(
            lambda m: f"<a href='tel:{m[1].replace(' ', '').replace('-', '')}'>{m[1]}</a>",
            html.escape(said),
        )
        return f"<p><strong>{URGENT_HEAD}</strong> {linked}</p>"
    return f"<p class='said'>{doc_text(said)}</p>"  # refusals name titles and sections


def answer_html(answer: Answer, key: str) -> str:
    """The whole chat bubble: answer, its sources, next questions, copy text and disclaimer."""
    note = ""
    if answer.fallback is not None:
        note = f"Showing the documents' own sentences: {answer.fallback.detail}."
    elif answer.made_by == "llm":
        note = "Written by the LLM; each sentence was checked against the quote it cites."
    parts = [
        body_html(answer, key),
        f"<p class='note'><small>{html.escape(note)}</small></p>" if note else "",
        sources_html(answer.citations, key) if answer.citations else "",
        suggestions_html(answer.suggestions),
        "<div class='tools'><button type='button' class='copy-text'>Copy answer</button></div>",
        f"<div class='plain'>{html.escape(plain_text(answer))}</div>",
        f"<p class='disclaimer-line'><small>⚕️ {html.escape(DISCLAIMER)}</small></p>",
    ]
    role = " role='alert'" if answer.status == "urgent" else ""
    return f"<div class='reply reply-{answer.status}'{role}>{''.join(parts)}</div>"


def streaming_html(answer: Answer, key: str, shown: int) -> str:
    """The bubble while its sentences appear one by one."""
    return f"<div class='reply reply-{answer.status}'>{body_html(answer, key, upto=shown)}</div>"


def plain_text(answer: Answer) -> str:
    """The answer as clean text: its sentences with markers, then a plain source list."""
    if answer.status == "answered" and answer.citations:
        lines = []
        for claim in answer.claims:
            who = f"{claim.label}: " if claim.label else ""
            lines.append(f"- {who}{claim.text} {''.join(f'[{n}]' for n in claim.cites)}")
        lines += ["", "Sources:"]
        for c in answer.citations:
            section = f", “{c.section}”" if c.section and c.section != c.title else ""
            lines.append(f"[{c.n}] {c.title}{section} ({c.source}): “{c.quote}”")
        text = "\n".join(lines)
    elif answer.claims:
        head = URGENT_HEAD + " " if answer.status == "urgent" else ""
        text = head + " ".join(c.text for c in answer.claims)
        if answer.suggestions:
            text += "\n\nYou could ask:\n" + "\n".join(f"- {s}" for s in answer.suggestions)
    else:
        text = answer.answer
    return _BIDI.sub(lambda m: f"[U+{ord(m[0]):04X}]", f"{text}\n\n{DISCLAIMER}")


def document_html(chunks: Sequence[Chunk], target: str) -> str:
    """A whole document as indexed, section by section, with the cited passage marked."""
    if not chunks:
        return "<p>That document is no longer in the index.</p>"
    out = [f"<h3><bdi>{doc_text(chunks[0].title)}</bdi></h3>"]
    out.append(
        f"<p class='src-meta'>{doc_text(chunks[0].kind)} · <bdi>{doc_text(chunks[0].source)}"
        "</bdi></p>"
    )
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
    return "".join(out)
