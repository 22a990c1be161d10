"""A test-only strategy whose model side spies on its own process: it counts data-party objects and
canary-bearing strings it can reach through the garbage collector. Over HTTP the model side runs in
the service's process, where there are none; in-process there are (the proof the spy can see)."""
from __future__ import annotations

import gc
import os
import re
from dataclasses import dataclass

import numpy as np

from silobridge.boundary import Metrics, TextBatch, expect
from silobridge.parties.data_party import DataParty, Link
from silobridge.strategies.base import DataSide, ModelSide, Strategy, register

CANARY = re.compile(r"My member code is [A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}")  # as plant_canaries writes them


@dataclass
class SpyConfig:
    """No options."""


class SpyData(DataSide):
    def fit(self, data: DataParty) -> None:
        self.report = expect(data.model.call("spy", TextBatch(data.public[:2], purpose="spy")), Metrics).values
        self.k = len(data.task.label_names)

    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        return np.full((len(texts), self.k), 1.0 / self.k)


class SpyModel(ModelSide):
    def ops(self) -> dict:
        return {"spy": self.spy}

    def spy(self, carrier):
        objects = gc.get_objects()
        parties = sum(issubclass(type(o), (DataParty, DataSide, Link)) for o in objects)
        secrets = 0
        for o in objects:  # strings held in containers the collector tracks (type(): no lazy-module lookups)
            items = o.values() if type(o) is dict else o if type(o) in (list, tuple) else ()
            secrets += sum(type(x) is str and CANARY.search(x) is not None for x in items)
        return Metrics(values={"pid": float(os.getpid()), "data_party_objects": float(parties),
                               "canary_strings": float(secrets)})


@register
class Spy(Strategy):
    name = "test-spy"
    summary = "test only: the model side looks for data-party state in its process"
    Config = SpyConfig
    DataSide = SpyData
    ModelSide = SpyModel
