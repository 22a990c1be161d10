"""The model party batches concurrent label-scoring requests of different sessions on the same LM
weights: fewer forward rounds than requests, the same answers, each session billed for its own."""
import dataclasses
import threading

import numpy as np

from silobridge.bench.runner import load_splits
from silobridge.boundary import Ledger, TextBatch
from silobridge.models.lm import load_lm, score_labels
from silobridge.parties import DataParty, ModelServer
from silobridge.parties.batching import ScoreBatcher
from silobridge.strategies import get
from silobridge.transports import InProcessTransport

TEMPLATE = "Review: {text}\nIs this review {labels}?"


def run_together(fns):
    """Call every fn at once (one thread each); return their results in order."""
    out, start = [None] * len(fns), threading.Barrier(len(fns))

    def go(i):
        start.wait()
        out[i] = fns[i]()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_concurrent_sessions_share_forward_rounds(small_cfg, tmp_path):
    splits = load_splits(small_cfg)
    server = ModelServer(small_cfg.lm, small_cfg.policy, root=tmp_path / "model", batch_window=0.5)
    hello = {"strategy": "lm-zero-shot", "kind": "classify", "task": dataclasses.asdict(splits.task),
             "params": {}, "seed": 0}
    parties = [DataParty(splits, small_cfg.sm, small_cfg.policy, InProcessTransport(server), Ledger(), hello,
                         declared=get("lm-zero-shot").exposes) for _ in range(4)]
    texts = [splits.public[i:i + 2] for i in range(0, 8, 2)]
    alone = [p.model.call("score", TextBatch(t)).values for p, t in zip(parties, texts)]  # one at a time
    assert server.batcher.stats.rounds == 4
    sessions = [server.sessions[p.model.session] for p in parties]
    billed = [s.party.meter.calls for s in sessions]

    together = run_together([lambda p=p, t=t: p.model.call("score", TextBatch(t)).values
                             for p, t in zip(parties, texts)])
    stats = server.batcher.stats
    assert stats.requests == 8 and stats.rounds - 4 <= 2  # the four concurrent requests shared rounds
    for a, b in zip(alone, together):
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert [s.party.meter.calls - b for s, b in zip(sessions, billed)] == [2, 2, 2, 2]  # each pays its own
    for p in parties:
        p.model.close()


def test_a_round_serves_different_label_words(tiny_lm_dir):
    lm_a, lm_b = load_lm(tiny_lm_dir, dtype="float32"), load_lm(tiny_lm_dir, dtype="float32")  # two sessions' copies
    cond = threading.Condition()
    batcher = ScoreBatcher(cond, window=0.5)
    asks = [(lm_a, ["a short one", "another"], ["positive", "negative"]),
            (lm_b, ["mid length text here"], ["yes", "no", "maybe"])]

    def ask(lm, texts, words):
        with cond:
            return batcher.score(lm, texts, TEMPLATE, words, 96, 8, "test")

    got = run_together([lambda a=a: ask(*a) for a in asks])
    assert batcher.stats.rounds == 1 and batcher.stats.texts == 3
    for (lm, texts, words), g in zip(asks, got):
        np.testing.assert_allclose(g, score_labels(lm, texts, TEMPLATE, words), atol=1e-4)
        np.testing.assert_allclose(np.exp(g).sum(1), 1.0, rtol=1e-5)
    assert (lm_a.meter.calls, lm_b.meter.calls) == (2 + 2, 1 + 1)  # the batcher's bill + the reference call
