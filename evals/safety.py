"""python -m evals.safety: the safety front (triage, the English check) on held-out messages.

Reads the `test` split of `evals/data/triage.jsonl` (authors who wrote nothing the models were fitted
on): emergencies and near-misses, in other languages, slang, leetspeak, emoji, long messages and
conversations where only an earlier turn says what happened. For each message it reports what the
user would get: `urgent` (emergency guidance), `english-only` (the English-only reply, which
always carries the emergency numbers) or an ordinary answer path. "message alone" reads
as the front before issue 24 did (the message alone, zero-width spaces deleted, the first 4,000
characters, no English check); "now" is `assistant.safety.Triage` and
`assistant.language.LanguageCheck`.

Writes `evals/reports/safety.md`.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Callable, Sequence

from assistant.inputs import bounded_history, normalise
from assistant.language import LanguageCheck
from assistant.safety import Triage
from evals.calibrate import publish, triage_rows

log = logging.getLogger("evals.safety")

Front = Callable[[dict], str]  # a labelled row -> "urgent", "english-only" or "answer"


def before(triage: Triage) -> Front:
    """The front before issue 24: the message alone, as the old door read it."""

    def front(row: dict) -> str:
        text = normalise(row["text"][:4000].replace("\u200b", ""))
        return "urgent" if triage(text) else "answer"

    return front


def after(triage: Triage, language: LanguageCheck) -> Front:
    """The front now: the whole message with the user's previous turn, then the English check."""

    def front(row: dict) -> str:
        text = normalise(row["text"])
        if triage(text, bounded_history(row.get("history") or [])):
            return "urgent"
        said = [t["content"] for t in bounded_history(row.get("history")) if t["role"] == "user"]
        return "english-only" if language.foreign(text, said[-1] if said else "") else "answer"

    return front


def table(rows: Sequence[dict], fronts: dict[str, Front]) -> list[str]:
    """Per front: emergencies given the numbers (urgent, or the English-only reply that carries
    them), urgent alone, and false alarms among the ordinary messages."""
    lines = [
        "| front | emergencies given the numbers | of them as urgent | ordinary messages "
        "flagged urgent | English messages read as foreign |",
        "|---|---|---|---|---|",
    ]
    outcomes = {}
    for name, front in fronts.items():
        got = [front(r) for r in rows]
        outcomes[name] = got
        urgent = [g for g, r in zip(got, rows, strict=True) if r["label"] == "urgent"]
        ok = [g for g, r in zip(got, rows, strict=True) if r["label"] != "urgent"]
        english_ok = [
            g
            for g, r in zip(got, rows, strict=True)
            if r.get("language", "en") == "en" and r["label"] != "urgent"
        ]
        numbers = sum(g != "answer" for g in urgent)
        lines.append(
            f"| {name} | {numbers / len(urgent):.3f} ({numbers}/{len(urgent)}) "
            f"| {urgent.count('urgent') / len(urgent):.3f} "
            f"| {ok.count('urgent') / len(ok):.3f} ({ok.count('urgent')}/{len(ok)}) "
            f"| {english_ok.count('english-only')}/{len(english_ok)} |"
        )
    return lines + _misses(rows, outcomes)


def by_author(rows: Sequence[dict], front: Front) -> list[str]:
    """One front per held-out author: each wrote a different kind of message."""
    lines = [
        "| author | kinds | emergencies given the numbers | ordinary messages flagged urgent |",
        "|---|---|---|---|",
    ]
    for author in sorted({r["author"] for r in rows}):
        mine = [r for r in rows if r["author"] == author]
        got = [front(r) for r in mine]
        urgent = [g for g, r in zip(got, mine, strict=True) if r["label"] == "urgent"]
        ok = [g for g, r in zip(got, mine, strict=True) if r["label"] != "urgent"]
        kinds = ", ".join(sorted({r["kind"] for r in mine}))
        caught = sum(g != "answer" for g in urgent)
        lines.append(
            f"| {author} | {kinds} | {caught}/{len(urgent)} | {ok.count('urgent')}/{len(ok)} |"
        )
    return lines


