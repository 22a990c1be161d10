"""Records that are table rows (task 'tabular'). A private record is a row, and a row crosses as its
serialised text; word spans cannot tell rows apart (two customers share "Home is rent. Time is 60." without
either being leaked), so for tables the boundary compares rows field by field instead: a text reproduces
a protected row when a row written in it equals that row exactly, or near-exactly — every field but one
equal (with three fields or more; with fewer, only exact copies count). The fields are read by a function
the task supplies (``row_keys``: text -> canonical value tuples), so this module knows no schema.

:class:`RowFingerprint` is a drop-in :class:`TextFingerprint` (``add``, ``hits``, ``text_digest``) for the
data party's protected records, the auditor's count of raw records crossing, and the splits' disjointness;
:class:`NoPrivateRows` is the raw-record rule with row wording."""
from __future__ import annotations

import hashlib
from collections.abc import Callable

from silobridge.boundary.fingerprint import TextFingerprint
from silobridge.boundary.policy import NoPrivateRecords

RowKeys = Callable[[str], list[tuple[str, ...]]]
_ROW = b"sb-row"
NEAR_MIN_FIELDS = 3  # below this, "all but one field equal" would match on a single field


class RowFingerprint(TextFingerprint):
    """Index of protected rows: each row's full value tuple, and (with ``near``) each tuple less one field,
    hashed with the fingerprint's key. ``hits(text)``: ids of the rows that some row in ``text`` copies
    exactly or near-exactly."""

    def __init__(self, row_keys: RowKeys, near: bool = True, key: bytes | None = None):
        super().__init__(n=1 << 30, key=key)  # word spans unused: whole rows only
        self.row_keys, self.near = row_keys, near
        self._row_hasher = hashlib.blake2b(digest_size=8, key=self.key, person=_ROW)
        self._rows: dict[int, int] = {}

    def _hash(self, *parts: str) -> int:
        h = self._row_hasher.copy()
        h.update("\x1f".join(parts).encode())
        return int.from_bytes(h.digest(), "little")

    def _keys(self, row: tuple[str, ...]) -> list[int]:
        out = [self._hash("all", *row)]
        if self.near and len(row) >= NEAR_MIN_FIELDS:
            out += [self._hash(str(j), *row[:j], *row[j + 1:]) for j in range(len(row))]
        return out

    def add(self, records: list[str], start_id: int | None = None) -> None:
        base = self.size if start_id is None else start_id
        for i, rec in enumerate(records):
            for row in self.row_keys(rec):
                if any(row):
                    for h in self._keys(row):
                        self._rows.setdefault(h, base + i)
        self.size = max(self.size, base + len(records))

    def hits(self, text: str) -> set[int]:
        found = set()
        for row in self.row_keys(text):
            if any(row):
                found.update(rid for rid in map(self._rows.get, self._keys(row)) if rid is not None)
        return found


class NoPrivateRows(NoPrivateRecords):
    """(a) for tables: refuse a carrier that reproduces a protected row, exactly or near-exactly (all but
    one field equal), outside the exact texts admitted under a declared exposure; metadata never may."""

    name = "no-private-rows"

    def _span(self) -> str:
        return "a whole row or all but one of its fields"
