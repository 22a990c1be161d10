"""speculative, data side: the emulator LoRA-tuned on the private texts (the same adapters as `emulator`
on task domain-lm) drafts; the LM verifies. The workload: the openings of held-out texts, each continued
greedily; the output is the LM's own greedy output, with fewer LM forward passes."""
from __future__ import annotations

from silobridge.boundary import Config, TextBatch, expect
from silobridge.models.speculative import SpecStats, draft, speculate
from silobridge.progress import track
from silobridge.strategies.base import DataParty, DataSide
from silobridge.strategies.emulation import fetch_and_tune


class SpeculativeData(DataSide):
    def fit(self, data: DataParty) -> None:
        self.emu_lm, self.tuned, w, losses = fetch_and_tune(data, self.config, data.seed, raw_text=True)
        self.report = {"revealed_param_share": w.meta["revealed_param_share"], "kept_layers": w.meta["kept"],
                       "adapters_cached": w.meta["adapters_cached"], "distill_cached": w.meta["distill_cached"]}

    def evaluate(self, texts: list[str], data: DataParty | None = None) -> dict:
        """The generation workload, at evaluation time, on held-out texts (``data``: the link to the LM)."""
        c, tok = self.config, self.emu_lm.tokenizer
        prompts = [tok.decode(tok(t, add_special_tokens=False)["input_ids"][:c.prompt_tokens])
                   for t in texts[:c.prompts]]
        data.admit(prompts, "inference_records")  # the prompts go to the LM: declared
        eos = {tok.eos_token_id} if tok.eos_token_id is not None else set()
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        stats, outputs = SpecStats(), []

        def verify_remote(drafted: list[int]) -> tuple[int, int]:
            v = expect(data.model.call("verify", Config(values={"draft": drafted})), Config).values
            return int(v["accepted"]), int(v["next"])

        for p in track(prompts, "speculative generation"):  # its seconds: compute.phase_seconds
            expect(data.model.call("begin", TextBatch([p], purpose="generation", exposure="inference_records")),
                   Config)
            ids = tok(p, add_special_tokens=False)["input_ids"]
            outputs.append(speculate(ids, c.max_new_tokens, c.draft_tokens,
                                     lambda seq, k: draft(self.tuned, seq, k, pad), verify_remote, eos, stats))
        self.report |= {"generation": {
            "prompts": len(prompts), "tokens": stats.tokens, "lm_forward_passes": stats.rounds,
            "lm_alone_forward_passes": stats.tokens,
            "lm_passes_saved": round(1 - stats.rounds / max(1, stats.tokens), 4),
            "drafted": stats.drafted, "accepted": stats.accepted, "acceptance_rate": round(stats.acceptance_rate, 4),
            "example": tok.decode(outputs[0]) if outputs else ""}}
        return {}
