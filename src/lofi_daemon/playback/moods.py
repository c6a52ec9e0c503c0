"""How near two prompts are, in words: the radio's library bridge and its gentle prompt order.

Prompts are short ("chill rain, jazzy piano"), so a bag of words is honest enough: lower-case
words (and a few stems: "rainy" ~ "rain"), weighted by TF-IDF over the prompts compared, and
the cosine of the two vectors. 1.0 is the same words, 0.0 nothing in common.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterable, Sequence

STOP = {"a", "an", "and", "the", "of", "with", "in", "on", "for", "to", "at", "by", "some", "very", "music"}
SUFFIXES = ("ing", "ly", "y", "s")


def words(prompt: str) -> list[str]:
    out = []
    for word in re.findall(r"[a-z0-9]+", prompt.lower()):
        if word in STOP:
            continue
        for suffix in SUFFIXES:  # "rainy" ~ "rain", "drums" ~ "drum"; short words stay whole
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                break
        out.append(word)
    return out


class Similarity:
    """Cosine of TF-IDF word vectors; the document frequencies come from ``corpus``."""

    def __init__(self, corpus: Iterable[str]) -> None:
        docs = [set(words(p)) for p in corpus]
        self._n = max(1, len(docs))
        self._df = Counter(w for doc in docs for w in doc)

    def _vector(self, prompt: str) -> dict[str, float]:
        tf = Counter(words(prompt))
        return {w: c * (1.0 + math.log((1 + self._n) / (1 + self._df.get(w, 0)))) for w, c in tf.items()}

    def __call__(self, a: str, b: str) -> float:
        va, vb = self._vector(a), self._vector(b)
        dot = sum(v * vb.get(w, 0.0) for w, v in va.items())
        norm = math.sqrt(sum(v * v for v in va.values())) * math.sqrt(sum(v * v for v in vb.values()))
        return dot / norm if norm else 0.0


def nearest(prompt: str, candidates: Sequence[str]) -> tuple[int, float] | None:
    """Index and score of the candidate nearest to ``prompt``; None when none shares a word."""
    if not candidates:
        return None
    sim = Similarity([prompt, *candidates])
    scores = [sim(prompt, c) for c in candidates]
    best = max(range(len(candidates)), key=lambda i: scores[i])
    return (best, scores[best]) if scores[best] > 0 else None


def gentle_order(prompts: Sequence[str]) -> list[int]:
    """A walk through ``prompts`` that starts at the first and always goes to the nearest one
    not yet played (neighbouring moods first); ties keep the given order."""
    if not prompts:
        return []
    sim = Similarity(prompts)
    order, left = [0], list(range(1, len(prompts)))
    while left:
        here = prompts[order[-1]]
        nxt = max(left, key=lambda i: (sim(here, prompts[i]), -i))
        order.append(nxt)
        left.remove(nxt)
    return order
