"""Federated strategies on Flower's simulation engine, on the bundled defaults (SmolLM2-135M, reviews, TF-IDF SMs).

    .venv/bin/python benchmarks/federation.py --seeds 0,1,2 --out runs/fed-table      # the table
    .venv/bin/python benchmarks/federation.py --scale 5,10,25,50 --out runs/fed-scale  # cost against N
    .venv/bin/python benchmarks/federation.py --strategy fed-offsite --seeds 0 --out runs/fed-offsite
    .venv/bin/python benchmarks/federation.py --strategy lm-fusion --seeds 0 --out runs/lm-fusion

The table: per seed, each round's mean and worst-party SM utility, the LM's utility, bytes and seconds,
next to the reference rows (each party alone = round 0; the LM zero-shot; the centralised union, a
privacy-violating bound). The scale run: per N, per round wall seconds, bytes, and the peak resident memory of
the whole federation (this process, Ray and its workers: every process under this one, sampled every 0.5 s).
Runs already finished in OUT are read back, not rerun. Extra settings: --set key=value (repeatable)."""
from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

import psutil

from silobridge.configs import apply_overrides
from silobridge.federation.config import FedSettings
from silobridge.federation.engine import simulate


class PeakMemory:
    """Peak summed RSS of this process and all its descendants."""

    def __init__(self, every: float = 0.5):
        self.every, self.peak_mb, self._stop = every, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me] + me.children(recursive=True):
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_mb = max(self.peak_mb, total / 2**20)
            self._stop.wait(self.every)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_one(sets: list[str], out: Path, strategy: str = "fed-distill") -> dict:
    if (out / "result.json").exists():
        return json.loads((out / "result.json").read_text())
    settings = FedSettings.from_overrides(apply_overrides({}, sets), name=strategy)
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        result = simulate(settings, out)
    result["peak_federation_rss_mb"] = round(mem.peak_mb, 1)
    result["benchmark_seconds"] = round(time.perf_counter() - t0, 1)
    (out / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def f3(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def table(results: list[dict]) -> None:
    print("\n| seed | row | mean acc | worst acc | mean macro-F1 | worst macro-F1 | LM acc | LM macro-F1 | bytes | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        s = r["seed"]
        for rnd in r["rounds"]:
            name = "round 0 = each party alone" if rnd["round"] == 0 else f"fed-distill round {rnd['round']}"
            print(f"| {s} | {name} | {f3(rnd['accuracy'].get('mean'))} | {f3(rnd['accuracy'].get('worst'))} | "
                  f"{f3(rnd['macro_f1'].get('mean'))} | {f3(rnd['macro_f1'].get('worst'))} | "
                  f"{f3(rnd['lm'].get('accuracy'))} | {f3(rnd['lm'].get('macro_f1'))} | "
                  f"{rnd['bytes_model_to_parties'] + rnd['bytes_parties_to_model']:,} | {rnd['seconds']:.0f} |")
        c = r["references"]["centralised"]
        print(f"| {s} | centralised union (privacy-violating) | {f3(c['accuracy'])} | – | {f3(c['macro_f1'])} | – "
              f"| – | – | – | – |")
    finals = [r["final"] for r in results]
    if len(finals) > 1:
        for key in ("accuracy", "macro_f1"):
            m = [f[key]["mean"] for f in finals]
            w = [f[key]["worst"] for f in finals]
            print(f"final round {key}: mean {statistics.mean(m):.3f} ± {statistics.stdev(m):.3f}, "
                  f"worst {statistics.mean(w):.3f} ± {statistics.stdev(w):.3f}")
    for r in results:
        c = r["communication"]
        print(f"seed {r['seed']}: {c['bytes_per_round']:,.0f} bytes per round; full-parameter FedAvg would move "
              f"{c.get('ratio_fedavg_lm', 0):,.0f}x that for the LM and {c.get('ratio_fedavg_sm', 0):,.1f}x for "
              f"the SMs; wall {r['compute']['wall_seconds']:.0f} s, peak federation RSS "
              f"{r.get('peak_federation_rss_mb', '–')} MB")


def offsite_table(results: list[dict]) -> None:
    print("\n| seed | row | LM acc | LM macro-F1 | LM AUC | ε | mean update norm | bytes | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        s = r["seed"]
        for rnd in r["rounds"]:
            name = "round 0 = the LM zero-shot" if rnd["round"] == 0 else f"fed-offsite round {rnd['round']}"
            norms = [p["update_norm"] for p in rnd["parties"].values() if "update_norm" in p]
            print(f"| {s} | {name} | {f3(rnd['lm'].get('accuracy'))} | {f3(rnd['lm'].get('macro_f1'))} | "
                  f"{f3(rnd['lm'].get('auc'))} | {f3(rnd['epsilon'])} | "
                  f"{f3(statistics.mean(norms) if norms else None)} "
                  f"| {rnd['bytes_model_to_parties'] + rnd['bytes_parties_to_model']:,} | {rnd['seconds']:.0f} |")
        c = r["references"]["centralised"]
        print(f"| {s} | offsite-tuning on the union (privacy-violating) | {f3(c['accuracy'])} | "
              f"{f3(c['macro_f1'])} | {f3(c.get('auc'))} | – | – | – | – |")
    for r in results:
        c = r["communication"]
        print(f"seed {r['seed']}: emulator {c['emulator_bytes_per_party']:,.0f} bytes per party once "
              f"({c['emulator_revealed_param_share']:.1%} of the LM's parameters); adapters {c['adapter_params']:,} "
              f"numbers ({c['adapter_share_of_lm']:.2%} of the LM); {c['bytes_per_round']:,.0f} bytes per round, "
              f"full-parameter FedAvg of the LM would move {c['ratio_fedavg_lm']:,.0f}x that; wall "
              f"{r['compute']['wall_seconds']:.0f} s, peak federation RSS {r.get('peak_federation_rss_mb', '–')} MB")


def fusion_table(results: list[dict]) -> None:
    print("\n| seed | SM taught by | mean acc | worst acc | mean macro-F1 | worst macro-F1 |")
    print("|---|---|---|---|---|---|")
    for r in results:
        lms = r["config"]["strategy"]["lms"]
        for name, row in r["sm"].items():
            who = {"alone": "nothing (each party alone)", "teacher:fused": "the fusion"}.get(name)
            who = who or f"{lms[int(name.removeprefix('teacher:lm'))]} alone"
            print(f"| {r['seed']} | {who} | {f3(row['accuracy'].get('mean'))} | {f3(row['accuracy'].get('worst'))} | "
                  f"{f3(row['macro_f1'].get('mean'))} | {f3(row['macro_f1'].get('worst'))} |")
        for spec, u in r["references"]["lm_zero_shot"].items():
            print(f"| {r['seed']} | ({spec} itself, zero-shot) | {f3(u.get('accuracy'))} | – | "
                  f"{f3(u.get('macro_f1'))} | – |")
    for r in results:
        w = "; ".join(f"party {p}: " + ", ".join(f"{v:.2f}" for v in ws.values())
                      for p, ws in sorted(r["weights"].items()))
        print(f"seed {r['seed']}: weights of the LMs {w}; {r['privacy']['validation_records_sent']} validation "
              f"records sent; {r['communication']['bytes_total']:,} bytes; wall {r['compute']['wall_seconds']:.0f} s, "
              f"peak federation RSS {r.get('peak_federation_rss_mb', '–')} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--scale", default="", help="comma-separated party counts (the scale run)")
    ap.add_argument("--out", default="runs/fed")
    ap.add_argument("--strategy", default="fed-distill", choices=("fed-distill", "fed-offsite", "lm-fusion"))
    ap.add_argument("--set", action="append", default=[], dest="sets")
    a = ap.parse_args()
    out = Path(a.out)
    if a.scale:
        print("| parties | round | seconds | bytes | mean macro-F1 | worst macro-F1 | peak federation RSS MB |")
        print("|---|---|---|---|---|---|---|")
        for n in [int(x) for x in a.scale.split(",")]:
            r = run_one([f"federation.parties={n}"] + a.sets, out / f"parties{n}")
            for rnd in r["rounds"]:
                print(f"| {n} | {rnd['round']} | {rnd['seconds']:.0f} | "
                      f"{rnd['bytes_model_to_parties'] + rnd['bytes_parties_to_model']:,} | "
                      f"{f3(rnd['macro_f1'].get('mean'))} | {f3(rnd['macro_f1'].get('worst'))} | "
                      f"{r['peak_federation_rss_mb']:,.0f} |", flush=True)
        return
    results = [run_one([f"seed={s}"] + a.sets, out / f"seed{s}", a.strategy) for s in a.seeds.split(",")]
    {"fed-offsite": offsite_table, "lm-fusion": fusion_table}.get(a.strategy, table)(results)


if __name__ == "__main__":
    main()
