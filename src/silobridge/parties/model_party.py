"""The model party: owns the LM. Others reach it only through operations on a channel."""
from __future__ import annotations

from collections.abc import Callable

from silobridge.boundary import Carrier, MaxBytes, NoModelWeights, Policy
from silobridge.data.task import TaskSpec
from silobridge.errors import BoundaryError
from silobridge.models.lm import CausalLM, Meter, load_lm
from silobridge.settings import LMConfig, PolicyConfig

Op = Callable[["ModelParty", Carrier], Carrier]


class ModelParty:
    name = "model"

    def __init__(self, task: TaskSpec, lm: LMConfig, policy: PolicyConfig):
        self.task = task
        self._lm_config = lm
        self.cache = lm.cache
        self._lm: CausalLM | None = None
        self.meter = Meter()
        self.ops: dict[str, Op] = {}
        self.policy = Policy([MaxBytes(policy.max_bytes), NoModelWeights(lambda: self.lm.parameters())])

    @property
    def lm(self) -> CausalLM:
        """The LM, loaded on first use (strategies that never ask for it never pay for it)."""
        if self._lm is None:
            self._lm = load_lm(self._lm_config.path, self._lm_config.threads)
            self._lm.meter = self.meter
        return self._lm

    @property
    def lm_loaded(self) -> bool:
        return self._lm is not None

    def handle(self, op: str, carrier: Carrier) -> Carrier:
        if op not in self.ops:
            raise BoundaryError(f"the model party offers no operation '{op}'", where="channel",
                                fix=f"the running strategy offers: {sorted(self.ops) or 'none'}")
        return self.ops[op](self, carrier)
