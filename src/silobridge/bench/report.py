"""`silobridge report`: one self-contained HTML file (plotly's JavaScript inlined: it opens offline) with
the objective table, the score and its normalisation, the Pareto fronts, what crossed the boundary per
strategy, label-budget curves when the runs hold a sweep, and the environment that produced them."""
from __future__ import annotations

import datetime
import html
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from silobridge.bench.score import COSTS, LABELS, Row, fronts, normalise, pareto, rows_of
from silobridge.errors import DataError


def load_runs(paths: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """(run directory, result) for every result.json under ``paths`` (directories, result.json files or
    results.jsonl files); unreadable files are named in the error."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found += sorted(p.glob("**/result.json"))
        elif p.is_file():
            found.append(p)
        else:
            raise DataError("no such file or directory", where=str(p), fix="pass run directories or result.json files")
    runs = []
    for f in found:
        try:
            if f.suffix == ".jsonl":
                runs += [(f.parent, json.loads(x)) for x in f.read_text().splitlines() if x.strip()]
            else:
                runs.append((f.parent, json.loads(f.read_text())))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read a result: {exc}", where=str(f),
                            fix="remove the damaged file or rerun that run (bench resumes)") from None
    if not runs:
        raise DataError("no finished runs (result.json) found", where=", ".join(map(str, paths)),
                        fix="pass the --out directory of `silobridge bench` or `run`")
    return runs


def _fmt(x: float | None, spec: str) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return format(x, spec)


def _ms(row: Row, key: str, spec: str) -> str:
    m, s = row.mean.get(key), row.sd.get(key)
    return _fmt(m, spec) + (f" ± {_fmt(s, spec)}" if s is not None and m is not None and math.isfinite(m) else "")


TABLE = [("seeds", None, None), ("accuracy", "accuracy", ".3f"), ("macro-F1", "macro_f1", ".3f"),
         ("AUC", "auc", ".3f"),
         ("perplexity", "perplexity", ".1f"), ("bytes", "bytes", ",.0f"), ("LM calls", "lm_calls", ",.0f"),
         ("ε", "epsilon", ".2f"), ("canary / raw hits", None, None), ("data s", "data_seconds", ",.1f"),
         ("model s", "model_seconds", ",.1f"), ("wall s", "wall_seconds", ",.0f")]


def objective_table(rows: list[Row]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ["strategy", *[t[0] for t in TABLE], "score"])
    body = []
    for r in sorted(rows, key=lambda r: -r.score):
        cells = [html.escape(r.name)]
        for title, key, spec in TABLE:
            if title == "seeds":
                cells.append(",".join(map(str, r.seeds)))
            elif key is None:
                cells.append(f"{r.mean['canary_hits']:.0f} / {r.mean['raw_record_hits']:.0f}")
            else:
                cells.append(_ms(r, key, spec))
        cells.append(f"{r.score:+.3f}")
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f'<table class="objectives"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _div(fig) -> str:
    return f'<div class="plot">{fig.to_html(full_html=False, include_plotlyjs=False)}</div>'


def _front_figure(rows: list[Row], cost: str, kind: str):
    import plotly.graph_objects as go

    on = {r.name for r in pareto(rows, cost)}
    fig = go.Figure()
    finite = [r.mean[cost] for r in rows if r.mean[cost] is not None and math.isfinite(r.mean[cost])]
    inf_at = (max(finite, default=1.0) or 1.0) * 2  # ∞ drawn at the right edge
    for r in rows:
        if r.mean["utility"] is None or r.mean[cost] is None:
            continue
        x = r.mean[cost] if math.isfinite(r.mean[cost]) else inf_at
        fig.add_trace(go.Scatter(
            x=[max(x, 1e-3)], y=[r.mean["utility"]], mode="markers+text", text=[r.name], textposition="top center",
            name=r.name, marker={"size": 12 if r.name in on else 8,
                                 "symbol": "circle" if r.name in on else "circle-open"},
            error_y={"type": "data", "array": [r.sd["utility"] or 0], "visible": r.sd["utility"] is not None},
            hovertext=f"{r.name}: {LABELS[cost]} {_fmt(r.mean[cost], ',.3g')}"))
    front = sorted((r for r in rows if r.name in on), key=lambda r: r.mean[cost])
    fig.add_trace(go.Scatter(x=[max(r.mean[cost] if math.isfinite(r.mean[cost]) else inf_at, 1e-3) for r in front],
                             y=[r.mean["utility"] for r in front], mode="lines", line={"dash": "dot"},
                             name="Pareto front", hoverinfo="skip"))
    ylab = "accuracy" if kind == "classify" else "−log perplexity"
    fig.update_layout(title=f"{ylab} vs {LABELS[cost]}", xaxis_title=LABELS[cost] + (" (∞ at the right edge)"
                      if cost == "epsilon" else ""), yaxis_title=ylab, showlegend=False, height=420,
                      margin={"l": 60, "r": 20, "t": 50, "b": 50})
    if cost != "epsilon":
        fig.update_xaxes(type="log")
    return fig


def _ledger_figure(runs: list[tuple[Path, dict]], names: dict[int, str]):
    """Bytes by carrier kind and direction per strategy (first seed of each)."""
    import plotly.graph_objects as go

    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    seen: set[str] = set()
    for i, (where, r) in enumerate(runs):
        name = names[i]
        if name in seen:
            continue
        seen.add(name)
        ledger = where / "ledger.jsonl"
        if not ledger.is_file():
            continue
        for line in ledger.read_text().splitlines():
            e = json.loads(line)
            arrow = "data → model" if e["sender"] == "data" else "model → data"
            per[name][f"{e['kind']} ({arrow})"] += int(e["bytes"])
    fig = go.Figure()
    series = sorted({k for v in per.values() for k in v})
    strategies = sorted(per)
    for s in series:
        fig.add_trace(go.Bar(name=s, x=strategies, y=[per[n].get(s, 0) for n in strategies]))
    fig.update_layout(barmode="stack", title="what crossed the boundary: bytes by carrier kind and direction",
                      yaxis_title="bytes", height=460, margin={"l": 60, "r": 20, "t": 50, "b": 120})
    fig.update_yaxes(type="log")
    return fig


def _budget_figure(results: list[dict]):
    """Utility against the label budget, per strategy, when the runs vary data.n_private."""
    import plotly.graph_objects as go

    pts: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        n = r.get("config", {}).get("data", {}).get("n_private")
        acc = r["objectives"]["utility"].get("accuracy")
        if n is not None and acc is not None:
            pts[r["strategy"]][int(n)].append(acc)
    if not any(len(v) > 1 for v in pts.values()):
        return None
    fig = go.Figure()
    for name, by_n in sorted(pts.items()):
        ns = sorted(by_n)
        fig.add_trace(go.Scatter(x=ns, y=[sum(by_n[n]) / len(by_n[n]) for n in ns], mode="lines+markers", name=name))
    fig.update_layout(title="label-budget curves", xaxis_title="private labels", yaxis_title="accuracy", height=420)
    fig.update_xaxes(type="log")
    return fig


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
td:first-child,th:first-child{text-align:left}
h2{margin-top:1.6em}code,pre{background:#f4f4f4;padding:2px 4px}.plot{margin:1em 0}"""


def render(runs: list[tuple[Path, dict[str, Any]]], weights: dict[str, float] | None = None,
           command: str = "") -> str:
    """The report as one HTML string (plotly's JavaScript inlined once)."""
    import plotly.offline

    from silobridge.bench.score import variant

    results = [r for _, r in runs]
    budgets = {r.get("config", {}).get("data", {}).get("n_private") for r in results}
    sweep = len(budgets) > 1
    names = {i: variant(r) + (f" @{r['config']['data']['n_private']} labels" if sweep else "")
             for i, (_, r) in enumerate(runs)}
    parts, n_plots = [], 0
    for kind in sorted({r.get("task_kind", "classify") for r in results}):
        mine = [r for r in results if r.get("task_kind", "classify") == kind]
        rows = [] if sweep else rows_of(mine)
        for n in sorted(b for b in budgets if b is not None) if sweep else []:
            for row in rows_of([r for r in mine if r["config"]["data"]["n_private"] == n]):
                row.name = f"{row.name} @{n} labels"
                rows.append(row)
        norm = normalise(rows, weights)
        f = fronts(rows)
        parts.append(f"<h2>task: {html.escape(kind)}</h2>")
        parts.append(objective_table(rows))
        parts.append("<h3>score</h3><p>score = " + " − ".join(
            [f"{norm.weights['utility']:g}·utility"] + [f"{norm.weights[c]:g}·{c}" for c in COSTS]) +
            f"; utility normalised between {_fmt(norm.utility_low, '.4f')} ({html.escape(norm.utility_low_from)}) and "
            f"{_fmt(norm.utility_high, '.4f')} ({html.escape(norm.utility_high_from)}); bytes, LM calls and data "
            "seconds as log(1+x)/log(1+max) with max = " + ", ".join(
                f"{c} {norm.cost_max[c]:,.4g}" for c in COSTS) + "; ε: 0 when nothing private crosses, "
            "0.9·log(1+ε)/log(1+ε<sub>max</sub>) for a DP ε, 1 when unbounded.</p>")
        normalised = {r.name: {k: None if v is None else round(v, 4) for k, v in r.norm.items()}
                      | {"score": round(r.score, 4)} for r in rows}
        parts.append("<details><summary>each strategy's normalised objectives</summary>"
                     '<pre class="normalisation">' + html.escape(json.dumps(normalised, indent=1)) + "</pre></details>")
        parts.append("<h3>Pareto fronts</h3><ul>" + "".join(
            f"<li>{html.escape(LABELS.get(c, c))}: {html.escape(', '.join(v) or '–')}</li>" for c, v in f.items())
            + "</ul>")
        for cost in COSTS:
            parts.append(_div(_front_figure(rows, cost, kind)))
            n_plots += 1
    led = _ledger_figure(runs, names)
    parts.append("<h2>what crossed</h2>" + _div(led))
    n_plots += 1
    budget = _budget_figure(results)
    if budget is not None:
        parts.append("<h2>label budget</h2>" + _div(budget))
        n_plots += 1
    envs = sorted({json.dumps(r.get("env", {}), sort_keys=True) for r in results})
    parts.append("<h2>environment and commands</h2><pre>" + html.escape(
        f"report: {command}\n" + "\n".join(envs)) + "</pre><p>each run: <code>silobridge run STRATEGY --seed N"
        "</code> with the config in its <code>config.json</code> (beside its result.json)</p>")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>silobridge report</title><style>{CSS}</style>'
            f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script></head><body>'
            f'<h1>silobridge report</h1><p>{len(results)} runs, {n_plots} plots, {stamp}</p>'
            + "".join(parts) + "</body></html>")


def write_report(paths: list[Path], out: Path, weights: dict[str, float] | None = None, command: str = "") -> Path:
    page = render(load_runs(paths), weights, command)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
