"""dp-synthetic, data side: rebuild the generator the model party sent, fine-tune it with DP-SGD
(Opacus) on the private records, sample synthetic records (post-processing: no further privacy cost),
and send them with the (epsilon, delta) spent for the LM to be tuned on. The tuned LM serves inference."""
from __future__ import annotations

import numpy as np

from silobridge.boundary import DP_OUTPUTS, Metrics, PrivacySpend, TextBatch, expect
from silobridge.boundary.fingerprint import words
from silobridge.errors import DataError
from silobridge.models.generate import generate
from silobridge.models.lora import LoraSpec, add_lora
from silobridge.models.dp_train import dp_train_causal
from silobridge.privacy.dp import DPSpec
from silobridge.strategies.base import DataParty, TaskKind
from silobridge.strategies.emulation import fetch_emulator
from silobridge.strategies.lm_served import LMServedData
from silobridge.strategies.prompting import words_for


class DPSyntheticData(LMServedData):
    def fit(self, data: DataParty) -> None:
        c = self.config
        # 1. the generator: a cut of the LM (same tokenizer), rebuilt in the data silo
        gen_lm, gen, w = fetch_emulator(data, min(c.distill_texts, len(data.public)) if c.distill_steps else 0)
        # 2. DP-SGD fine-tuning on "<label word>: <record>" lines (domain-lm: on the raw records)
        domain = self.kind is TaskKind.DOMAIN_LM
        label_words = words_for(c, data.task)
        tok = gen_lm.tokenizer
        eos = tok.eos_token or ""
        # unconditional samples start from the token every training line starts with (BOS, else a marker)
        start = tok.bos_token or tok.eos_token or tok.cls_token or "\n"
        lead = "" if tok.bos_token else start  # the encoder prepends BOS itself
        lines = ([f"{lead}{t}{eos}" for t in data.private.texts] if domain else
                 [f"{label_words[y]}: {t}{eos}" for t, y in zip(data.private.texts, data.private.labels)])
        spec = DPSpec(c.epsilon, c.delta or 1.0 / (10 * len(lines)), c.max_grad_norm, c.accountant)
        n = len(w.meta["kept"])
        top = list(range(max(0, n - c.gen_lora_top), n)) if c.gen_lora_top else None
        gen = add_lora(gen, top, LoraSpec(r=c.lora_r, alpha=2 * c.lora_r))
        dp = dp_train_causal(gen, gen_lm, lines, spec, lr=c.gen_lr, epochs=c.gen_epochs, batch_size=c.gen_batch_size,
                             max_len=c.gen_max_len, seed=data.seed, noise_seed=c.noise_seed)
        losses, eps = dp.losses, dp.epsilon
        # 3. sample labelled synthetic records (post-processing: no further privacy cost)
        prompts, labels = [], []
        for y, word in enumerate(label_words):  # domain-lm: unconditional, from the start-of-text token
            prompts += [start if domain else f"{word}:"] * c.per_class
            labels += [y] * c.per_class
        texts = generate(gen_lm, prompts, c.max_new_tokens, batch_size=c.sample_batch_size, seed=data.seed, model=gen,
                         desc="sampling synthetic")
        # 4. drop too-short rows. Nothing here reads the private records: DP covers the samples only as
        #    post-processing of the generator. They cross as declared DP outputs with their ε: the gate lets
        #    a row that repeats a private span through, and the auditor counts it (raw-record hits).
        keep = [i for i, t in enumerate(texts) if len(words(t)) >= c.min_words]
        if not keep:
            raise DataError(f"the DP generator produced no usable rows out of {len(texts)}", where="dp-synthetic",
                            fix="raise strategy.per_class or strategy.epsilon, or lower strategy.min_words")
        batch = TextBatch([texts[i] for i in keep], purpose="dp synthetic",
                          labels=None if domain else [labels[i] for i in keep],
                          privacy=PrivacySpend(eps, spec.delta, f"DP-SGD ({spec.accountant})"), exposure=DP_OUTPUTS)
        reply = expect(data.model.call("tune-lm" if domain else "tune", batch), Metrics)
        super().fit(data)
        self.report = {"epsilon_target": c.epsilon, "epsilon_spent": eps, "delta": spec.delta,
                       "generator_layers": n, "generator_lora_layers": top or list(range(n)),
                       "distill_cached": w.meta["distill_cached"],
                       "revealed_param_share": w.meta["revealed_param_share"],
                       "dp_loss_first_last": [losses[0], losses[-1]] if losses else None,
                       "dp_mechanism": {"noise_multiplier": dp.noise_multiplier, "sample_rate": dp.sample_rate,
                                        "steps": dp.steps, "seeded": c.noise_seed is not None},
                       "synthetic_generated": len(texts), "synthetic_sent": len(keep),
                       "synthetic_label_share": None if domain else
                       np.bincount(batch.labels, minlength=len(label_words)).tolist(),
                       "synthetic_examples": batch.items[:3], "lm_tuning": reply.values}
