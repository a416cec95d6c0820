"""Labelled (question, sentence) pairs about documents nobody here wrote.

Sources (the datasheet, `evals/reader/data/README.md`, says who wrote what under which licence):
- the original SQuAD 2.0 and COVID-QA questions of the training articles: the sentence holding
  the gold answer is positive, other sentences near it are hard negatives; SQuAD's impossible
  questions are negative against the sentences of their paragraph that share most words;
- lay rewrites of those questions, written blind by helpers (`lay_*.jsonl`): same labels;
- near-topic questions written by helpers (`near_*.jsonl`): a question the sentence seems to
  answer but does not, negative against that sentence and the one before it;
- matched questions (`match_*.jsonl`, kept in `unused/`: tried, not shipped, see the datasheet):
  a question about the very group, condition or caution a sentence names, positive against it;
- contrast twins (`contrast_*.jsonl`): each matched question minimally edited by another helper
  so that its sentence no longer answers it (another person, substance, condition, place or
  number); negative against that sentence and the one before, in the matched question's group,
  so the listwise term ranks the matched question's sentence above the same sentence read for
  its twin;
- follow-ups (`follow_*.jsonl`; the training ones in `unused/`, the held-out ones measured): a
  first question and an elliptical follow-up, read joined as
  the app reads them (`assistant.followup.follow_up_query`): the follow-up's own sentence is
  positive, the first question's sentence is a hard negative (the app must not repeat it), and
  a follow-up the passage does not answer is negative against both.

Articles are split once (`evals.datasets.reader_split`): pairs about `train` articles train the
reader; `heldout` articles (where the gate is calibrated and the external evals run) never do.
Our own two documents and eval questions are never used here.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from assistant.followup import follow_up_query
from corpus.sentences import sentence_spans
from evals.datasets import (
    COVIDQA,
    DEFAULT_DATA,
    SQUAD,
    Dataset,
    ExternalQuestion,
    read_json,
    reader_split,
    squad,
)
from evals.reader.pairs import Pair

DATA = Path(__file__).resolve().with_name("data")
WINDOW = 5  # a COVID-QA article is long: its candidates are the gold sentence's neighbours
NEGATIVES = 4  # hard negatives per answerable question (a group to rank the gold one in)
SQUAD_ORIGINALS = 1000  # original SQuAD questions sampled for training (lay data is the point)


@dataclass(frozen=True)
class Item:
    """An original question (or a sentence) with its article's sentences around it."""

    qid: str
    article: str
    heading: str
    question: str
    answers: tuple[str, ...]
    gold: int  # index of the gold sentence in `sentences`, -1 when unanswerable
    sentences: tuple[str, ...]


def _contains(sentence: str, answers: tuple[str, ...]) -> bool:
    folded = " ".join(sentence.lower().split())
    return any(" ".join(a.lower().split()) in folded for a in answers if a.strip())


def squad_items(data_dir: Path = DEFAULT_DATA) -> Iterator[Item]:
    """SQuAD questions with their paragraph's sentences (impossible ones have gold -1)."""
    for article in read_json(data_dir, SQUAD)["data"]:
        title = article["title"].replace("_", " ")
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            spans = sentence_spans(context)
            texts = tuple(context[s:e] for s, e in spans)
            for qa in paragraph["qas"]:
                answers = tuple(a["text"] for a in qa["answers"])
                gold = -1
                if not qa.get("is_impossible"):
                    start = qa["answers"][0]["answer_start"]
                    end = start + len(qa["answers"][0]["text"])
                    inside = [i for i, (s, e) in enumerate(spans) if s <= start and end <= e]
                    if not inside:
                        continue  # the answer crosses a sentence boundary: no one gold sentence
                    gold = inside[0]
                yield Item(str(qa["id"]), title, title, qa["question"], answers, gold, texts)


def covid_items(data_dir: Path = DEFAULT_DATA) -> Iterator[Item]:
    """COVID-QA questions with the sentences around their gold sentence (a window)."""
    for article in read_json(data_dir, COVIDQA)["data"]:
        paragraph = article["paragraphs"][0]
        context = paragraph["context"]
        doc = f"covid-{paragraph['document_id']}"
        title = context.strip().split("\n")[0][:200]
        spans = sentence_spans(context)
        for qa in paragraph["qas"]:
            answer = qa["answers"][0]
            start, end = answer["answer_start"], answer["answer_start"] + len(answer["text"])
            inside = [i for i, (s, e) in enumerate(spans) if s <= start and end <= e]
            if not inside:
                continue
            lo, hi = max(0, inside[0] - WINDOW), min(len(spans), inside[0] + WINDOW + 1)
            texts = tuple(context[s:e] for s, e in spans[lo:hi])
            answers = (answer["text"],)
            yield Item(str(qa["id"]), doc, title, qa["question"], answers, inside[0] - lo, texts)


