"""Text renderers: the JSON contract's answer text, and an Answer as clean text for a clipboard.

The chat's HTML renderers live in `ui.render`; nothing here is markup.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.records import Answer, Claim
from assistant.safety import DISCLAIMER

BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")  # direction controls
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
    return BIDI.sub(lambda m: f"[U+{ord(m[0]):04X}]", f"{text}\n\n{DISCLAIMER}")
