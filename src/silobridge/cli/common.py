"""What the commands share: building a RunConfig from a file, shortcuts and --set overrides; errors."""
from __future__ import annotations

import functools
from typing import Any, Callable

import typer
from rich.console import Console

from silobridge.configs import apply_overrides, from_dict, load_file
from silobridge.errors import SilobridgeError
from silobridge.settings import RunConfig

err = Console(stderr=True, soft_wrap=True)

ConfigOpt = typer.Option(None, "--config", "-c", help="TOML/YAML/JSON config file (see `silobridge config`)")
SetOpt = typer.Option(None, "--set", "-s", help="override a config key: --set data.n_private=100 (repeatable)")
DataOpt = typer.Option(None, "--data", help="your labelled CSV/JSONL file, or a bundled task: bundled:reviews "
                                            "(the default) or bundled:wordnet-nouns (24 classes); tables (with "
                                            "--task tabular): bundled:credit-default or bundled:credit-scoring")
TextColOpt = typer.Option(None, "--text-col", help="text column of --data")
LabelColOpt = typer.Option(None, "--label-col", help="label column of --data")
FeatureColsOpt = typer.Option(None, "--feature-cols", help="with --task tabular: comma-separated feature columns "
                                                           "of --data (default: every column but the label)")
LMOpt = typer.Option(None, "--lm", help="local HF causal-LM directory or .gguf file (default: bundled SmolLM2-135M)")
TaskOpt = typer.Option(None, "--task", help="'classify' (default), 'domain-lm' (perplexity on held-out private text; "
                                            "a text-only file will do) or 'tabular' (a table's rows: numeric and "
                                            "categorical columns, --label-col, --feature-cols; each row is "
                                            "serialised as text for the LM, see data.row_template)")
SMOpt = typer.Option(None, "--sm", help="'tfidf', 'encoder', or a local HF encoder directory (default: tfidf; MiniLM "
                                        "for 'encoder'); with --task tabular 'boost' (the default: gradient-boosted "
                                        "trees) or 'logreg' (LR on one-hot/standardised features)")


def merged_config(config: str | None, overrides: list[str] | None, *, sm: str | None = None,
                  **shortcuts: Any) -> dict[str, Any]:
    """File < shortcut options (``shortcuts``: dotted key -> value, None = not given; ``sm``) < --set,
    as one unvalidated dict."""
    base: dict[str, Any] = load_file(config) if config else {}
    sets = [f"{key}={value}" for key, value in shortcuts.items() if value is not None]
    if sm is not None:
        named = ("auto", "tfidf", "encoder", "boost", "logreg")
        sets += [f"sm.kind={sm}"] if sm in named else ["sm.kind=encoder", f"sm.path={sm}"]
    return apply_overrides(base, sets + list(overrides or []))


def build_config(config: str | None, overrides: list[str] | None, *, data: str | None = None,
                 text_col: str | None = None, label_col: str | None = None, lm: str | None = None,
                 sm: str | None = None, seed: int | None = None, task: str | None = None,
                 feature_cols: str | None = None) -> RunConfig:
    """File < shortcut options < --set, then strict validation."""
    return from_dict(RunConfig, merged_config(config, overrides, sm=sm, **{
        "data.path": data, "data.text_col": text_col, "data.label_col": label_col, "lm.path": lm, "seed": seed,
        "task": task, "data.feature_cols": feature_cols}))


def friendly(fn: Callable) -> Callable:
    """Print silobridge errors as one clear message and exit 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SilobridgeError as exc:
            err.print(f"[bold red]error[/] ({type(exc).__name__}) {exc}", highlight=False, markup=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]: unfinished runs have no result.json; run the same command "
                      "again to resume (finished runs are kept)")
            raise typer.Exit(130) from None

    return wrapper