def sentence_items(data_dir: Path = DEFAULT_DATA) -> dict[str, Item]:
    """Every sentence by its id (`squad:TITLE:P:S`, `covid:DOC:S`), as the helpers saw them."""
    found: dict[str, Item] = {}
    for article in read_json(data_dir, SQUAD)["data"]:
        title = article["title"].replace("_", " ")
        for p, paragraph in enumerate(article["paragraphs"]):
            context = paragraph["context"]
            texts = tuple(context[s:e] for s, e in sentence_spans(context))
            for s in range(len(texts)):
                sid = f"squad:{article['title']}:{p}:{s}"
                found[sid] = Item(sid, title, title, "", (), s, texts)
    for article in read_json(data_dir, COVIDQA)["data"]:
        paragraph = article["paragraphs"][0]
        context = paragraph["context"]
        title = context.strip().split("\n")[0][:200]
        spans = sentence_spans(context)
        for s in range(len(spans)):
            lo, hi = max(0, s - WINDOW), min(len(spans), s + WINDOW + 1)
            texts = tuple(context[a:b] for a, b in spans[lo:hi])
            sid = f"covid:{paragraph['document_id']}:{s}"
            found[sid] = Item(
                sid, f"covid-{paragraph['document_id']}", title, "", (), s - lo, texts
            )
    return found


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 3}


def answerable_pairs(
    item: Item, question: str, source: str, rng: random.Random, negatives: int = NEGATIVES
) -> list[Pair]:
    """The gold sentence (1) and up to `negatives` sentences near it that hold no answer (0)."""
    pairs = [
        Pair(question, item.sentences[item.gold], item.heading, 1, source, item.article, item.qid)
    ]
    others = [
        s
        for i, s in enumerate(item.sentences)
        if i != item.gold and not _contains(s, item.answers) and len(s) > 20
    ]
    for s in rng.sample(others, min(negatives, len(others))):
        pairs.append(Pair(question, s, item.heading, 0, source, item.article, item.qid))
    return pairs


def impossible_pairs(item: Item, source: str = "squad-impossible") -> list[Pair]:
    """An unanswerable question against the two sentences of its paragraph that share most words."""
    asked = _words(item.question)
    ranked = sorted(item.sentences, key=lambda s: -len(asked & _words(s)))
    return [
        Pair(item.question, s, item.heading, 0, source, item.article, item.qid) for s in ranked[:2]
    ]


def read_jsonl(path: Path) -> list[dict]:
    """The JSON objects of a JSONL file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def build(
    data_dir: Path = DEFAULT_DATA, folder: Path = DATA, seed: int = 23
) -> dict[str, list[Pair]]:
    """All pairs, by split (`train`, `heldout`), from the datasets and the helpers' files."""
    rng = random.Random(seed)
    items = {i.qid: i for i in [*squad_items(data_dir), *covid_items(data_dir)]}
    pairs: dict[str, list[Pair]] = {"train": [], "heldout": []}
    originals = [i for i in items.values() if reader_split(i.article) == "train"]
    squad_answerable = [i for i in originals if i.gold >= 0 and not i.article.startswith("covid-")]
    rng.shuffle(squad_answerable)
    for item in squad_answerable[:SQUAD_ORIGINALS]:
        pairs["train"] += answerable_pairs(item, item.question, "squad-original", rng)
    for item in originals:
        if item.article.startswith("covid-"):
            pairs["train"] += answerable_pairs(item, item.question, "covid-original", rng)
        elif item.gold < 0:
            pairs["train"] += impossible_pairs(item)
    for path in sorted(folder.glob("lay_*.jsonl")):
        for n, row in enumerate(read_jsonl(path)):
            item = items[row["qid"]]
            group = f"{item.qid}/{path.stem}/{n}"
            split = reader_split(item.article)
            rewrite = Item(
                group,
                item.article,
                item.heading,
                row["question"],
                item.answers,
                item.gold,
                item.sentences,
            )
            pairs[split] += answerable_pairs(rewrite, row["question"], "lay", rng)
    sentences = sentence_items(data_dir)
    for path in sorted(folder.glob("near_*.jsonl")):
        for n, row in enumerate(read_jsonl(path)):
            item = sentences[row["sid"]]
            group = f"{row['sid']}/{path.stem}/{n}"
            split = reader_split(item.article)
            chosen = [item.sentences[item.gold]]
            if item.gold > 0:
                chosen.append(item.sentences[item.gold - 1])
            for s in chosen:
                pairs[split].append(
                    Pair(row["question"], s, item.heading, 0, "near-topic", item.article, group)
                )
    for path in sorted(folder.glob("match_*.jsonl")):
        for n, row in enumerate(read_jsonl(path)):
            item = sentences[row["sid"]]
            group = f"{row['sid']}/{path.stem}/{n}"
            matched = replace(item, qid=group, question=row["question"])
            pairs[reader_split(item.article)] += answerable_pairs(
                matched, row["question"], "match", rng
            )
    for path in sorted(folder.glob("contrast_*.jsonl")):
        matched_stem = path.stem.replace("contrast_", "match_")
        for row in read_jsonl(path):
            item = sentences[row["sid"]]
            group = f"{row['sid']}/{matched_stem}/{row['n']}"  # the matched question's group
            chosen = [item.sentences[item.gold], *item.sentences[max(0, item.gold - 1) : item.gold]]
            pairs[reader_split(item.article)] += [
                Pair(row["question"], s, item.heading, 0, "contrast", item.article, group)
                for s in chosen
            ]
    for path in sorted(folder.glob("follow_*.jsonl")):
        for n, row in enumerate(read_jsonl(path)):
            first = sentences[row["first_sid"]]
            group = f"{row['first_sid']}/{path.stem}/{n}"
            split = reader_split(first.article)
            joined = joined_question(row)
            before = first.sentences[first.gold]
            if row["answerable"]:
                item = replace(sentences[row["sid"]], qid=group, question=joined)
                found = [
                    p
                    for p in answerable_pairs(item, joined, "follow-up", rng, NEGATIVES - 1)
                    if p.label or p.sentence != before
                ]
                found.append(
                    Pair(joined, before, item.heading, 0, "follow-up", item.article, group)
                )
            else:
                chosen = [before, *first.sentences[max(0, first.gold - 1) : first.gold]]
                found = [
                    Pair(joined, s, first.heading, 0, "follow-up-not", first.article, group)
                    for s in chosen
                ]
            pairs[split] += found
    return pairs


