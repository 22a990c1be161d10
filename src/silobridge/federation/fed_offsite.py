"""fed-offsite, the algorithm without the engine: Offsite-Tuning with several data parties.

The model party builds one emulator of its LM (layer-drop, its middle distilled on public text) and sends it
to every party, with the initial LoRA adapters (the same for all, so that averaging them is meaningful).
Each round every party loads the global adapters into its emulator, trains them on its private records
(the label-word loss at the answer position, as ``offsite-tuning``) and sends back only the adapters and
its record count; the model party averages them (Flower's FedAvg, see :mod:`silobridge.federation.offsite_server`),
plugs the average into its full LM and measures it. The parties' records and the LM's full weights stay home;
what crosses is the emulator (a declared share of the LM's weights, once per party) and the adapters.

Nothing here knows Flower: :class:`OffsiteParty` is one data silo, :class:`OffsiteModel` the model party."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from silobridge.bench.metrics import utility
from silobridge.boundary import Metrics, SoftLabels, TextBatch, Weights, expect
from silobridge.errors import BoundaryError
from silobridge.federation.config import FedSettings
from silobridge.federation.fed_distill import FedModel, FedParty
from silobridge.models.lora import LoraSpec, add_lora, plug_adapters, rename_layers, train_label_scoring
from silobridge.strategies.emulation import adapter_positions, make_emulator, rebuild
from silobridge.strategies.prompting import PromptModelSide, calibrate, prompt_for, words_for

PRIVATE_MODEL = "private_model"  # adapters trained on private records (a declared exposure)


def adapter_state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """The LoRA adapters of a PEFT model as float32 arrays, under the emulator's own layer names."""
    from peft import get_peft_model_state_dict

    return {n: t.detach().float().cpu().numpy().copy() for n, t in get_peft_model_state_dict(model).items()}


def load_adapter_state(model: torch.nn.Module, tensors: dict[str, np.ndarray], where: str) -> None:
    """Load adapters into a PEFT model: exactly its adapter tensors, same shapes (else a BoundaryError)."""
    from peft import set_peft_model_state_dict

    own = adapter_state(model)
    if set(tensors) != set(own):
        missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
        raise BoundaryError(f"the adapters do not fit the emulator: missing {missing[:2]}, unexpected {extra[:2]}",
                            where=where, fix="both parties must use the same emulator and LoRA settings")
    bad = [n for n in own if tuple(np.shape(tensors[n])) != own[n].shape]
    if bad:
        raise BoundaryError(f"adapter tensor '{bad[0]}' has shape {np.shape(tensors[bad[0]])}, expected "
                            f"{own[bad[0]].shape}", where=where, fix="use the same LoRA rank on both sides")
    set_peft_model_state_dict(model, {n: torch.from_numpy(np.asarray(v, dtype=np.float32)) for n, v in
                                      tensors.items()})


def adapters_carrier(tensors: dict[str, np.ndarray], spec: LoraSpec) -> Weights:
    return Weights(tensors=tensors, origin="adapter", exposure=PRIVATE_MODEL, meta={"r": spec.r, "alpha": spec.alpha})


