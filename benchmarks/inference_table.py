"""Collaborative inference, side by side: the new strategies (router, retrieval from private records and
from the public pool, proxy-tuning) next to `sm-only` and `lm-zero-shot`, several seeds, bundled defaults
(issue 12's closing-note table), and the router's validation cost-quality curve as a plot file. Then
domain language modelling (`task=domain-lm`): the LM alone, `lm-finetune-private` (the upper bound),
`proxy-tuning` with the share of the LM-alone → fine-tuned perplexity gap it closes, and `speculative`
decoding (acceptance rate, LM forward passes saved).

    .venv/bin/python benchmarks/inference_table.py --seeds 0,1,2 --out runs/inference
        [--set data.path=bundled:wordnet-nouns]

Each run is a normal resumable `silobridge bench` run under OUT/<strategy>/seed<N> (the variant under
OUT/retrieval-public/retrieval/seed<N>; domain-lm under OUT/domain-lm/<strategy>/seed<N>), the layout of
`benchmarks/strategy_table.py`: pointed at a table's
directory, it reuses the runs the table already finished. `lm.cache` is on (the LM's label scores of a text
are computed once and reused by the strategies that send it the same prompt).
Prints a markdown table, mean ± sd over seeds; writes OUT/router-curve.png.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from silobridge.bench.suite import bench
from silobridge.configs import apply_overrides, from_dict
from silobridge.settings import RunConfig

sys.path.insert(0, str(Path(__file__).parent))
from strategy_table import fmt as ms  # noqa: E402  (mean ± sd over seeds, as the strategy table writes it)

ROWS = [  # (row, strategy, extra overrides)
    ("sm-only", "sm-only", []),
    ("lm-zero-shot", "lm-zero-shot", []),
    ("router", "router", []),
    ("retrieval, private neighbours (sanitised)", "retrieval", []),
    ("retrieval, public neighbours", "retrieval", ["strategy.source=public"]),
    ("proxy-tuning", "proxy-tuning", []),
]
DOMAIN_ROWS = ["lm-zero-shot", "lm-finetune-private", "proxy-tuning", "speculative"]


def line(row: str, rs: list[dict]) -> str:
    o = [r["objectives"] for r in rs]
    u = [x["utility"] for x in o]
    q = [x["lm_queries"] for x in o]
    c = [x["communication"] for x in o]
    exposures = sorted({k for x in o for k, v in x["privacy"]["exposures"].items() if v.get("texts")})
    exp = ", ".join(f"{k} {statistics.mean(x['privacy']['exposures'].get(k, {}).get('texts', 0) for x in o):,.0f}"
                    for k in exposures) or "none"  # texts per exposure (weights carriers have none)
    rep = [r["report"] for r in rs]
    lm_share = ms([x.get("lm_share") for x in rep], ".2f") if any("lm_share" in x for x in rep) else "–"
    return " | ".join([row, str(len(rs)), ms([x["accuracy"] for x in u]), ms([x["macro_f1"] for x in u]),
                       ms([x["auc"] for x in u]), ms([x["calls"] for x in q], ",.0f"),
                       ms([x["tokens_in"] for x in q], ",.0f"), lm_share,
                       ms([x["bytes_data_to_model"] for x in c], ",.0f"),
                       ms([x["bytes_model_to_data"] for x in c], ",.0f"), exp,
                       ms([x["compute"].get("wall_seconds") for x in o], ",.0f")])


def domain_line(name: str, rs: list[dict], by_seed: dict[tuple[str, int], dict]) -> str:
    """A domain-lm row: perplexity, next-token accuracy, cost, bytes, wall; proxy-tuning's gap share (per seed:
    (ppl LM alone − ppl proxy) / (ppl LM alone − ppl lm-finetune-private)); speculative's generation figures."""
    o = [r["objectives"] for r in rs]
    u, q, c = [x["utility"] for x in o], [x["lm_queries"] for x in o], [x["communication"] for x in o]
    extra = "–"
    if name == "proxy-tuning":
        gaps = []
        for r in rs:
            lm, ft = by_seed.get(("lm-zero-shot", r["seed"])), by_seed.get(("lm-finetune-private", r["seed"]))
            if lm and ft:
                a, b = lm["objectives"]["utility"]["perplexity"], ft["objectives"]["utility"]["perplexity"]
                gaps.append((a - r["objectives"]["utility"]["perplexity"]) / (a - b))
        extra = f"gap closed {ms(gaps, '.2f')}" if gaps else "–"
    elif name == "speculative":
        g = [r["report"]["generation"] for r in rs]
        extra = (f"acceptance {ms([x['acceptance_rate'] for x in g], '.2f')}, LM passes saved "
                 f"{ms([x['lm_passes_saved'] for x in g], '.2f')}")
    return " | ".join([name, str(len(rs)), ms([x.get("perplexity") for x in u], ".1f"),
                       ms([x.get("next_token_accuracy") for x in u]), ms([x["calls"] for x in q], ",.0f"),
                       ms([x["bytes_data_to_model"] for x in c], ",.0f"),
                       ms([x["bytes_model_to_data"] for x in c], ",.0f"), extra,
                       ms([x["compute"].get("wall_seconds") for x in o], ",.0f")])


