"""Three plain sentences about a set of runs: what gained how much over the SM alone, what crossed the
boundary, and what it cost (the demo prints them)."""
from __future__ import annotations

from typing import Any


def _kb(n: float) -> str:
    return f"{n / 1000:,.1f} kB" if n < 10**6 else f"{n / 10**6:,.1f} MB"


def story(results: list[dict[str, Any]], baseline: str = "sm-only") -> list[str]:
    base = next((r for r in results if r["strategy"] == baseline), None)
    others = [r for r in results if r["strategy"] != baseline]
    if base is None or not others:
        return []

    def acc(r: dict) -> float:
        return r["objectives"]["utility"]["accuracy"]

    gains = ", ".join(f"{r['strategy']} {acc(r):.3f} ({acc(r) - acc(base):+.3f})"
                      for r in sorted(others, key=acc, reverse=True))
    crossed = []
    for r in others:
        o = r["objectives"]
        c, p = o["communication"], o["privacy"]
        eps = f", ε = {p['epsilon']:.2f}" if p.get("epsilon") is not None else ""
        leaks = f"{p['raw_record_hits']:,} private-record and {p['canary_hits']} canary hits"
        crossed.append(f"{r['strategy']} sent {_kb(c['bytes_data_to_model'])} and received "
                       f"{_kb(c['bytes_model_to_data'])} ({leaks}{eps})")
    costs = ", ".join(f"{r['strategy']} {r['objectives']['lm_queries']['calls']:,} LM calls and "
                      f"{r['objectives']['compute'].get('wall_seconds', 0):,.0f} s" for r in others)
    return [f"Test accuracy: {baseline} (the data party alone) {acc(base):.3f}; {gains}.",
            f"Across the boundary: {'; '.join(crossed)}.",
            f"Cost: {costs}, against {base['objectives']['compute'].get('wall_seconds', 0):,.0f} s for {baseline}."]
