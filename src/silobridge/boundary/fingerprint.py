"""Word n-gram fingerprints of a record set, to find records (or long spans of them) inside texts."""
from __future__ import annotations

import re
from collections import defaultdict

_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class TextFingerprint:
    """Index of records: every ``n``-word window of a long record, and whole short records.

    ``hits(text)`` returns the ids of records that occur verbatim in ``text`` or share a span of
    ``n`` consecutive words with it (case and punctuation ignored). Records shorter than
    ``min_words`` are not indexed (too short to identify anyone)."""

    def __init__(self, n: int = 10, min_words: int = 5):
        self.n, self.min_words = n, min_words
        self._grams: dict[int, int] = {}
        self._short: dict[int, dict[int, int]] = defaultdict(dict)  # length -> hash -> id
        self.size = 0

    def add(self, records: list[str], start_id: int | None = None) -> None:
        base = self.size if start_id is None else start_id
        for i, rec in enumerate(records):
            w = words(rec)
            if len(w) < self.min_words:
                continue
            if len(w) < self.n:
                self._short[len(w)][hash(tuple(w))] = base + i
            else:
                for j in range(len(w) - self.n + 1):
                    self._grams.setdefault(hash(tuple(w[j:j + self.n])), base + i)
        self.size = max(self.size, base + len(records))

    def hits(self, text: str) -> set[int]:
        w = words(text)
        found: set[int] = set()
        for length, table in [(self.n, self._grams), *self._short.items()]:
            for j in range(len(w) - length + 1):
                rid = table.get(hash(tuple(w[j:j + length])))
                if rid is not None:
                    found.add(rid)
        return found
