"""The data party: owns private records and SMs. It talks to the model party only via ``self.model``,
a :class:`Remote` over the channel."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from silobridge.boundary import Carrier, Channel, MaxBytes, NoCanary, NoPrivateRecords, Policy, Remote, TextFingerprint
from silobridge.data.splits import plant_canaries
from silobridge.data.task import Splits
from silobridge.errors import BoundaryError
from silobridge.models.sm import EncoderClassifier, EncoderHyper, TfidfLR, minilm_path
from silobridge.settings import PolicyConfig, SMConfig, SMKind

Op = Callable[["DataParty", Carrier], Carrier]


class DataParty:
    name = "data"

    def __init__(self, splits: Splits, sm: SMConfig, policy: PolicyConfig, channel: Channel, *,
                 canaries: int = 0, seed: int = 0):
        self.task = splits.task
        self.private, self.secrets = plant_canaries(splits.private, canaries, seed)
        self.val = splits.val
        self.public = list(splits.public)
        self.seed = seed
        self._sm_config = sm
        self.ops: dict[str, Op] = {}
        self.model = Remote(channel, self.name, "model")
        # egress policy: what never leaves this silo
        self.protected = TextFingerprint(n=policy.ngram)
        self.protected.add(self.private.texts + self.val.texts)
        self.policy = Policy([MaxBytes(policy.max_bytes), NoCanary(self.secrets),
                              NoPrivateRecords(self.protected)])

    def admit(self, texts: list[str]) -> None:
        """Inference inputs arriving at the data party become protected records too."""
        self.protected.add(texts)

    def label_prior(self) -> np.ndarray:
        counts = np.bincount(self.private.labels, minlength=len(self.task.label_names)) + 1.0
        return counts / counts.sum()

    def one_hot(self, labels: np.ndarray) -> np.ndarray:
        return np.eye(len(self.task.label_names))[labels]

    def new_sm(self):
        """A fresh, untrained SM of the configured kind."""
        c, k = self._sm_config, len(self.task.label_names)
        if c.kind is SMKind.TFIDF:
            return TfidfLR(k, C=c.C, seed=self.seed)
        return EncoderClassifier(c.path or minilm_path(), k,
                                 EncoderHyper(c.epochs, c.lr, c.batch_size, c.max_len), seed=self.seed)

    def handle(self, op: str, carrier: Carrier) -> Carrier:
        if op not in self.ops:
            raise BoundaryError(f"the data party offers no operation '{op}'", where="channel",
                                fix=f"the running strategy offers: {sorted(self.ops) or 'none'}")
        return self.ops[op](self, carrier)
