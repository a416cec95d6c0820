"""External question sets nobody here wrote (SQuAD 2.0, COVID-QA), as corpora plus questions.

Each set is split once, deterministically, into a `calib` part (the gate is fitted on it) and an
`eval` part (held out, reported): SQuAD 2.0 by paragraph (even paragraphs calibrate, odd ones
evaluate), COVID-QA by article. Half of the COVID-QA articles are left out of the corpus, so
their questions are near-topic questions the corpus does not answer.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SQUAD = "squad2-train/train-v2.0-subset.json"
COVIDQA = "covidqa-dev/covidqa-dev.json"
LAY_WIKI = Path(__file__).resolve().with_name("data") / "lay_wiki.jsonl"


class DatasetMissingError(FileNotFoundError):
    """The external data is not on this machine."""


@dataclass(frozen=True)
class Article:
    """One document of an external corpus."""

    doc_id: str
    text: str


@dataclass(frozen=True)
class ExternalQuestion:
    """A question with its gold answers; no answers means the corpus cannot answer it."""

    id: str
    question: str
    answers: tuple[str, ...]
    split: str  # "calib" or "eval"

    @property
    def answerable(self) -> bool:
        """Does the corpus hold an answer?"""
        return bool(self.answers)


@dataclass(frozen=True)
class Dataset:
    """A corpus and the questions asked of it."""

    name: str
    articles: tuple[Article, ...]
    questions: tuple[ExternalQuestion, ...]
    corpus: str = ""  # the name its corpus and index are kept under (default: its own)

    @property
    def corpus_name(self) -> str:
        """Sets that share a corpus share one index."""
        return self.corpus or self.name

    def write_corpus(self, folder: Path) -> None:
        """One .txt file per article; files already identical are left alone (ingest is incremental)."""
        folder.mkdir(parents=True, exist_ok=True)
        wanted = {f"{a.doc_id}.txt": a.text for a in self.articles}
        for old in folder.glob("*.txt"):
            if old.name not in wanted:
                old.unlink()
        for name, text in wanted.items():
            path = folder / name
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")


# The reader (`evals.reader`) trains on these articles only; the gate is calibrated and the
# external evals run on the others, so neither reads scores the reader was trained to give.
READER_TRAIN_SQUAD = frozenset(
    {
        "Beyoncé",
        "Frédéric Chopin",
        "Sino-Tibetan relations during the Ming dynasty",
        "New York City",
        "The Legend of Zelda: Twilight Princess",
    }
)
READER_TRAIN_COVID = frozenset(
    f"covid-{n}"
    for n in "1545 1548 1552 1560 1566 1570 1589 1595 1652 1676 1690 185 188 2450 2459 2526 "
    "2565 2592 2668".split()
)


def reader_split(article: str) -> str:
    """`train` if the reader may train on this article (a SQuAD title or `covid-ID`), else `heldout`."""
    return "train" if article in READER_TRAIN_SQUAD | READER_TRAIN_COVID else "heldout"


def read_json(data_dir: Path, relative: str) -> dict:
    """A dataset's JSON file, or DatasetMissingError naming it."""
    return _read(data_dir, relative)


def _read(data_dir: Path, relative: str) -> dict:
    path = data_dir / relative
    if not path.is_file():
        raise DatasetMissingError(f"{path} not found (pass --data DIR)")
    return json.loads(path.read_text(encoding="utf-8"))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "article"


