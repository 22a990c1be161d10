"""The run configuration: one dataclass per section, each field with help text, validated on build.
Strategy-specific options live in the ``strategy`` section and are validated by the strategy's own
config class."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from silobridge.configs import check, option


class TaskKind(enum.Enum):
    CLASSIFY = "classify"
    DOMAIN_LM = "domain-lm"
    TABULAR = "tabular"

    @property
    def labelled(self) -> bool:
        """A classification task (texts or table rows): utility is accuracy/AUC on test labels."""
        return self is not TaskKind.DOMAIN_LM


class SMKind(enum.Enum):
    AUTO = "auto"  # the task's default: tfidf for texts, boost for tables
    TFIDF = "tfidf"
    ENCODER = "encoder"
    BOOST = "boost"  # task tabular: gradient-boosted trees on the parsed row
    LOGREG = "logreg"  # task tabular: logistic regression on one-hot / standardised features


@dataclass
class DataConfig:
    path: str | None = option(None, "CSV/JSONL file of labelled texts, or a bundled task: 'bundled:reviews' "
                                    "(the default when empty) or 'bundled:wordnet-nouns' (24 classes)")
    text_col: str = option("text", "column holding the text (with --data)")
    label_col: str = option("label", "column holding the label (with --data)")
    feature_cols: list[str] = option([], "task tabular: the feature columns (comma-separated); empty = every "
                                         "column but the label")
    row_template: str = option("{name} is {value}.", "task tabular: how one field of a row is written as text "
                                                     "(TabLLM style; fields joined by spaces, missing ones left out)")
    test_path: str | None = option(None, "optional separate test file (same columns); "
                                         "else test rows are drawn from --data")
    n_private: int = option(400, "private labelled records the data party trains on (the label budget)")
    n_val: int = option(100, "private labelled records for validation (early stopping / selection)")
    n_public: int = option(1000, "unlabelled public pool (disjoint from private and test)")
    n_test: int = option(1000, "test records, seen by the harness (and by the data party as inference inputs)")
    n_lm_eval: int = option(200, "test texts on which deployed causal LMs' perplexity is measured (0 = off)")
    canaries: int = option(5, "random secrets planted into private records to measure leakage (0 = off)")
    canary_repeats: int = option(1, "private records each canary is planted in (the Secret Sharer's insertions: "
                                    "exposure grows with them; >1 makes memorisation measurable)")
    evaluate_on: str = option("test", "'test' (reported figures) or 'validation': the harness evaluates on the "
                                      "validation records instead, to choose defaults and recipes without the test set")

    def __post_init__(self) -> None:
        for name in ("n_private", "n_val", "n_public", "n_test", "n_lm_eval", "canaries"):
            check(getattr(self, name) >= 0, f"data.{name}", getattr(self, name), ">= 0")
        check(self.evaluate_on in ("test", "validation"), "data.evaluate_on", self.evaluate_on,
              "'test' or 'validation'")
        check(self.canary_repeats >= 1, "data.canary_repeats", self.canary_repeats, ">= 1")
        check(self.n_private >= 2, "data.n_private", self.n_private, ">= 2 (one record per class at least)")
        check(self.n_test >= 1, "data.n_test", self.n_test, ">= 1")
        from silobridge.data.table import check_template

        check_template(self.row_template)


@dataclass
class LMConfig:
    path: str | None = option(None, "local HF causal-LM directory or .gguf file, or openai:URL[#MODEL] for any "
                                    "server with an OpenAI-compatible API (URL = its API base, e.g. "
                                    "http://127.0.0.1:8000/v1); empty = bundled SmolLM2-135M-Instruct")
    api_key_env: str = option("OPENAI_API_KEY", "with lm.path=openai:URL: the environment variable holding that "
                                                "server's API key (the key itself never goes in a config)")
    threads: int = option(2, "torch CPU threads")
    dtype: str = option("auto", "LM precision: 'auto' (bfloat16 where the CPU/GPU computes it natively, else float32), "
                                "'float32', 'bfloat16', or 'float16' (GPU only); trained weights stay float32")
    device: str = option("auto", "where LMs run: 'auto' (a CUDA GPU if present, else the CPU), 'cpu' or 'cuda'")
    cache: bool = option(False, "reuse the model party's work across runs: LM label scores (same LM, prompt, "
                                "text) and distilled emulators (same LM, plan, settings, texts); for sweeps: "
                                "model-party seconds then exclude it (see lm_queries.cached, report.distill_cached)")
    watermark: bool = option(False, "green-list watermark (Kirchenbauer et al. 2023) on all text the model party's LM "
                                    "generates (strategies and the OpenAI-compatible API); the model party detects it")
    watermark_bias: float = option(2.0, "watermark: logit bias delta added to green-list tokens")
    watermark_gamma: float = option(0.25, "watermark: share of the vocabulary on the green list")
    watermark_key: int = option(15485863, "watermark: the hashing key that seeds the green lists (the LM owner's "
                                          "secret: set your own; whoever holds it can detect and forge)")

    def __post_init__(self) -> None:
        check(self.threads >= 1, "lm.threads", self.threads, ">= 1")
        check(self.watermark_bias > 0, "lm.watermark_bias", self.watermark_bias, "> 0")
        check(0 < self.watermark_gamma < 1, "lm.watermark_gamma", self.watermark_gamma, "in (0, 1)")
        check(self.dtype in ("auto", "float32", "bfloat16", "float16"), "lm.dtype", self.dtype,
              "one of auto, float32, bfloat16, float16")
        check(self.device in ("auto", "cpu", "cuda"), "lm.device", self.device, "one of auto, cpu, cuda")


@dataclass
class SMConfig:
    kind: SMKind = option(SMKind.AUTO, "small model: 'tfidf' (TF-IDF + LR, cheapest) or 'encoder' "
                                       "(fine-tuned MiniLM, or the encoder at sm.path); for task tabular 'boost' "
                                       "(histogram gradient boosting) or 'logreg' (LR on one-hot/standardised "
                                       "features); 'auto' = tfidf for texts, boost for tables")
    path: str | None = option(None, "local HF encoder directory; empty = bundled all-MiniLM-L6-v2")
    epochs: int = option(4, "encoder fine-tuning epochs (best epoch on validation is kept)")
    lr: float = option(1e-4, "encoder peak learning rate (warm-up then linear decay)")
    batch_size: int = option(16, "encoder batch size")
    max_len: int = option(64, "encoder max tokens per text")
    C: float = option(4.0, "TF-IDF LR inverse regularisation")
    table_C: float = option(1.0, "task tabular, sm.kind=logreg: inverse regularisation")
    trees: int = option(200, "task tabular, sm.kind=boost: boosting iterations (at most; validation stops early)")

    def __post_init__(self) -> None:
        check(self.epochs >= 1, "sm.epochs", self.epochs, ">= 1")
        check(self.lr > 0, "sm.lr", self.lr, "> 0")
        check(self.batch_size >= 1, "sm.batch_size", self.batch_size, ">= 1")
        check(self.max_len >= 8, "sm.max_len", self.max_len, ">= 8")
        check(self.C > 0, "sm.C", self.C, "> 0")
        check(self.table_C > 0, "sm.table_C", self.table_C, "> 0")
        check(self.trees >= 1, "sm.trees", self.trees, ">= 1")


@dataclass
class PolicyConfig:
    max_bytes: int = option(2**30, "largest carrier allowed across the boundary, in bytes (an fp32 emulator of "
                                          "the default LM is ~270 MB)")
    ngram: int = option(10, "a shared span of this many words with a private record counts as a leak")
    sanitize: bool = option(False, "PII-sanitise every text item the data party sends (Presidio, offline): each "
                                   "entity found becomes <TYPE> before the policy checks and the ledger see it")
    sanitize_entities: list[str] = option([], "entity types to mask (Presidio names, e.g. PERSON, EMAIL_ADDRESS, "
                                              "PHONE_NUMBER, CREDIT_CARD); empty = every type Presidio knows")
    sanitize_min_score: float = option(0.4, "Presidio confidence at or above which an entity is masked (0.4: phone "
                                            "numbers without a context word score 0.4; see the README)")

    def __post_init__(self) -> None:
        check(0 <= self.sanitize_min_score <= 1, "policy.sanitize_min_score", self.sanitize_min_score, "in [0, 1]")
        check(self.max_bytes > 0, "policy.max_bytes", self.max_bytes, "> 0")
        check(self.ngram >= 4, "policy.ngram", self.ngram, ">= 4")


@dataclass
class AuditConfig:
    mia: bool = option(True, "membership inference on the data party's deployed SM (where a strategy deploys "
                             "one): members = its private training records, non-members = as many held-out test "
                             "records; loss threshold and offline LiRA")
    mia_references: int = option(-1, "reference SMs for offline LiRA, each of the deployed SM's kind trained on "
                                     "held-out test records that are not attacked (0 = loss threshold only; -1 = "
                                     "4 for the TF-IDF SM, 0 for the encoder, where each would be a fine-tuning)")
    mia_boot: int = option(200, "bootstrap resamples for the AUC's 95 % interval")
    exposure: bool = option(True, "canary exposure (Secret Sharer) of every causal LM the model party deploys, "
                                  "asked through the model party's audit hook")
    exposure_references: int = option(1000, "random secrets of the canary format each canary is ranked among "
                                             "(exposure is measurable up to log2 of this + 1 bits; an "
                                             "extrapolation from a skew-normal fit is reported beside it)")

    extraction: bool = option(True, "extraction fidelity: top-1 next-token agreement of the emulator the data "
                                    "party received with the LM, on data.n_lm_eval held-out test texts")
    watermark: bool = option(True, "where the model party's LM watermarks (lm.watermark), its detector's z-scores "
                                   "of the LM-written texts the data party received and of as many public texts")
    inversion: bool = option(True, "where split learning's activations of the test texts cross: the model party's "
                                   "inversion attack on them (token recovery; a linear inverter fitted on public "
                                   "texts it runs through the blocks it sent, and the nearest embedding at cut 0)")
    inversion_texts: int = option(64, "public texts the inversion attacker fits its inverter on")
    watermark_z: float = option(4.0, "z-score at or above which a text counts as watermarked (4: a one-sided "
                                     "false-positive rate of 3e-5 on text written without the key)")

    def __post_init__(self) -> None:
        check(self.exposure_references >= 1, "audit.exposure_references", self.exposure_references, ">= 1")
        check(self.mia_references >= -1, "audit.mia_references", self.mia_references, ">= -1")
        check(self.mia_boot >= 0, "audit.mia_boot", self.mia_boot, ">= 0")
        check(self.inversion_texts >= 1, "audit.inversion_texts", self.inversion_texts, ">= 1")


@dataclass
class RunConfig:
    seed: int = option(0, "seed for splits, canaries and training")
    task: TaskKind = option(TaskKind.CLASSIFY, "'classify': utility is accuracy/AUC of the deployed predictor on the "
                                               "test labels; 'domain-lm': strategies train on the raw private texts "
                                               "and utility is perplexity / next-token accuracy of the deployed "
                                               "causal LM on held-out private texts (data.n_lm_eval of them); "
                                               "'tabular': classify the rows of a table (data.label_col, "
                                               "data.feature_cols), each row serialised as text")
    data: DataConfig = option(DataConfig(), "the task and its splits")
    lm: LMConfig = option(LMConfig(), "the model party's LM")
    sm: SMConfig = option(SMConfig(), "the data party's SM")
    policy: PolicyConfig = option(PolicyConfig(), "boundary rules")
    audit: AuditConfig = option(AuditConfig(), "the omniscient auditor's attacks after a run (privacy leakage)")
    strategy: dict[str, Any] = option({}, "options of the chosen strategy (see `silobridge config STRATEGY`)")

    def __post_init__(self) -> None:
        if self.task is TaskKind.DOMAIN_LM:
            check(self.data.n_lm_eval >= 1, "data.n_lm_eval", self.data.n_lm_eval,
                  ">= 1 with task=domain-lm (its utility is measured on those held-out texts)")
        tabular_sm = self.sm.kind in (SMKind.BOOST, SMKind.LOGREG)
        check(tabular_sm <= (self.task is TaskKind.TABULAR), "sm.kind", self.sm.kind.value,
              "one of auto, tfidf, encoder for a text task ('boost' and 'logreg' read table rows: task tabular)")
        check(not self.data.feature_cols or self.task is TaskKind.TABULAR, "data.feature_cols",
              self.data.feature_cols, "empty unless task=tabular")