class OffsiteParty(FedParty):
    """One data silo: rebuilds the emulator it is sent and trains the global adapters on its private records."""

    exposures = FedParty.exposures | {PRIVATE_MODEL}
    _resident: "OffsiteParty | None" = None  # the one party whose emulator this process holds in memory

    def __init__(self, settings: FedSettings, pid: int, out: Path):
        super().__init__(settings, pid, out)
        self.emu_lm = None
        self.tuned: torch.nn.Module | None = None

    def take_emulator(self, w: Weights) -> Metrics:
        """Keep the emulator in this silo's storage (a node's calls may run in other processes), rebuild it."""
        w = expect(w, Weights)
        store = self.dir / "emulator"
        store.mkdir(parents=True, exist_ok=True)
        np.savez(store / "tensors.tmp.npz", **{f"t{i}": w.tensors[n] for i, n in enumerate(sorted(w.tensors))})
        (store / "tensors.tmp.npz").replace(store / "tensors.npz")
        (store / "meta.json").write_text(json.dumps({"names": sorted(w.tensors), "meta": w.meta}))
        self.tuned = None
        self._load_emulator()
        emu_params = sum(p.numel() for p in self.tuned.get_base_model().parameters())
        return Metrics(values={"adapter_params": float(sum(a.size for a in adapter_state(self.tuned).values())),
                               "emulator_params": float(emu_params)})

    def _load_emulator(self) -> None:
        """The kept emulator, rebuilt with LoRA on its adapter layers (once per process and party)."""
        if self.tuned is not None:
            return
        store = self.dir / "emulator"
        if not (store / "meta.json").exists():
            raise BoundaryError("this party has no emulator yet", where=f"party-{self.pid}.train",
                                fix="the model party sends 'query.emulator' before the first round")
        doc = json.loads((store / "meta.json").read_text())
        with np.load(store / "tensors.npz") as z:
            w = Weights(tensors={n: z[f"t{i}"] for i, n in enumerate(doc["names"])}, origin="emulator",
                        meta=doc["meta"], exposure="lm_weights")
        resident = OffsiteParty._resident
        if resident is not None and resident is not self:  # one emulator in memory per process
            resident.tuned = resident.emu_lm = None
        self.emu_lm, emu = rebuild(w, self.data.device, self.data.dtype)
        self.tuned = add_lora(emu, adapter_positions(w), self.settings.strategy.lora)
        self.emu_lm.model = self.tuned
        OffsiteParty._resident = self

    def train_adapters(self, rnd: int, global_adapters: Weights) -> tuple[Weights, Metrics]:
        """One round: start from the global adapters, train on the private records, send the adapters back."""
        self._load_emulator()
        c, d = self.settings.strategy, self.data
        start = expect(global_adapters, Weights).tensors
        load_adapter_state(self.tuned, start, f"party-{self.pid}.train")
        words = words_for(c, d.task)
        with d.working():
            losses = train_label_scoring(self.tuned, self.emu_lm, d.private.texts, d.one_hot(d.private.labels),
                                         prompt_for(c, d.task, words), words, c.lora, c.max_text_tokens,
                                         seed=self.settings.run.seed * 1000 + self.pid * 101 + rnd,
                                         desc=f"party {self.pid}: LoRA on emulator, round {rnd}")
        n = len(d.private) if c.weighting == "size" else 1
        mine = adapter_state(self.tuned)
        norm = float(np.sqrt(sum(float(((mine[k] - np.asarray(start[k])) ** 2).sum()) for k in mine)))
        return (adapters_carrier(mine, c.lora),
                Metrics(values={"num-examples": float(n), "private": float(len(d.private)), "update_norm": norm,
                                "loss_first": float(losses[0]), "loss_last": float(losses[-1])}))

    def evaluate_lm(self, scores: SoftLabels, calibration: SoftLabels) -> dict[str, Any]:
        """The evaluating party: the LM's utility on its test texts, calibrated here with the LM's label bias
        on public texts."""
        c, d = self.settings.strategy, self.data
        bias = np.asarray(expect(calibration, SoftLabels).values, dtype=np.float64).mean(0)
        probs = calibrate(expect(scores, SoftLabels).values, c.calibration, d.label_prior(), bias)
        return utility(self.splits.test.labels, probs, len(d.task.label_names))


