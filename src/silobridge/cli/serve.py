"""`silobridge serve`: run the model party as an HTTP(S) service for data parties elsewhere."""
from __future__ import annotations

import os
import re
from pathlib import Path

import typer

from silobridge.cli.common import ConfigOpt, LMOpt, SetOpt, build_config, err, friendly
from silobridge.errors import ConfigError

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MIN_KEY_CHARS = 16
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def api_key_from_env(name: str) -> str:
    """The API key held in environment variable ``name`` (the key itself never goes on a command line,
    where other users could read it in the process list)."""
    if not ENV_NAME.fullmatch(name or ""):
        raise ConfigError("this is not an environment variable name", where="--api-key-env",
                          fix="pass the NAME of a variable holding the key (export SILOBRIDGE_KEY=...; "
                              "--api-key-env SILOBRIDGE_KEY), not the key itself")
    key = os.environ.get(name, "").strip()
    if not key:
        raise ConfigError(f"environment variable {name} is not set or is empty", where="--api-key-env",
                          fix=f"export {name}=$(python -c 'import secrets; print(secrets.token_urlsafe(32))') "
                              f"and give the same key to the data party")
    if len(key) < MIN_KEY_CHARS:
        err.print(f"[yellow]warning[/]: the key in {name} has fewer than {MIN_KEY_CHARS} characters; "
                  "use a long random key")
    return key


def _existing(path: Path | None, option: str) -> str | None:
    if path is None:
        return None
    if not path.is_file():
        raise ConfigError(f"file '{path}' not found", where=option, fix="pass an existing PEM file")
    return str(path)


@friendly
def serve_cmd(host: str = typer.Option("127.0.0.1", "--host",
                                       help="address to listen on (0.0.0.0 = all interfaces; then use TLS)"),
              port: int = typer.Option(8765, "--port", help="TCP port to listen on"),
              api_key_env: str = typer.Option("SILOBRIDGE_API_KEY", "--api-key-env",
                                              help="NAME of the environment variable holding the API key that "
                                                   "clients must send (the key is never given on the command line)"),
              lm: str = LMOpt, config: str = ConfigOpt, set_: list[str] = SetOpt,
              cache: bool = typer.Option(None, "--cache/--no-cache",
                                         help="reuse the model party's work across sessions (lm.cache; default: "
                                              "the config's)"),
              home_dir: Path = typer.Option(None, "--home",
                                            help="the model party's directory for session ledgers and its cache "
                                                 "(default: $SILOBRIDGE_HOME/model-party)"),
              tls_cert: Path = typer.Option(None, "--tls-cert", help="PEM certificate: serve HTTPS (with --tls-key)"),
              tls_key: Path = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert"),
              batch_window_ms: float = typer.Option(30.0, "--batch-window-ms",
                                                    help="requests arriving within this many ms that ask for the "
                                                         "same kind of work (label scoring of different sessions "
                                                         "on the same weights; OpenAI completions with the same "
                                                         "settings) run as one batch (0 = no waiting)"),
              openai: bool = typer.Option(True, "--openai/--no-openai",
                                          help="also serve the OpenAI-compatible API (/v1/models, /v1/completions, "
                                               "/v1/chat/completions) from the LM, with the same key"),
              served_model_name: str = typer.Option(None, "--served-model-name",
                                                    help="the model name OpenAI clients ask for (default: the LM "
                                                         "directory's name, or smollm2-135m-instruct)"),
              max_model_len: int = typer.Option(2048, "--max-model-len",
                                                help="most prompt + completion tokens one OpenAI-API request may use"),
              log_level: str = typer.Option("info", "--log-level",
                                            help="server log level: debug, info, warning, error")) -> None:
    """Serve the model party (the LM) over HTTP(S); data parties connect with its URL and API key.
    Only the lm.* and policy.* config sections matter here."""
    key = api_key_from_env(api_key_env)
    if log_level.lower() not in LOG_LEVELS:
        raise ConfigError(f"unknown log level '{log_level}'", where="--log-level",
                          fix=f"one of: {', '.join(LOG_LEVELS)}")
    if not 0 <= batch_window_ms <= 1000:
        raise ConfigError(f"batch window {batch_window_ms} ms is out of range", where="--batch-window-ms",
                          fix="pass a value in [0, 1000]")
    certfile, keyfile = _existing(tls_cert, "--tls-cert"), _existing(tls_key, "--tls-key")
    from silobridge.parties.model_server import ModelServer
    from silobridge.transports import http_server

    overrides = list(set_ or []) + ([f"lm.cache={str(cache).lower()}"] if cache is not None else [])
    cfg = build_config(config, overrides, lm=lm)
    server = ModelServer(cfg.lm, cfg.policy, root=home_dir, batch_window=batch_window_ms / 1000)
    engine = None
    from silobridge.models.remote import is_remote

    if openai and is_remote(cfg.lm.path):  # the LM already has its own API: relaying it is not our job
        err.print("[yellow]note[/]: the LM is a black box (lm.path=openai:...): "
                  "the OpenAI-compatible API is not served")
        openai = False
    if openai:
        if max_model_len < 16:
            raise ConfigError(f"--max-model-len {max_model_len} is too small", where="--max-model-len",
                              fix="pass at least 16")
        from silobridge.models.lm import load_lm
        from silobridge.privacy.watermark import with_watermark
        from silobridge.serving.engine import CompletionEngine

        c = cfg.lm
        name = served_model_name or (Path(c.path).name if c.path else "smollm2-135m-instruct")
        engine = CompletionEngine(lambda: with_watermark(load_lm(c.path, c.threads, c.dtype, c.device), c), name,
                                  server.home / "openai-calls.jsonl", max_model_len=max_model_len,
                                  window=batch_window_ms / 1000)
    scheme = "https" if certfile else "http"
    err.print(f"model party: LM {cfg.lm.path or 'bundled default'}, cache {'on' if cfg.lm.cache else 'off'}, "
              f"directory {server.home}; listening on {scheme}://{host}:{port} (key from ${api_key_env})"
              + (f"; OpenAI-compatible API at {scheme}://{host}:{port}/v1 as model '{engine.name}'" if engine else ""))
    try:
        http_server.serve(server, host, port, key, certfile=certfile, keyfile=keyfile, log_level=log_level.lower(),
                          engine=engine)
    except KeyboardInterrupt:  # Ctrl-C is how a service stops: uvicorn has already shut down cleanly
        pass
    err.print("model party stopped")


__all__ = ["serve_cmd", "api_key_from_env"]
