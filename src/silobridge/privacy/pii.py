"""Synthetic PII planted at known positions, to measure a sanitiser: names, e-mail addresses, phone
numbers and payment card numbers (Luhn-valid), each generated fresh from a seeded generator, each
inserted as a sentence between two sentences of a host text. ``recall`` scores a sanitiser's output
against what was planted: an entity counts as masked only when no piece of its value survives."""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

FIRST = ("James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
         "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
         "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark", "Sandra", "Steven", "Ashley",
         "Andrew", "Emily", "Kenneth", "Donna", "Joshua", "Michelle", "Kevin", "Carol", "Brian", "Amanda")
LAST = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
        "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
        "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
        "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores")
DOMAINS = ("example.com", "mailbox.org", "corpmail.net", "inbox.io", "post.co.uk")
AREA = ("212", "312", "415", "617", "206", "303", "512", "404", "702", "213", "305", "214")
TEMPLATES = {
    "PERSON": ("My name is {v}.", "I watched it with {v} last week.", "Ask {v} about it."),
    "EMAIL_ADDRESS": ("Write to me at {v} if you disagree.", "My address is {v}.", "Mail {v} for the list."),
    "PHONE_NUMBER": ("Call me on {v} to talk about it.", "My number is {v}.", "Text {v} anytime."),
    "CREDIT_CARD": ("I paid with my card {v} and got no refund.", "Card used: {v}.", "Charged to {v}."),
}
TYPES = tuple(TEMPLATES)


def luhn_complete(digits: str) -> str:
    """``digits`` plus the check digit that makes the whole number Luhn-valid."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # these are doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return digits + str((10 - total % 10) % 10)


def _value(kind: str, rng: np.random.Generator) -> str:
    first, last = FIRST[rng.integers(len(FIRST))], LAST[rng.integers(len(LAST))]
    if kind == "PERSON":
        return f"{first} {last}"
    if kind == "EMAIL_ADDRESS":
        return f"{first.lower()}.{last.lower()}{rng.integers(10, 99)}@{DOMAINS[rng.integers(len(DOMAINS))]}"
    if kind == "PHONE_NUMBER":
        a, x, n = AREA[rng.integers(len(AREA))], rng.integers(201, 999), rng.integers(0, 10000)
        return [f"({a}) {x}-{n:04d}", f"{a}-{x}-{n:04d}", f"+1 {a} {x} {n:04d}"][rng.integers(3)]
    if kind == "CREDIT_CARD":
        num = luhn_complete("4" + "".join(str(d) for d in rng.integers(0, 10, 14)))
        return [num, " ".join(num[i:i + 4] for i in range(0, 16, 4)), "-".join(num[i:i + 4] for i in range(0, 16, 4))][
            rng.integers(3)]
    raise ValueError(f"unknown PII type '{kind}'; known: {', '.join(TYPES)}")


@dataclass(frozen=True)
class Planted:
    text: int  # index of the host text
    kind: str
    value: str
    start: int  # character offsets of the value in the planted text
    end: int


def plant(texts: list[str], kinds: tuple[str, ...] = TYPES, seed: int = 0) -> tuple[list[str], list[Planted]]:
    """Each text with one PII sentence of each of ``kinds`` inserted at sentence boundaries."""
    rng = np.random.default_rng(seed)
    out, planted = [], []
    for i, text in enumerate(texts):
        parts = re.split(r"(?<=[.!?])\s+", text.strip())
        sentences = []
        for kind in kinds:
            value = _value(kind, rng)
            templates = TEMPLATES[kind]
            sentences.append((kind, value, templates[rng.integers(len(templates))].format(v=value)))
        for kind, value, sentence in sentences:
            parts.insert(int(rng.integers(0, len(parts) + 1)), sentence)
        new = " ".join(parts)
        for kind, value, sentence in sentences:
            at = new.index(sentence) + sentence.index(value)
            planted.append(Planted(i, kind, value, at, at + len(value)))
        out.append(new)
    return out, planted


def _pieces(value: str) -> list[str]:
    return [p for p in re.findall(r"[A-Za-z]{2,}|\d{3,}", value)
            if p.lower() not in {"com", "org", "net", "io", "co", "uk"}]


def recall(host: list[str], sanitised: list[str], planted: list[Planted]) -> dict[str, dict[str, float]]:
    """Per type: the share of planted values fully masked (no name, local part or digit group of the value
    left in the sanitised text, not counting pieces that the host text itself contains) and the share
    partly masked."""
    by: dict[str, list[tuple[bool, bool]]] = {}
    for p in planted:
        pieces = [x for x in _pieces(p.value) if x not in host[p.text]]
        left = [x for x in pieces if x in sanitised[p.text]]
        by.setdefault(p.kind, []).append((not left, len(left) < len(pieces)))
    return {k: {"n": len(v), "masked": sum(a for a, _ in v) / len(v), "partly": sum(b for _, b in v) / len(v)}
            for k, v in sorted(by.items())}
