"""dp-synthetic, model side: serve a generator (a cut of the LM, distilled like the emulator), then
tune the LM on the DP synthetic records that come back, and serve inference with it."""
from __future__ import annotations

from silobridge.strategies.emulation import DistillMatch, EmulatorConfig, make_emulator
from silobridge.strategies.lm_tuning import TUNE_PARAMS, TunedLMModel

DP_SYNTHETIC_PARAMS = TUNE_PARAMS + ("cut_bottom", "cut_top", "cut_stride", "distill_steps")


class DPSyntheticModel(TunedLMModel):
    def ops(self) -> dict:
        c = self.config
        # a generator writes text: its middle learns the LM's next-token distributions (the emulator grid judged
        # the offsite adapters, not generation; dp-synthetic's own recipe is chosen by its own grid)
        cut = EmulatorConfig(bottom=c.cut_bottom, top=c.cut_top, stride=c.cut_stride, distill_steps=c.distill_steps,
                             distill_match=DistillMatch.LOGITS)
        return super().ops() | {"emulator": lambda carrier: make_emulator(self.party, cut, carrier)}
