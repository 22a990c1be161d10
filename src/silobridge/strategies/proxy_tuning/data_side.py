"""proxy-tuning, data side: get the emulator, LoRA-tune it on the private records (the same adapters as
`emulator` and `offsite-tuning`), then steer the LM at inference time: for each query the LM's label
log-probs come back, and the data party adds alpha x (tuned - untuned emulator's label log-probs), all in
the data silo. Only the queries go out and k log-probs per query come back; sending the k deltas the
other way would cost the same bytes and also send the query."""
from __future__ import annotations

import numpy as np

from silobridge.boundary import Config, LogitShift, SoftLabels, TextBatch, expect
from silobridge.models.causal import evaluate_lms
from silobridge.models.lm import CausalLM, renormalise, score_labels
from silobridge.models.proxy import logit_shifts, summarise
from silobridge.strategies.base import DataParty, DataSide, TaskKind
from silobridge.strategies.emulation import AdaptersOff, fetch_and_tune
from silobridge.strategies.emulator.data_side import emulator_report
from silobridge.strategies.prompting import Calibration, calibrate, prompt_for, words_for


class ProxyTuningData(DataSide):
    def fit(self, data: DataParty) -> None:
        c = self.config
        domain = self.kind is TaskKind.DOMAIN_LM
        self.emu_lm, self.tuned, w, losses = fetch_and_tune(data, c, data.seed, raw_text=domain)
        self.untuned = CausalLM(self.emu_lm.tokenizer, AdaptersOff(self.tuned), "emulator")
        self.prior, self.bias = data.label_prior(), None
        self.report = emulator_report(w, losses) | {"alpha": c.alpha}
        if not domain and c.calibration is not Calibration.NONE:  # the steered LM's label bias, on public texts
            texts = data.public[:c.calibration_texts]
            self.bias = self._steered(data, texts, "calibration", None).mean(0)

    def _steered(self, data: DataParty, texts: list[str], purpose: str, exposure: str | None) -> np.ndarray:
        c = self.config
        words = words_for(c, data.task)
        user = prompt_for(c, data.task, words)
        reply = expect(data.model.call("score", TextBatch(texts, purpose=purpose, exposure=exposure)), SoftLabels)
        own = [score_labels(m, texts, user, words, c.max_text_tokens, c.batch_size, f"emulator {purpose}")
               for m in (self.emu_lm, self.untuned)]
        return renormalise(np.asarray(reply.values) + c.alpha * (own[0] - own[1]))

    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        logp = self._steered(data, texts, "inference", "inference_records")
        return calibrate(logp, self.config.calibration, self.prior, self.bias)

    def evaluate(self, texts: list[str], data: DataParty | None = None) -> dict[str, dict[str, float]]:
        """domain-lm: the steered LM's perplexity (the model party applies the shifts sent, chunk by chunk,
        and returns sums), the LM alone's on the same tokens, and the emulators' (computed here)."""
        rows = evaluate_lms({"emulator": self.untuned, "emulator + adapters": self.emu_lm}, texts)
        if self.kind is not TaskKind.DOMAIN_LM or data is None:
            return rows
        c, parts, sent = self.config, [], 0
        data.admit(texts, "evaluation_records")
        for s in range(0, len(texts), c.shift_chunk):
            chunk = texts[s:s + c.shift_chunk]
            ids, vals = logit_shifts(self.emu_lm, self.untuned.model, chunk, c.alpha, c.shift_k)
            sent += ids.size
            reply = data.model.call("proxy_perplexity", LogitShift(chunk, token_ids=ids, values=vals,
                                                                        exposure="evaluation_records"))
            parts.append(expect(reply, Config).values)
        steered = summarise(parts)
        self.report |= {"shift_k": c.shift_k, "shift_entries_sent": sent}
        return rows | steered
