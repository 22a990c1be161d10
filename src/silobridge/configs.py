"""Dataclass configs: help text on every field, strict loading, ``key=value`` overrides.

A config is a dataclass whose fields carry ``metadata={"help": ...}`` (use :func:`option`) and whose
``__post_init__`` validates values by raising :class:`ConfigError`. Nested dataclasses form sections.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from silobridge.errors import ConfigError


def option(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with help text (lists/dicts/dataclasses use a factory)."""
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: _copy(default), metadata={"help": help}, **kw)
    return dataclasses.field(default=default, metadata={"help": help}, **kw)


def _copy(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.replace(value)
    return type(value)(value)


def check(cond: bool, name: str, value: Any, expected: str) -> None:
    """Uniform parameter check: ``ConfigError('n_public=-1: must be >= 0')``."""
    if not cond:
        raise ConfigError(f"{value!r} is invalid: {expected}", where=name,
                          fix=f"set {name} to a value that is {expected}")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (from TOML/YAML/JSON or a ``--set`` string) to the annotated type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(value, args[0], key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"expected a section (table), got {value!r}", where=key)
        return from_dict(tp, value, prefix=key + ".")
    try:
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            try:
                return tp(value)
            except ValueError:
                raise ConfigError(f"{value!r} is not one of {[m.value for m in tp]}", where=key,
                                  fix=f"set {key} to one of: {', '.join(m.value for m in tp)}") from None
        if tp is bool:
            if isinstance(value, str):
                low = value.lower()
                if low not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return low in ("true", "1", "yes")
            return bool(value)
        if tp in (int, float, str):
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return tp(value)
        if origin in (tuple, list):
            (item,) = typing.get_args(tp)[:1] or (str,)
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()] if value.strip() else []
            return origin(_coerce(v, item, key) for v in value)
        if origin is dict:
            if isinstance(value, str):
                value = json.loads(value)
            return dict(value)
        if tp is Any:
            return value
    except (TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {value!r} as {getattr(tp, '__name__', tp)}", where=key,
                          fix=f"give {key} a {getattr(tp, '__name__', tp)} value") from exc
    return value


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build ``cls`` from a mapping; unknown keys are an error that lists the known ones."""
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(prefix + u for u in unknown)}",
                          where=prefix.rstrip(".") or "config",
                          fix=f"use one of: {', '.join(prefix + n for n in sorted(names))}")
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """JSON-ready dict of a config (tuples become lists)."""
    def default(o: Any) -> Any:
        return o.value if isinstance(o, enum.Enum) else list(o)

    return json.loads(json.dumps(dataclasses.asdict(cfg), default=default))


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML, YAML or JSON config file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("file not found", where=str(path), fix="pass an existing .toml/.yaml/.json file")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        if path.suffix in (".yaml", ".yml"):
            return yaml.safe_load(text) or {}
        if path.suffix == ".json":
            return json.loads(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot parse: {exc}", where=str(path), fix="correct the file's syntax") from exc
    raise ConfigError(f"unknown config format '{path.suffix}'", where=str(path),
                      fix="use a .toml, .yaml/.yml or .json file")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` strings onto a nested dict (types are checked later by :func:`from_dict`)."""
    out = json.loads(json.dumps(data))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not key=value", where="--set",
                              fix="write overrides as --set section.key=value, e.g. --set data.n_private=100")
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"'{p}' is a value, not a section", where=f"--set {item}")
        node[leaf] = value
    return out


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, help) rows for every field, nested sections flattened."""
    rows = []
    for f in dataclasses.fields(cls):
        tp = _hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            rows += describe(tp, prefix + f.name + ".")
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "")
        if isinstance(default, enum.Enum):
            default = default.value
        rows.append((prefix + f.name, repr(default), f.metadata.get("help", "")))
    return rows
