"""Words: tokenising, stemming, stopwords, rare words, and typo-tolerant vocabulary matching.

Nothing here decides anything on its own: these are the features the evidence is measured with.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import Stemmer

_WORD = re.compile(r"[a-z]+(?:['’][a-z]+)?|\d+(?:[.,]\d+)*")
_STEMMER = Stemmer.Stemmer("english")

STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do
    does doesn't doing don't down during each few for from further had hadn't has hasn't
    have haven't having he he'd he'll he's her here here's hers herself him himself his how
    how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most
    mustn't my myself no nor not of off on once only or other ought our ours ourselves out
    over own same shan't she she'd she'll she's should shouldn't so some such than that
    that's the their theirs them themselves then there there's these they they'd they'll
    they're they've this those through to too under until up very was wasn't we we'd we'll
    we're we've were weren't what what's when when's where where's which while who who's
    whom why why's with won't would wouldn't you you'd you'll you're you've your yours
    yourself yourselves also just really actually please thanks thank hi hello hey ok okay s
    t will shall may might must get got gets getting much many lot lots thing things
    something anything everything one ones whether either etc yes whats hows whos wheres
    whens whys dont doesnt isnt arent cant couldnt wont wouldnt shouldnt didnt im ive id
    youre theyre thats theres u ur r wat pls plz two three four both less fewer""".split()
)

RARE_ZIPF = 4.0  # below this Zipf frequency a word is rare in general English (wordfreq)


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens (keeps numbers; strips possessive 's)."""
    words = _WORD.findall(text.lower().replace("’", "'"))
    return [w[:-2] if w.endswith("'s") else w for w in words]


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Snowball English stem of one lower-case word."""
    return _STEMMER.stemWord(word)


def index_terms(text: str) -> list[str]:
    """Stemmed non-stopword tokens: what BM25 indexes and what coverage compares."""
    return [stem(w) for w in tokens(text) if w not in STOPWORDS]


def key_terms(question: str) -> dict[str, str]:
    """What a question is about: stem -> the word as asked, stopwords left out."""
    seen: dict[str, str] = {}
    for word in tokens(question):
        if word in STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        seen.setdefault(stem(word), word)
    return seen


@lru_cache(maxsize=65536)
def is_rare(word: str) -> bool:
    """Is this word rare in general English (wordfreq Zipf below RARE_ZIPF)? Numbers are not."""
    from wordfreq import zipf_frequency

    return not word[:1].isdigit() and zipf_frequency(word, "en") < RARE_ZIPF


def numbers(text: str) -> set[str]:
    """The numbers written in a text ('1', '0.5', '2008')."""
    return {w for w in tokens(text) if w[:1].isdigit()}


def _edits1(a: str, b: str) -> bool:
    """True when a and b differ by at most one insertion, deletion, substitution or swap."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]


@dataclass
class Vocabulary:
    """The stems of a corpus, with fuzzy lookup for typos and word-family variants."""

    stems: frozenset[str]
    idf: dict[str, float] = field(default_factory=dict)
    _by_prefix: dict[str, set[str]] = field(default_factory=dict)
    _cache: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, texts: Iterable[str]) -> Vocabulary:
        """Vocabulary of every stem in texts, with inverse document frequencies."""
        counts: Counter[str] = Counter()
        n = 0
        for text in texts:
            counts.update(set(index_terms(text)))
            n += 1
        idf = {s: math.log(1 + n / df) for s, df in counts.items()}
        vocabulary = cls(frozenset(counts), idf)
        stems = vocabulary.stems
        for s in stems:
            vocabulary._by_prefix.setdefault(s[:3], set()).add(s)
        return vocabulary

    def variants(self, term: str) -> frozenset[str]:
        """Corpus stems that `term` matches: itself, a shared 5+ letter prefix, or one typo."""
        if term in self._cache:
            return self._cache[term]
        found = {term} & self.stems
        if len(term) >= 4:
            for candidate in self._by_prefix.get(term[:3], ()):
                if _same_family(term, candidate) or (len(term) >= 6 and _edits1(term, candidate)):
                    found.add(candidate)
            if len(term) >= 5 and not found:  # a typo in the first three letters, or a compound
                found.update(
                    c
                    for c in self.stems
                    if (len(c) >= 5 and _edits1(term, c)) or (len(term) >= 6 and c.endswith(term))
                )
        result = frozenset(found)
        self._cache[term] = result
        return result

    def weight(self, term: str) -> float:
        """How telling a term is: rare words weigh more than ones every passage uses."""
        known = [self.idf[v] for v in self.variants(term)]
        return max(known) if known else math.log(1 + 2 * max(len(self.idf), 1))


def _same_family(a: str, b: str) -> bool:
    """One stem extends the other by a suffix ('groggi'/'grogginess', 'dose'/'dosag')."""
    short, long = sorted((a, b), key=len)
    if not long.startswith(short):
        return False
    return len(short) >= 5 or (len(short) == 4 and len(long) - len(short) <= 2)
