"""split, model side: send the LM's bottom blocks (declared), keep the rest with LoRA on them, and run the
activations that arrive through them. Training is two calls per mini-batch: 'train_forward' (activations
in, one pooled hidden state per text out; the graph is kept) and 'backward' (the gradient of the data
party's loss w.r.t. those pooled states in: one LoRA step here, and the gradient w.r.t. the activations
back). 'forward' serves inference (no graph, no step)."""
from __future__ import annotations

import numpy as np
import torch

from silobridge.boundary import Activations, Carrier, Config, Weights, expect
from silobridge.errors import BoundaryError
from silobridge.models.lora import LoraSpec, add_lora
from silobridge.strategies.base import ModelSide
from silobridge.strategies.split.blocks import bottom_weights, pool, unpack, upper_part


class SplitModel(ModelSide):
    upper: torch.nn.Module | None = None

    def ops(self) -> dict:
        return {"bottom": self.bottom, "train_forward": self.train_forward, "backward": self.backward,
                "forward": self.forward}

    def bottom(self, carrier: Carrier) -> Weights:
        expect(carrier, Config)
        c = self.config
        w = bottom_weights(self.party.lm, c.cut_layer)
        self.upper = add_lora(upper_part(self.party.lm, c.cut_layer), None,
                              LoraSpec(r=c.lora_r, alpha=2 * c.lora_r, lr=c.lora_lr))
        self.params = [p for p in self.upper.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=c.lora_lr)
        self.hidden = int(self.party.lm.model.config.hidden_size)
        self.pending: tuple[torch.Tensor, torch.Tensor] | None = None
        self.steps = 0
        return w

    def _run(self, carrier: Carrier, op: str, grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if self.upper is None:
            raise BoundaryError(f"'{op}' before 'bottom'", where=f"model.{op}",
                                fix="ask for the bottom blocks first (op 'bottom')")
        c = self.config
        values, mask = unpack(expect(carrier, Activations).values, self.hidden, c.max_tokens, c.batch_size,
                              f"model.{op}")
        dev = next(self.upper.parameters()).device
        dtype = next(p for p in self.upper.parameters() if p.is_floating_point()).dtype
        x = torch.from_numpy(np.ascontiguousarray(values)).to(dev, dtype).requires_grad_(grad)
        m = torch.from_numpy(mask).to(dev)
        self.upper.train(grad)
        with torch.set_grad_enabled(grad):
            h = self.upper(inputs_embeds=x, attention_mask=m, use_cache=False).last_hidden_state
            pooled = pool(h.float(), m, c.pool)
        self.party.meter.tokens_in += int(mask.sum())
        return x, pooled

    def train_forward(self, carrier: Carrier) -> Activations:
        x, pooled = self._run(carrier, "train_forward", grad=True)
        self.pending = (x, pooled)
        return Activations(values=pooled.detach().cpu().numpy().astype(np.float32))

    def backward(self, carrier: Carrier) -> Activations:
        if self.pending is None:
            raise BoundaryError("'backward' without a 'train_forward' before it", where="model.backward",
                                fix="send one 'backward' after each 'train_forward'")
        x, pooled = self.pending
        g = expect(carrier, Activations).values
        if g.shape != tuple(pooled.shape) or g.dtype != np.float32:
            raise BoundaryError(f"a gradient of shape {g.shape} ({g.dtype}) for pooled states of shape "
                                f"{tuple(pooled.shape)}", where="model.backward",
                                fix="send the loss's float32 gradient w.r.t. the pooled states 'train_forward' "
                                    "returned")
        self.pending = None
        self.opt.zero_grad()
        pooled.backward(torch.from_numpy(g).to(pooled.device))
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.steps += 1
        self.upper.eval()
        if self.config.cut_layer == 0:  # the data party has no blocks to train: no gradient goes back
            return Activations(values=np.zeros((0, 0), np.float32))
        return Activations(values=x.grad.float().cpu().numpy())

    def forward(self, carrier: Carrier) -> Activations:
        _, pooled = self._run(carrier, "forward", grad=False)
        return Activations(values=pooled.cpu().numpy().astype(np.float32))
