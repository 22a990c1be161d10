"""A small sentence encoder for retrieval: mean-pooled, L2-normalised hidden states of an encoder
(the bundled MiniLM by default), and cosine nearest neighbours."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from silobridge.errors import ModelError
from silobridge.progress import track


class Embedder:
    def __init__(self, path: str, max_len: int = 128, batch_size: int = 64):
        from transformers import AutoModel, AutoTokenizer

        if not (Path(path) / "config.json").is_file():
            raise ModelError("not a Hugging Face encoder directory (no config.json)", where=str(path),
                             fix="pass a local encoder directory saved with save_pretrained(), or leave it empty "
                                 "for the bundled MiniLM")
        try:
            self.tok = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path).eval()
        except Exception as exc:  # any loader failure (missing file, corrupt weights, bad config)
            raise ModelError(f"cannot load the retrieval encoder: {exc}", where=str(path),
                             fix="check the directory holds an encoder checkpoint and its tokenizer") from exc
        self.max_len, self.batch_size = max_len, batch_size

    @torch.no_grad()
    def encode(self, texts: list[str], desc: str = "embedding") -> np.ndarray:
        """(n, d) unit vectors."""
        out = []
        for s in track(range(0, len(texts), self.batch_size), desc, total=-(-len(texts) // self.batch_size)):
            batch = self.tok(texts[s:s + self.batch_size], truncation=True, max_length=self.max_len, padding=True,
                             return_tensors="pt")
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1))
        dim = self.model.config.hidden_size
        return torch.cat(out).numpy() if out else np.zeros((0, dim), np.float32)


def nearest(queries: np.ndarray, pool: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (n, k) of each query's ``k`` most similar pool vectors, most similar first, and their
    cosine similarities (unit vectors in, so a dot product)."""
    k = min(k, len(pool))
    sims = queries @ pool.T
    idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(sims, idx, axis=1)
