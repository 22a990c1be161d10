"""Word n-gram fingerprints of a record set, to find records (or long spans of them) inside texts.

Spans are hashed with a keyed BLAKE2b (not Python's per-process salted ``hash()``), so two
fingerprints built with the same key agree across processes and can be persisted and compared,
while someone without the key cannot test guesses against them."""
from __future__ import annotations

import hashlib
import re
import secrets
from collections import defaultdict

_WORD = re.compile(r"\w+", re.UNICODE)
_GRAM, _TEXT = b"sb-gram", b"sb-text"  # BLAKE2b personalisations: span hashes vs exact-text digests


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class TextFingerprint:
    """Index of records: every ``n``-word window of a long record, and whole short records.

    ``hits(text)`` returns the ids of records that occur verbatim in ``text`` or share a span of
    ``n`` consecutive words with it (case and punctuation ignored). Records shorter than
    ``min_words`` are not indexed (too short to identify anyone). ``key`` keys every hash (16
    random bytes by default, see :attr:`key`); fingerprints with the same key are comparable."""

    def __init__(self, n: int = 10, min_words: int = 5, key: bytes | None = None):
        self.n, self.min_words = n, min_words
        self.key = secrets.token_bytes(16) if key is None else bytes(key)
        self._gram_hasher = hashlib.blake2b(digest_size=8, key=self.key, person=_GRAM)
        self._grams: dict[int, int] = {}
        self._short: dict[int, dict[int, int]] = defaultdict(dict)  # length -> hash -> id
        self.size = 0

    def _hashes(self, w: list[str], length: int) -> list[int]:
        """Keyed, stable 64-bit hashes of every ``length``-word window of ``w``, in order (words hold
        no spaces, so joining them is unambiguous)."""
        new, from_bytes, out = self._gram_hasher.copy, int.from_bytes, []
        for j in range(len(w) - length + 1):
            h = new()  # copying the keyed state is cheaper than keying anew
            h.update(" ".join(w[j:j + length]).encode())
            out.append(from_bytes(h.digest(), "little"))
        return out

    def text_digest(self, text: str) -> str:
        """Keyed digest (hex) of ``text`` exactly as given, e.g. for sets of admitted texts."""
        return hashlib.blake2b(text.encode(), digest_size=16, key=self.key, person=_TEXT).hexdigest()

    def add(self, records: list[str], start_id: int | None = None) -> None:
        """Index ``records`` with ids ``start_id, start_id + 1, ...`` (default: after those added)."""
        base = self.size if start_id is None else start_id
        for i, rec in enumerate(records):
            w = words(rec)
            if len(w) < self.min_words:
                continue
            if len(w) < self.n:
                self._short[len(w)][self._hashes(w, len(w))[0]] = base + i
            else:
                setdefault = self._grams.setdefault
                for h in self._hashes(w, self.n):
                    setdefault(h, base + i)
        self.size = max(self.size, base + len(records))

    def hits(self, text: str) -> set[int]:
        """Ids of the records ``text`` reproduces (whole, or an ``n``-word span)."""
        w = words(text)
        found: set[int] = set()
        for length, table in [(self.n, self._grams), *self._short.items()]:
            if table:
                found.update(rid for rid in map(table.get, self._hashes(w, length)) if rid is not None)
        return found
