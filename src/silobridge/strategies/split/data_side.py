"""split, data side: receive the LM's bottom blocks (declared), run them on private records with LoRA,
release each example's activations through the Gaussian mechanism (clip, noise) to the model party, and
train a task head on the pooled hidden states that come back; the gradients flow back through both
parties' LoRA. Test texts take the same path: their released activations cross, never the texts."""
from __future__ import annotations

import numpy as np
import torch

from silobridge.boundary import Activations, Config, Weights, expect
from silobridge.errors import BoundaryError
from silobridge.models.lora import LoraSpec, add_lora
from silobridge.privacy.inversion import per_release_epsilon
from silobridge.privacy.noise import numpy_rng
from silobridge.progress import track
from silobridge.strategies.base import DataParty, DataSide
from silobridge.strategies.split.blocks import encode, pack, pad, rebuild_bottom, release

NOTE = ("per example, per release: one example's activations crossing once, against a replace-one neighbour. "
        "Not a guarantee for the training run: each private record is released once per epoch (releases "
        "compose), the gradients of the head's loss cross to the model party unnoised (they carry the labels), "
        "and the data party's LoRA on the bottom blocks is trained on the other records")


class SplitData(DataSide):
    def fit(self, data: DataParty) -> None:
        c = self.config
        w = expect(data.model.call("bottom", Config(values={})), Weights)
        self.tok, bottom = rebuild_bottom(w, data.device, data.dtype)
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else (self.tok.eos_token_id or 0)
        torch.manual_seed(data.seed)
        for p in bottom.parameters():  # only LoRA trains (none at cut 0: the embeddings alone stay fixed)
            p.requires_grad_(False)
        self.bottom = (add_lora(bottom, None, LoraSpec(r=c.lora_r, alpha=2 * c.lora_r, lr=c.lora_lr))
                       if c.cut_layer else bottom)
        hidden = int(bottom.config.hidden_size)
        self.head = torch.nn.Linear(hidden, len(data.task.label_names)).to(data.device)
        self.rng = numpy_rng(c.noise_seed)
        self.sigma = c.noise_std * c.clip
        lora = [p for p in self.bottom.parameters() if p.requires_grad]
        groups = [{"params": list(self.head.parameters()), "lr": c.head_lr}] + \
            ([{"params": lora, "lr": c.lora_lr}] if lora else [])
        opt = torch.optim.AdamW(groups)
        params = lora + list(self.head.parameters())
        seqs = encode(self.tok, data.private.texts, c.max_tokens)
        labels = torch.as_tensor(np.asarray(data.private.labels), dtype=torch.long, device=data.device)
        order_rng = np.random.default_rng(data.seed)
        losses, norms, steps = [], [], 0
        for epoch in range(c.epochs):
            order = order_rng.permutation(len(seqs))
            batches = range(0, len(order), c.batch_size)
            for s in track(batches, f"split epoch {epoch + 1}/{c.epochs}", total=len(batches)):
                rows = order[s:s + c.batch_size]
                ids, mask = pad([seqs[i] for i in rows], self.pad_id)
                ids, mask = ids.to(data.device), mask.to(data.device)
                self.bottom.train()
                h = self.bottom(input_ids=ids, attention_mask=mask).last_hidden_state
                released, n = release(h, mask, c.clip, self.sigma, self.rng)
                norms += n.float().cpu().tolist()
                pooled = self._cross(data, "train_forward", released, mask, "private_activations", len(rows))
                pooled.requires_grad_(True)
                loss = torch.nn.functional.cross_entropy(self.head(pooled), labels[torch.as_tensor(rows)])
                opt.zero_grad()
                loss.backward()
                back = Activations(values=pooled.grad.float().cpu().numpy(), exposure="private_gradients")
                g = expect(data.model.call("backward", back), Activations).values
                if released.requires_grad and g.shape != tuple(released.shape):
                    raise BoundaryError(f"the model party returned a gradient of shape {g.shape} for activations of "
                                        f"shape {tuple(released.shape)}", where="model.backward.reply",
                                        fix="both parties must run the same strategy version")
                if released.requires_grad:  # LoRA on the data party's blocks
                    released.backward(torch.from_numpy(g).to(released.device, released.dtype))
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                losses.append(loss.item())
                steps += 1
        self.bottom.eval()
        norms_a = np.asarray(norms)
        self.report = {
            "cut_layer": c.cut_layer, "lm_blocks": w.meta.get("lm_layers"),
            "lm_param_share": w.meta.get("revealed_param_share"),
            "noise_std": c.noise_std, "clip": c.clip, "pool": c.pool,
            "per_example_per_release": per_release_epsilon(c.noise_std, c.clip, c.delta) | {"note": NOTE},
            "activation_norm_median": float(np.median(norms_a)), "clipped_share": float((norms_a > c.clip).mean()),
            "train_steps": steps, "training_round_trips": 1 + 2 * steps, "losses": [round(x, 5) for x in losses[::5]]}

    def _cross(self, data: DataParty, op: str, released: torch.Tensor, mask: torch.Tensor, exposure: str,
               n: int) -> torch.Tensor:
        """Send released activations; the pooled hidden states that come back, one per text."""
        pooled = expect(data.model.call(op, Activations(values=pack(released, mask), exposure=exposure)),
                        Activations).values
        if pooled.shape != (n, self.head.in_features):
            raise BoundaryError(f"the model party returned pooled states of shape {pooled.shape} for {n} texts",
                                where=f"model.{op}.reply", fix="both parties must run the same strategy version")
        return torch.from_numpy(pooled.copy()).to(self.head.weight.device)

    @torch.no_grad()
    def predict_proba(self, data: DataParty, texts: list[str]) -> np.ndarray:
        c = self.config
        seqs = encode(self.tok, texts, c.max_tokens)
        out = []
        for s in track(range(0, len(seqs), c.batch_size), "split inference", total=-(-len(seqs) // c.batch_size)):
            ids, mask = pad(seqs[s:s + c.batch_size], self.pad_id)
            ids, mask = ids.to(data.device), mask.to(data.device)
            h = self.bottom(input_ids=ids, attention_mask=mask).last_hidden_state
            released, _ = release(h, mask, c.clip, self.sigma, self.rng)
            pooled = self._cross(data, "forward", released, mask, "inference_activations", len(ids))
            out.append(torch.softmax(self.head(pooled).float(), -1).cpu().numpy())
        return np.concatenate(out).astype(np.float64)