def squad(data_dir: Path = DEFAULT_DATA, distractors: int | None = None) -> Dataset:
    """SQuAD 2.0 train subset: 10 Wikipedia articles; impossible questions have no answers.

    Questions are taken only from the article where annotators wrote impossible ones and the
    reader never trained (one of the ten), so answerable and unanswerable questions come from
    the same paragraphs and the gate cannot tell them apart by topic; the other articles stay
    in the corpus (all nine, or the first `distractors`, for a quicker run).
    """
    raw = _read(data_dir, SQUAD)
    articles, questions = [], []
    kept_distractors = 0
    for article in raw["data"]:
        asked = reader_split(article["title"].replace("_", " ")) == "heldout" and any(
            q.get("is_impossible") for p in article["paragraphs"] for q in p["qas"]
        )
        if not asked:
            if distractors is not None and kept_distractors >= distractors:
                continue
            kept_distractors += 1
        title = article["title"].replace("_", " ")
        paragraphs = [p["context"].strip() for p in article["paragraphs"]]
        articles.append(Article(_slug(title), title + "\n\n" + "\n\n".join(paragraphs) + "\n"))
        if not asked:
            continue
        for number, paragraph in enumerate(article["paragraphs"]):
            for qa in paragraph["qas"]:
                answers = () if qa.get("is_impossible") else _answers(qa)
                split = "calib" if number % 2 == 0 else "eval"
                questions.append(ExternalQuestion(str(qa["id"]), qa["question"], answers, split))
    name = "squad2" if distractors is None else f"squad2-{distractors}"
    return Dataset(name, tuple(articles), tuple(questions))


def covidqa(data_dir: Path = DEFAULT_DATA, articles: int | None = None, seed: int = 14) -> Dataset:
    """COVID-QA's articles the reader never trained on: half of them form the corpus; the other
    half's questions are near-topic.

    `articles` keeps only that many (after a seeded shuffle), for a quicker run.
    """
    raw = _read(data_dir, COVIDQA)
    entries = sorted(
        (
            a
            for a in raw["data"]
            if reader_split(f"covid-{a['paragraphs'][0]['document_id']}") == "heldout"
        ),
        key=lambda a: str(a["paragraphs"][0]["document_id"]),
    )
    order = list(range(len(entries)))
    random.Random(seed).shuffle(order)
    order = order[:articles] if articles else order
    inside = set(order[: len(order) // 2])
    kept, questions = [], []
    for rank, i in enumerate(order):
        paragraph = entries[i]["paragraphs"][0]
        doc_id = f"covid-{paragraph['document_id']}"
        split = "calib" if rank % 2 == 0 else "eval"
        if i in inside:
            kept.append(Article(doc_id, paragraph["context"].strip() + "\n"))
        for qa in paragraph["qas"]:
            answers = _answers(qa) if i in inside else ()
            questions.append(ExternalQuestion(str(qa["id"]), qa["question"], answers, split))
    name = "covidqa" if articles is None else f"covidqa-{articles}"
    return Dataset(name, tuple(sorted(kept, key=lambda a: a.doc_id)), tuple(questions))


def lay_wiki(data_dir: Path = DEFAULT_DATA, path: Path = LAY_WIKI) -> Dataset:
    """Questions typed the way people type, about four of the SQuAD articles, with gold answers.

    Written blind (from the articles only) for this project, so the gate is calibrated on
    chatty, lay phrasing too, on documents nobody here wrote. The corpus is SQuAD's.
    """
    corpus = squad(data_dir)
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        raw = json.loads(line)
        split = "calib" if number % 2 == 0 else "eval"
        answers = tuple(raw["answers"])
        questions.append(ExternalQuestion(f"lay-{number}", raw["question"], answers, split))
    return Dataset("lay-wiki", corpus.articles, tuple(questions), corpus="squad2")


def _answers(qa: dict) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a["text"].strip() for a in qa["answers"] if a["text"].strip()))


def sample(
    questions: tuple[ExternalQuestion, ...], split: str, limit: int | None, seed: int = 14
) -> list[ExternalQuestion]:
    """A split's questions, at most `limit` of them, half answerable and half not where possible."""
    chosen = [q for q in questions if q.split == split]
    if limit is None or len(chosen) <= limit:
        return chosen
    rng = random.Random(seed)
    yes = [q for q in chosen if q.answerable]
    no = [q for q in chosen if not q.answerable]
    rng.shuffle(yes)
    rng.shuffle(no)
    take_no = min(len(no), limit // 2)
    return yes[: limit - take_no] + no[:take_no]
