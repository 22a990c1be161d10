"""The same federation on Flower's deployment engine, every party a real process on this machine talking
over the network on 127.0.0.1: one SuperLink (the model party's side), one SuperNode per data party (its
partition in ``--node-config``), and ``flwr run`` to start the app. Every process started here is stopped
again, also when the run fails or is interrupted. Logs: ``OUT/flower/logs``."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from silobridge.errors import SilobridgeError
from silobridge.federation.apps import ENV
from silobridge.federation.config import FedSettings
from silobridge.federation.engine import FederationError, finish, prepare

APP = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "silobridge-federation"
version = "1.0.0"
dependencies = []  # empty: the SuperLink installs nothing; the parties run the installed silobridge

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "silobridge"

[tool.flwr.app.components]
serverapp = "silobridge.federation.apps:server_app"
clientapp = "silobridge.federation.apps:client_app"

[tool.flwr.app.config]
settings = "{settings}"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise FederationError(f"the SuperLink exited with code {proc.returncode}", where=str(log),
                                  fix="see its log; is flwr installed in this environment?")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise FederationError(f"the SuperLink did not listen on 127.0.0.1:{port} within {timeout:.0f} s",
                          where=str(log), fix="see its log")


class Processes:
    """Processes started in their own process groups; ``stop`` ends them all (and their children)."""

    def __init__(self, logs: Path, env: dict[str, str]):
        self.logs, self.env, self.procs = logs, env, []
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        """End every started process and every process they started (Flower detaches some of its own:
        they are found as children before their parents go)."""
        import psutil

        found = []
        for proc in self.procs:
            try:
                found += psutil.Process(proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for child in found:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.terminate()
        _, alive = psutil.wait_procs([psutil.Process(p.pid) for p in self.procs if p.poll() is None] + found,
                                     timeout=10)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        for proc in self.procs:
            proc.wait()


def _bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def deploy(settings: FedSettings, out: str | Path) -> dict[str, Any]:
    """Run fed-distill on the deployment engine on loopback; returns the result also in ``OUT/result.json``."""
    out = Path(out).resolve()
    t0 = time.perf_counter()
    path = prepare(settings, out)
    work = out / "flower"
    app = work / "app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "pyproject.toml").write_text(APP.format(settings=str(path)))
    link_port = free_port()
    home = work / "home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(f'[superlink.local]\naddress = "127.0.0.1:{link_port}"\ninsecure = true\n')
    env = os.environ | {"FLWR_HOME": str(home), "FLWR_DISABLE_UPDATE_CHECK": "1", "FLWR_TELEMETRY_ENABLED": "0",
                        "SILOBRIDGE_PROGRESS": "0", ENV: str(path),
                        # Flower starts its own helpers (flower-superexec, flwr-clientapp) by name
                        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    procs = Processes(work / "logs", env)
    try:
        link = procs.start("superlink", [_bin("flower-superlink"), "--insecure",
                                         "--disable-runtime-dependency-installation", "--host", "127.0.0.1",
                                         "--port", str(link_port), "--database", str(work / "state.db")])
        _wait_port(link_port, link, work / "logs" / "superlink.log")
        n = settings.federation.parties
        for pid in range(n):
            procs.start(f"party-{pid}", [_bin("flower-supernode"), "--insecure", "--superlink",
                                         f"127.0.0.1:{link_port}", "--port", str(free_port()),
                                         "--node-config", f"partition-id={pid} num-partitions={n}"])
        timeout = settings.federation.timeout * (settings.federation.rounds + 2)
        runner = procs.start("flwr-run", [_bin("flwr"), "run", str(app), "local", "--stream"])
        try:
            runner.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise FederationError(f"the federation did not finish within {timeout:.0f} s", where=str(work / "logs"),
                                  fix="raise federation.timeout, or see the logs") from None
    finally:
        procs.stop()
    try:
        return finish(settings, out, "deployment", time.perf_counter() - t0)
    except SilobridgeError as e:
        raise FederationError(f"{e} (logs: {work / 'logs'})", where=str(out), fix="see the logs; rerun to resume")