def _misses(rows: Sequence[dict], outcomes: dict[str, list[str]]) -> list[str]:
    last = list(outcomes)[-1]
    got = outcomes[last]
    by_kind: Counter[str] = Counter()
    missed_kind: Counter[str] = Counter()
    for g, r in zip(got, rows, strict=True):
        if r["label"] == "urgent":
            by_kind[r["kind"]] += 1
            missed_kind[r["kind"]] += g == "answer"
    lines = ["", f"Emergencies missed by `{last}`, by kind:", ""]
    lines += [f"- {k}: {missed_kind[k]} of {n}" for k, n in sorted(by_kind.items())]
    lines += ["", "Missed emergencies and false alarms (`after`):", ""]
    for g, r in zip(got, rows, strict=True):
        wrong = (r["label"] == "urgent" and g == "answer") or (
            r["label"] != "urgent" and g == "urgent"
        )
        if wrong:
            said = " / ".join(
                t["content"][:80] for t in r.get("history") or [] if t["role"] == "user"
            )
            context = f" (after: {said})" if said else ""
            lines.append(f"- {r['label']}, {r['kind']}: {r['text'][:160]!r}{context}")
    return lines


def language_table(rows: Sequence[dict]) -> list[str]:
    """The English check alone, at its settings and without its length rule, on messages
    labelled with their language (and the helpers' lay rewrites, all English)."""
    from evals.reader.data import DATA, read_jsonl

    lay = [r["question"] for p in sorted(DATA.glob("lay_*.jsonl")) for r in read_jsonl(p)]
    foreign = [normalise(r["text"]) for r in rows if r.get("language", "en") not in ("en", "und")]
    english = [normalise(r["text"]) for r in rows if r.get("language", "en") == "en"] + lay
    lines = [
        "| English check | other languages caught | English messages read as foreign |",
        "|---|---|---|",
    ]
    for name, check in (
        ("in use", LanguageCheck()),
        ("without the 10-letter minimum", LanguageCheck(min_letters=0)),
    ):
        caught = sum(check.foreign(t) for t in foreign)
        misread = [t for t in english if check.foreign(t)]
        lines.append(
            f"| {name} | {caught / len(foreign):.3f} ({caught}/{len(foreign)}) | "
            f"{len(misread) / len(english):.4f} ({len(misread)}/{len(english)}) |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Measure both fronts on the held-out split and write the report."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from corpus.models import SentenceEncoder

    encoder = SentenceEncoder()
    triage = Triage(encoder)
    triage.warm_up()
    language = LanguageCheck()
    test = triage_rows("test")
    lines = [
        "# The safety front on held-out messages",
        "",
        f"`evals/data/triage.jsonl`, test split: {len(test)} messages "
        f"({sum(r['label'] == 'urgent' for r in test)} emergencies), written by authors whose "
        "messages were never fitted on. Regenerated by `python -m evals.safety`.",
        "",
        "Before issue 24 (a logistic model over bge-small vectors reading the message alone)"
        " this split gave the numbers to 0.719 of its emergencies (123/171) with 0.114 false"
        " alarms (22/193). Below, `message alone` is today's model reading only the message, as"
        " the old front did; `now` adds the readings (whole message, windows, spelt out, the"
        " previous user turn) and the English check.",
        "",
        *table(test, {"message alone": before(triage), "now": after(triage, language)}),
        "",
        "`now`, by author (H and K: long messages only; J: messages naming the documents'"
        " products; all three written after the front was built, to check it):",
        "",
        *by_author(test, after(triage, language)),
        "",
        *language_table(test),
        "",
        "The English check's settings were chosen looking at both new authors' messages and the"
        " lay rewrites together, so its row is not strictly held out.",
    ]
    publish("safety.md", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
