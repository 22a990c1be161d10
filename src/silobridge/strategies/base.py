"""Strategy base class and registry.

A strategy is a config dataclass plus a small class: ``fit`` runs on the data party's side (it gets
the :class:`DataParty`, whose only way to the LM is ``data.model.call(op, carrier)``), operations it
installs on the model party (``model_ops``) run on the model party's side with the
:class:`ModelParty`, and ``predict_proba`` is the deployed predictor the harness evaluates."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from silobridge.errors import ConfigError, UnknownStrategyError
from silobridge.parties import DataParty, ModelParty
from silobridge.parties.data_party import Op as DataOp
from silobridge.parties.model_party import Op as ModelOp
from silobridge.settings import TaskKind

REGISTRY: dict[str, type["Strategy"]] = {}


class Strategy(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]  # one line, shown by `silobridge list`
    Config: ClassVar[type]
    # data exposures this strategy makes by design (e.g. "inference_records"); recorded, never hidden
    exposes: ClassVar[frozenset[str]] = frozenset()
    # task kinds it can run: 'domain-lm' needs a causal LM to deploy (see ``language_models``)
    kinds: ClassVar[frozenset[TaskKind]] = frozenset({TaskKind.CLASSIFY})

    def __init__(self, config: Any, kind: TaskKind = TaskKind.CLASSIFY):
        check_kind(type(self), kind)
        self.config = config
        self.kind = kind
        self.report: dict[str, Any] = {}  # strategy-specific figures merged into result.json

    def model_ops(self) -> dict[str, ModelOp]:
        """Operations the model party offers while this strategy runs."""
        return {}

    def data_ops(self) -> dict[str, DataOp]:
        """Operations the data party offers while this strategy runs."""
        return {}

    @abstractmethod
    def fit(self, data: DataParty) -> None:
        """Train whatever the data party deploys, talking to the model party only via ``data.model``."""

    @abstractmethod
    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        """Class probabilities for inference inputs that arrived at the data party (task 'classify')."""

    def language_models(self, data: DataParty, model: ModelParty) -> dict[str, Any]:
        """Evaluation hook (called by the omniscient harness only, after predict): named causal LMs
        whose perplexity on held-out private text is reported; "deployed" is the strategy's own."""
        return {}


def register(cls: type[Strategy]) -> type[Strategy]:
    REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> type[Strategy]:
    from silobridge import strategies  # noqa: F401  (imports register every strategy)

    if name not in REGISTRY:
        raise UnknownStrategyError(f"unknown strategy '{name}'", where="STRATEGY",
                                   fix=f"choose one of: {', '.join(sorted(REGISTRY))} (see `silobridge list`)")
    return REGISTRY[name]


def check_kind(cls: type[Strategy], kind: TaskKind) -> None:
    """A clear error when ``cls`` cannot run task ``kind``."""
    if kind not in cls.kinds:
        able = sorted(n for n, c in all_strategies().items() if kind in c.kinds)
        raise ConfigError(f"strategy '{cls.name}' cannot run task '{kind.value}'", where="task",
                          fix=f"for task '{kind.value}' choose one of: {', '.join(able)}")


def all_strategies() -> dict[str, type[Strategy]]:
    from silobridge import strategies  # noqa: F401

    return dict(sorted(REGISTRY.items()))


__all__ = ["Strategy", "register", "get", "all_strategies", "check_kind", "DataParty", "ModelParty", "TaskKind"]
