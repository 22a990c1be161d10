"""Strategies: a registry of specs, each naming a config, a data side and a model side.

A strategy's two halves share no Python object. The data side (:class:`DataSide`) runs in the data
silo: ``fit`` talks to the model party only through ``data.model.call(op, carrier)``, and
``predict_proba`` is the deployed predictor. The model side (:class:`ModelSide`) is built by the model
party from what it received when the session opened — the strategy's name, the public task metadata
and the protocol parameters listed in ``model_params`` (read through a guard: any other option is an
error) — and offers operations that take and return carriers."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from silobridge.boundary import Carrier
from silobridge.errors import ConfigError, UnknownStrategyError
from silobridge.parties.data_party import DataParty
from silobridge.parties.model_party import ModelParty
from silobridge.settings import TaskKind

REGISTRY: dict[str, type["Strategy"]] = {}
Op = Callable[[Carrier], Carrier]


class DataSide(ABC):
    """The data party's half of a strategy."""

    def __init__(self, config: Any, kind: TaskKind = TaskKind.CLASSIFY):
        self.config = config
        self.kind = kind
        self.report: dict[str, Any] = {}  # strategy-specific figures merged into result.json

    @abstractmethod
    def fit(self, data: DataParty) -> None:
        """Train whatever the data party deploys, talking to the model party only via ``data.model``."""

    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        """Class probabilities for inference inputs that arrived at the data party (task 'classify')."""
        raise NotImplementedError(f"{type(self).__name__} cannot classify")

    def language_models(self) -> dict[str, Any]:
        """Causal LMs in the data silo whose perplexity on held-out private text is reported (the data
        party computes it; the model side's LMs are evaluated by the model party)."""
        return {}

    def evaluate(self, texts: list[str], data: DataParty | None = None) -> dict[str, dict[str, float]]:
        """The data party's own evaluation: perplexity of each of its causal LMs on ``texts``. ``data``: the
        data party, for an evaluation that asks the model party (a deployed LM that spans both parties)."""
        from silobridge.models.causal import evaluate_lms

        return evaluate_lms(self.language_models(), texts)


class ModelSide:
    """The model party's half of a strategy: no operations by default (nothing to serve)."""

    # operations that only score (no randomness, no change of state): the server may run them together
    # with other sessions' requests on the same weights (see silobridge.parties.batching)
    batchable_ops: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: Any, party: ModelParty):
        self.config = config
        self.party = party

    def ops(self) -> dict[str, Op]:
        """Operations the model party offers while this strategy runs."""
        return {}

    def language_models(self) -> dict[str, Any]:
        """Causal LMs at the model party whose perplexity the data party may ask for ('evaluate');
        "deployed" is the strategy's own."""
        return {}


class Strategy:
    """A registered strategy: its name, config and two halves, and what it exposes by design."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line, shown by `silobridge list`
    Config: ClassVar[type]
    DataSide: ClassVar[type[DataSide]]
    ModelSide: ClassVar[type[ModelSide]] = ModelSide
    # options of Config the model side receives when the session opens (the protocol parameters)
    model_params: ClassVar[tuple[str, ...]] = ()
    # data exposures this strategy makes by design (e.g. "inference_records"); recorded, never hidden
    exposes: ClassVar[frozenset[str]] = frozenset()
    # task kinds it can run: 'domain-lm' needs a causal LM to deploy
    kinds: ClassVar[frozenset[TaskKind]] = frozenset({TaskKind.CLASSIFY})
    # whether the deployed causal LM lives at the model party (its perplexity is then asked of it,
    # on evaluation texts sent under the 'evaluation_records' exposure)
    model_lms: ClassVar[bool] = False
    black_box: ClassVar[bool] = False  # runs against a black-box LM (text and log-probs, no weights)
    # sends something computed from private records without a DP guarantee and without a declared exposure
    # of the records themselves (e.g. an SM's labels): its ε is then unbounded (bench.score)
    private_derived: ClassVar[bool] = False
    # lm.dtype=auto runs this strategy's LMs in float32 even where bfloat16 is native: bfloat16 measurably
    # lowered its utility beyond the seed-to-seed spread (README, "Label scoring: float32 vs bfloat16")
    auto_float32: ClassVar[bool] = False

    @classmethod
    def observer(cls, config: Any) -> Any | None:
        """The auditor's view a strategy-specific attack needs (a gate observer with a ``name`` and
        ``attack(test_texts, public_texts, seed) -> dict | None``, run after the run), or None."""
        return None


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


__all__ = ["Strategy", "DataSide", "ModelSide", "register", "get", "all_strategies", "check_kind", "DataParty",
           "ModelParty", "TaskKind"]
