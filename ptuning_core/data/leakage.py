"""Does a test split measure something? Overlap between splits (shared 5-word sequences, near
duplicates) and class balance. Used by ``data/build.py`` and the data tests on the bundled sets,
and usable on any user's train/test files."""
from __future__ import annotations

import collections
import re
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list:
    return _WORD.findall(text.lower())


def ngrams(text: str, n: int = 5) -> set:
    w = words(text)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def jaccard(a: str, b: str) -> float:
    sa, sb = set(words(a)), set(words(b))
    return len(sa & sb) / len(sa | sb) if sa and sb else 0.0


@dataclass
class Overlap:
    n: int  # examples in the checked split
    sharing: int  # of them, how many share a 5-gram with some training example
    examples: list  # a few (text, shared n-gram) pairs, for the message

    @property
    def fraction(self) -> float:
        return self.sharing / self.n if self.n else 0.0


def ngram_overlap(train_texts: list, other_texts: list, n: int = 5) -> Overlap:
    seen: set = set()
    for t in train_texts:
        seen |= ngrams(t, n)
    hits, shown = 0, []
    for t in other_texts:
        common = ngrams(t, n) & seen
        if common:
            hits += 1
            if len(shown) < 5:
                shown.append((t, " ".join(sorted(common)[0])))
    return Overlap(len(other_texts), hits, shown)


def near_duplicates(train_texts: list, other_texts: list, threshold: float = 0.6) -> list:
    """Pairs (other, train) whose word sets overlap by ``threshold`` (Jaccard) or more, exact
    duplicates (ignoring case and punctuation) included. Candidates come from shared words,
    so this stays fast on thousands of texts."""
    index: dict = collections.defaultdict(set)
    tw = [set(words(t)) for t in train_texts]
    for i, ws in enumerate(tw):
        for w in ws:
            index[w].add(i)
    out = []
    for t in other_texts:
        ws = set(words(t))
        if not ws:
            continue
        counts: collections.Counter = collections.Counter()
        for w in ws:
            if len(index[w]) < 200:  # frequent words cannot make a pair alone
                counts.update(index[w])
        for i, c in counts.items():
            if c / len(ws | tw[i]) >= threshold or ws == tw[i]:
                out.append((t, train_texts[i]))
    return out


def imbalance(labels: list) -> float:
    """Share of the largest class in a two-class split, or largest/smallest ratio scaled to the
    same meaning for more classes: 0.5 is perfectly balanced for two classes."""
    c = collections.Counter(labels)
    if not c:
        return 0.0
    return max(c.values()) / (max(c.values()) + min(c.values()))
