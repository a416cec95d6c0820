"""Every reply the assistant words itself: refusals, small talk, overviews, suggestions, errors.

The grounded answer's sentences come from the documents (or a checked LLM); everything said in
the assistant's own voice is written here, from typed parts.
"""

from __future__ import annotations

from collections.abc import Sequence

from assistant.records import Answer, Claim, Draft, UrgentKind
from assistant.render import contract_text, urgent_text
from assistant.safety import DISCLAIMER
from corpus.records import Chunk

OVERVIEW_SECTIONS = 6  # sections named per document in an overview; the rest are counted


def answered(draft: Draft, query: str, suggestions: tuple[str, ...]) -> Answer:
    """A grounded answer from a checked draft."""
    return Answer(
        "answered",
        contract_text(draft.claims),
        draft.citations,
        DISCLAIMER,
        query=query,
        made_by=draft.made_by,
        fallback=draft.fallback,
        suggestions=suggestions,
        claims=draft.claims,
        removed=draft.removed,
    )


def refusal(query: str, near: Chunk | None, suggestions: tuple[str, ...], who: str = "") -> Answer:
    """Say the documents don't answer, what they say closest to it, who to ask, and what they
    do answer. `who` (a professional, see `referral.WHO`) is named when the documents came close:
    a near-topic question is a health question about someone's own situation."""
    if near is not None:  # one line: the section and the kind of document (its card has the title)
        where = f"the {near.kind} “{near.title}”"
        if near.section and near.section != near.title:
            where = f"the section “{near.section}” of the {near.kind}"
        head = f"My documents don't answer that. The closest they come is {where}."
        if who:
            head += f" For your own situation, please ask {who}."
    else:
        head = "My documents don't answer that."
    text = head + (" You could ask: " + " · ".join(suggestions) if suggestions else "")
    return Answer(
        "refused",
        text,
        (),
        DISCLAIMER,
        query=query,
        reason="not-covered",
        suggestions=suggestions,
        claims=(Claim(head, ()),),
    )


def small_talk(chunks: Sequence[Chunk], suggestions: tuple[str, ...]) -> Answer:
    """A short friendly reply that says what can be asked (the Index panel lists the titles)."""
    count = len({c.doc_id for c in chunks})
    text = (
        f"Happy to help! I answer from {count} document{'s' if count != 1 else ''}; ask me "
        "anything they cover, or ask what they cover."
    )
    return Answer("answered", text, (), DISCLAIMER, reason="smalltalk", suggestions=suggestions)


def overview(text: str, suggestions: tuple[str, ...]) -> Answer:
    """The documents' overview (see `describe`) as an answer."""
    return Answer("answered", text, (), DISCLAIMER, reason="overview", suggestions=suggestions)


ENGLISH_ONLY = (
    "I can only read English, so I can't answer that message. Please ask in English. "
    "If this is an emergency, call your local emergency number now (911 in the US and Canada, "
    "112 in the EU, 999 in the UK); for a poisoning or overdose, Poison Control "
    "(1-800-222-1222 in the US) or your local poison centre; if you are thinking of ending your "
    "life, 988 in the US, 116 123 in the UK and Ireland, or your local crisis line."
)


def english_only(query: str) -> Answer:
    """A message in another language: say so in English, with every emergency number."""
    return Answer(
        "refused",
        ENGLISH_ONLY,
        (),
        DISCLAIMER,
        query=query,
        reason="not-english",
        claims=(Claim(ENGLISH_ONLY, ()),),
    )


def error_answer(message: str) -> Answer:
    """Input that is not a question, or a failure, said plainly."""
    return Answer("error", message, (), DISCLAIMER, error=message)


def urgent_answer(message: str, kind: UrgentKind = "emergency") -> Answer:
    """Emergency guidance only: no retrieval, no dosing."""
    return Answer(
        "urgent",
        urgent_text(message),
        (),
        DISCLAIMER,
        reason=kind,
        claims=(Claim(message, ()),),
    )


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


def short(exc: Exception) -> str:
    """An exception's first line, at most 160 characters, for a message to a user."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