class OffsiteModel(FedModel):
    """The model party: builds and sends the emulator, the initial adapters, and plugs each round's average
    into its full LM to score the evaluation texts and the public calibration texts."""

    declared = frozenset({"lm_weights", PRIVATE_MODEL})  # the emulator (a declared share), the global adapters

    def __init__(self, settings: FedSettings, out: Path):
        super().__init__(settings, out)
        self.emulator: Weights | None = None
        self.plugged = False

    def fresh(self) -> None:  # the LM is loaded once; the adapters plugged into it are replaced each round
        if self.party is None:
            super().fresh()

    def make_emulator(self) -> Weights:
        c = self.settings.strategy
        if self.emulator is None:
            with self.rng.scope():
                batch = TextBatch(self.public[:c.distill_texts], purpose="distillation corpus")
                self.emulator = make_emulator(self.party, c, batch)
        return self.emulator

    def initial_adapters(self) -> dict[str, np.ndarray]:
        """LoRA as PEFT initialises it (B = 0: the LM unchanged), on an emulator rebuilt as the parties do."""
        w = self.make_emulator()
        _, emu = rebuild(w)
        torch.manual_seed(self.settings.run.seed)
        return adapter_state(add_lora(emu, adapter_positions(w), self.settings.strategy.lora))

    def plug(self, adapters: dict[str, np.ndarray]) -> None:
        """The global adapters (emulator layer names) into the full LM, in place of the previous round's."""
        spec, kept = self.settings.strategy.lora, self.make_emulator().meta["kept"]
        tensors = rename_layers(adapters, kept)
        lm = self.party.lm
        if not self.plugged:
            lm.model = plug_adapters(lm.model, tensors, spec)
            self.plugged = True
        else:
            load_adapter_state(lm.model, tensors, "model.plug")
            lm.model.eval()
        lm.mark_changed()

    def score(self, adapters: dict[str, np.ndarray]) -> tuple[SoftLabels, SoftLabels]:
        """The LM with ``adapters`` plugged in: label log-probs on the evaluation texts and on the public
        calibration texts (the evaluating party calibrates with them)."""
        c = self.settings.strategy
        self.plug(adapters)
        side = PromptModelSide(c, self.party)
        with self.rng.scope():
            scores = expect(side.score(TextBatch(self.eval_texts, purpose="evaluation")), SoftLabels)
            cal = expect(side.score(TextBatch(self.public[:c.calibration_texts], purpose="calibration")),
                         SoftLabels)
        return scores, cal


def centralised(settings: FedSettings, out: Path) -> dict[str, Any]:
    """The privacy-violating upper bound: ``offsite-tuning`` with one party holding every party's private
    records, the same emulator and initial adapters, trained for as many passes (rounds × lora_epochs)."""
    from dataclasses import replace

    from silobridge.bench.runner import load_splits
    from silobridge.federation.fed_distill import party_splits

    c, seed = settings.strategy, settings.run.seed
    splits = load_splits(settings.run)
    parts = party_splits(splits, settings)
    texts = [t for p in parts for t in p.private.texts]
    labels = np.concatenate([p.private.labels for p in parts])
    k = len(splits.task.label_names)
    model = OffsiteModel(settings, Path(out) / "centralised")
    model.task, model.public, model.eval_texts = splits.task, list(splits.public), list(splits.test.texts)
    model.fresh()
    w = model.make_emulator()
    emu_lm, emu = rebuild(w)
    torch.manual_seed(seed)
    tuned = add_lora(emu, adapter_positions(w), c.lora)
    emu_lm.model = tuned
    words = words_for(c, splits.task)
    spec = replace(c.lora, epochs=c.lora_epochs * max(settings.federation.rounds, 1))
    train_label_scoring(tuned, emu_lm, texts, np.eye(k)[labels], prompt_for(c, splits.task, words), words, spec,
                        c.max_text_tokens, seed=seed, desc="centralised: LoRA on emulator (all parties' records)")
    scores, cal = model.score(adapter_state(tuned))
    prior = (np.bincount(labels, minlength=k) + 1.0) / (len(labels) + k)
    probs = calibrate(scores.values, c.calibration, prior, np.asarray(cal.values, dtype=np.float64).mean(0))
    return utility(splits.test.labels, probs, k) | {
        "note": "privacy-violating upper bound: offsite-tuning on all parties' private records in one place",
        "records": len(texts), "epochs": spec.epochs}