def joined_question(row: dict) -> str:
    """A follow-up read with the first question, as the app reads one."""
    history = [{"role": "user", "content": row["first"]}]
    return follow_up_query(row["question"], history) or row["question"]


def candidate_sets(
    data_dir: Path = DEFAULT_DATA, folder: Path = DATA, split: str = "heldout"
) -> list[tuple[str, str, tuple[str, ...], int, str]]:
    """Held-out questions with all their candidate sentences: (source, question, sentences,
    target, heading). The target is the gold sentence of a lay question, and the sentence a
    near-topic question was written against (which does not answer it)."""
    items = {i.qid: i for i in [*squad_items(data_dir), *covid_items(data_dir)]}
    sets = []
    for path in sorted(folder.glob("lay_*.jsonl")):
        for row in read_jsonl(path):
            item = items[row["qid"]]
            if reader_split(item.article) == split:
                sets.append(("lay", row["question"], item.sentences, item.gold, item.heading))
    sentences = sentence_items(data_dir)
    for path in sorted(folder.glob("near_*.jsonl")):
        for row in read_jsonl(path):
            item = sentences[row["sid"]]
            if reader_split(item.article) == split:
                sets.append(
                    ("near-topic", row["question"], item.sentences, item.gold, item.heading)
                )
    for path in sorted(folder.glob("follow_*.jsonl")):
        for row in read_jsonl(path):
            first = sentences[row["first_sid"]]
            if reader_split(first.article) != split:
                continue
            if row["answerable"]:  # the first question's sentence is among the candidates
                item = sentences[row["sid"]]
                texts = item.sentences
                if first.sentences[first.gold] not in texts:
                    texts = (*texts, first.sentences[first.gold])
                sets.append(("follow-up", joined_question(row), texts, item.gold, item.heading))
            else:  # its target: the first question's sentence, which does not answer it
                sets.append(
                    (
                        "follow-up-not",
                        joined_question(row),
                        first.sentences,
                        first.gold,
                        first.heading,
                    )
                )
    return sets


def write(pairs: dict[str, list[Pair]], folder: Path = DATA) -> dict[str, Path]:
    """Each split's pairs as JSONL (`pairs-train.jsonl`, `pairs-heldout.jsonl`)."""
    written = {}
    for split, rows in pairs.items():
        path = folder / f"pairs-{split}.jsonl"
        path.write_text(
            "".join(json.dumps(asdict(p), ensure_ascii=False) + "\n" for p in rows), "utf-8"
        )
        written[split] = path
    return written


def lay_foreign(data_dir: Path = DEFAULT_DATA, folder: Path = DATA) -> Dataset:
    """The held-out lay rewrites (answerable) and near-topic questions (not) about the SQuAD
    articles the reader never trained on, asked of SQuAD's corpus: lay-typed data for the gate.

    Alternate questions of each kind are `calib` and `eval`.
    """
    corpus = squad(data_dir)
    items = {i.qid: i for i in squad_items(data_dir)}
    sentences = sentence_items(data_dir)
    lay = [
        (row["question"], items[row["qid"]].answers)
        for row in read_jsonl(folder / "lay_heldout.jsonl")
        if row["qid"] in items and reader_split(items[row["qid"]].article) == "heldout"
    ]
    near = [
        (row["question"], ())
        for row in read_jsonl(folder / "near_heldout.jsonl")
        if row["sid"].startswith("squad:")
        and reader_split(sentences[row["sid"]].article) == "heldout"
    ]
    questions = tuple(
        ExternalQuestion(f"{kind}-{n}", question, answers, "calib" if n % 2 == 0 else "eval")
        for kind, rows in (("lay", lay), ("near", near))
        for n, (question, answers) in enumerate(rows)
    )
    return Dataset("lay-foreign", corpus.articles, questions, corpus="squad2")