def plot_router(rs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for r in rs:
        v = r["report"].get("validation", {})
        curve = v.get("curve") or []
        if curve:
            ax.plot([p["lm_share"] for p in curve], [p["quality"] for p in curve], label=f"seed {r['seed']}")
    ax.set_xlabel("share of queries sent to the LM")
    ax.set_ylabel(f"validation {rs[0]['report'].get('target', {}).get('metric', 'accuracy')}")
    ax.set_title("router: cost-quality curve (validation)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default="runs/inference")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides")
    ap.add_argument("--no-domain", action="store_true", help="skip the domain-lm rows (proxy-tuning, speculative)")
    args = ap.parse_args()
    seeds, out = [int(s) for s in args.seeds.split(",")], Path(args.out)
    table, domain, failures = {}, {}, []

    def log(k, n, s, d) -> None:
        print(f"  {n} seed {s} {d}", flush=True)

    for seed in seeds:  # seed by seed: an interrupted table resumes
        for row, name, extra in ROWS:
            cfg = from_dict(RunConfig, apply_overrides({}, ["lm.cache=true", *args.set, *extra]))
            where = out / "retrieval-public" if "strategy.source=public" in extra else out
            results, failed = bench([name], [seed], cfg, where, log)
            table.setdefault(row, []).extend(results)
            failures += failed
        if not args.no_domain:
            cfg = from_dict(RunConfig, apply_overrides({}, ["lm.cache=true", "task=domain-lm", *args.set]))
            results, failed = bench(DOMAIN_ROWS, [seed], cfg, out / "domain-lm", log)
            for r in results:
                domain[(r["strategy"], r["seed"])] = r
            failures += failed
    print("\nLM prompt tokens: those the LM computed; texts served from lm.cache (scored by an earlier run with the "
          "same LM and prompt) count as calls, not tokens")
    print("\n| strategy | runs | acc | macro-F1 | AUC | LM calls | LM prompt tokens | LM share | bytes d→m | "
          "bytes m→d | exposures (texts) | wall s |\n|" + "---|" * 12)
    for row, _, _ in ROWS:
        if table.get(row):
            print(f"| {line(row, table[row])} |")
    if domain:
        print("\n### task = domain-lm (mean ± sd over seeds)\n\n| strategy | runs | ppl | next-token acc | LM calls | "
              "bytes d→m | bytes m→d | gap closed / generation | wall s |\n|" + "---|" * 9)
        for name in DOMAIN_ROWS:
            rs = [r for (n, _), r in sorted(domain.items()) if n == name]
            if rs:
                print(f"| {domain_line(name, rs, domain)} |")
    if table.get("router"):
        plot_router(table["router"], out / "router-curve.png")
        print(f"\nrouter curve: {out / 'router-curve.png'}")
    if failures:
        raise SystemExit("failed: " + "; ".join(failures))


if __name__ == "__main__":
    main()
