"""Which table figures moved: an earlier table's runs against a rerun, strategy by strategy.

Reads two trees of finished `silobridge bench` runs as `strategy_table.py` writes them
(``<strategy>/seed<N>/result.json``, the encoder reference under ``encoder/sm-only``, domain-LM runs under
``domain-lm/``) and prints, per strategy and metric, the old figure (mean over its seeds), the new mean ± sd and
the change, starred when it is beyond the new runs' seed spread (|Δ| > sd; one new seed has no sd). The last
column lists the config fields that differ between the two trees' seed-0 runs, so each move can be
put down to a changed default (or to none: then to code changes or seed noise). Reads only; runs nothing.

    .venv/bin/python benchmarks/compare_tables.py benchmarks/results/table-reviews-bf16 \
        benchmarks/results/tables/reviews
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from silobridge.bench.runner import RESOURCE_KEYS
from silobridge.models.sm import resolved_kind
from silobridge.settings import SMKind

METRICS = {"classify": ["accuracy", "macro_f1", "auc"], "domain-lm": ["perplexity", "next_token_accuracy"]}
# not what a strategy computes: the settings a run's resume identity leaves out, and which seed / task it ran
IGNORED = {f"{section}.{key}" for section, keys in RESOURCE_KEYS.items() for key in keys} | {"seed", "data.path"}


def runs(root: Path) -> dict[tuple[str, str], list[dict]]:
    """(kind, strategy) -> the finished results under ``root``."""
    found: dict[tuple[str, str], list[dict]] = {}
    for f in sorted(root.glob("**/seed*/result.json")):
        r = json.loads(f.read_text())
        name = "/".join(p for p in f.parent.parent.relative_to(root).parts if p != "domain-lm")  # e.g. encoder/sm-only
        found.setdefault((r["task_kind"], name), []).append(r)
    return found


def flat(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def resolved(r: dict) -> dict[str, object]:
    """A run's config, flat, with ``sm.kind`` read as the SM it built (``auto``: TF-IDF for texts), so that
    a default renamed to 'auto' is not reported as a change."""
    c = flat(r["config"])
    if "sm.kind" in c:
        c["sm.kind"] = resolved_kind(SMKind(c["sm.kind"]), r.get("task_kind") == "tabular").value
    return c


def config_diff(old: list[dict], new: list[dict]) -> str:
    a, b = (resolved(min(rs, key=lambda r: r["seed"])) for rs in (old, new))
    # an option added since is not a change: only fields both runs have
    keys = sorted(k for k in a.keys() & b.keys() if k not in IGNORED and a[k] != b[k])
    return ", ".join(f"{k}: {a[k]} → {b[k]}" for k in keys) or "none"


def moved(a: list[float], b: list[float], spec: str) -> str:
    """'old → new ± sd (Δ)', Δ starred when beyond the new runs' seed sd."""
    mo, mn = statistics.mean(a), statistics.mean(b)
    sd = statistics.stdev(b) if len(b) > 1 else None
    star = "*" if sd is not None and abs(mn - mo) > sd else ""
    return f"{mo:{spec}} → {mn:{spec}}{'' if sd is None else f' ± {sd:{spec}}'} ({mn - mo:+{spec}}{star})"


def compare(old: dict, new: dict) -> list[str]:
    lines = []
    for kind, metrics in METRICS.items():
        keys = sorted(k for k in old.keys() & new.keys() if k[0] == kind)
        if not keys:
            continue
        lines += ["", f"task = {kind} (old mean → new mean ± sd (Δ); * = Δ beyond the new seed sd)", "",
                  f"| strategy | seeds old / new | {' | '.join(metrics)} | config changed |",
                  "|---|---|" + "---|" * len(metrics) + "---|"]
        for key in keys:
            cells = []
            for m in metrics:
                a = [r["objectives"]["utility"].get(m) for r in old[key]]
                b = [r["objectives"]["utility"].get(m) for r in new[key]]
                cells.append("–" if None in a or None in b else moved(a, b, ".1f" if m == "perplexity" else ".3f"))
            lines.append(f"| {key[1]} | {len(old[key])} / {len(new[key])} | {' | '.join(cells)} | "
                         f"{config_diff(old[key], new[key])} |")
    missing = sorted(set(old) ^ set(new))
    if missing:
        lines.append("")
        lines.append("in one tree only: " + ", ".join(f"{n} ({k}, {'old' if (k, n) in old else 'new'})"
                                                        for k, n in missing))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", type=Path, help="the earlier table's run directory")
    ap.add_argument("new", type=Path, help="the rerun's run directory")
    args = ap.parse_args()
    for d in (args.old, args.new):
        if not d.is_dir():
            raise SystemExit(f"{d}: not a directory of table runs (strategy_table.py --out writes them)")
    print("\n".join(compare(runs(args.old), runs(args.new))))


if __name__ == "__main__":
    main()
