"""sm-only: the data party trains its SM on its private labels alone. Nothing crosses."""
from __future__ import annotations

import numpy as np

from silobridge.strategies.base import DataParty, DataSide


class SMOnlyData(DataSide):
    def fit(self, data: DataParty) -> None:
        self.sm = data.new_sm().fit(data.private.texts, data.one_hot(data.private.labels),
                                    val=(data.val.texts, data.val.labels))

    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        return self.sm.predict_proba(texts)
