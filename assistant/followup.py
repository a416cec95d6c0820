"""Follow-up questions: read a question with the user's previous one when that answers better."""

from __future__ import annotations

from collections.abc import Sequence

from assistant.answer import Answerability
from assistant.inputs import Turn

FOLLOW_UP_MARGIN = 0.15  # the question read with the last one must beat it read alone by this


def follow_up_query(question: str, history: Sequence[Turn]) -> str | None:
    """The question read with the user's previous one, or None without a previous one."""
    previous = [t["content"] for t in history if t.get("role") == "user" and t.get("content")]
    return f"{previous[-1]} {question}" if previous else None


def worth_joining(alone: Answerability) -> bool:
    """Should the previous question be tried too? Not when the question alone is clearly answered."""
    return not alone.answerable or alone.probability < 1.0 - FOLLOW_UP_MARGIN


def joined_is_better(alone: Answerability, together: Answerability) -> bool:
    """Does reading the question with the previous one answer clearly better than alone?"""
    return together.answerable and together.probability >= alone.probability + FOLLOW_UP_MARGIN
