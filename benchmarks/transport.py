"""In-process vs over HTTP on loopback: the same default runs, side by side, in one invocation.

For each strategy (default: distill-public and offsite-tuning, on the bundled defaults), one
`silobridge run` with the model party in its process, then one against a fresh `silobridge serve`
on 127.0.0.1 (HTTPS with --tls: a self-signed certificate made with openssl). Prints the wall-time
ratio, the emulator transfer's rate (bytes / time from the model party encoding it to the data party
holding it decoded, read from the two ledgers' timestamps), both results' agreement, and the peak RSS
of each process (the service's as it reported it for the session).

    .venv/bin/python benchmarks/transport.py [--strategies distill-public,offsite-tuning] [--out runs/transport]
                                             [--tls] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, verify: str | bool = True, tries: int = 600) -> None:
    """Wait until the service at ``url`` answers /health (0.2 s apart); stop it and exit if it never does."""
    for _ in range(tries):
        try:
            if httpx.get(url + "/health", verify=verify, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the service at {url} did not start")


def self_signed(directory: Path) -> tuple[str, str]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return str(cert), str(key)


def run(strategy: str, out: Path, sets: list[str], extra: list[str], env: dict) -> dict:
    cmd = [sys.executable, "-m", "silobridge", "run", strategy, "--out", str(out), *extra]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{strategy} failed:\n{proc.stderr[-3000:]}")
    result = json.loads((out / "result.json").read_text())
    result["_process_seconds"] = time.perf_counter() - t0
    return result


def transfer_rate(out: Path, op: str = "emulator.reply") -> tuple[int, float] | None:
    """(bytes, seconds) of the reply ``op``: from the model party's ledger entry (written once encoded and
    checked) to the data party's (written once received and decoded)."""
    ours = [json.loads(x) for x in (out / "ledger.jsonl").read_text().splitlines()]
    theirs = [json.loads(x) for x in (out / "ledger.model.jsonl").read_text().splitlines()]
    sent = [e for e in theirs if e["op"] == op]
    got = [e for e in ours if e["op"] == op]
    if not sent or not got:
        return None
    return got[0]["bytes"], got[0]["time"] - sent[0]["time"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategies", default="distill-public,offsite-tuning")
    ap.add_argument("--out", default="runs/transport")
    ap.add_argument("--tls", action="store_true", help="serve HTTPS with a self-signed certificate")
    ap.add_argument("--set", action="append", default=[], help="config override for every run (key=value)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    env = dict(os.environ, SILOBRIDGE_PROGRESS="0", BENCH_KEY=key)
    # the bundled LM is converted once, on first use: do it before timing anything
    subprocess.run([sys.executable, "-c", "from silobridge.models.lm import load_lm; load_lm()"], env=env, check=True)
    rows = []
    for name in [s.strip() for s in args.strategies.split(",") if s.strip()]:
        local = run(name, out / name / "in-process", args.set, [], env)
        port = free_port()
        serve = [sys.executable, "-m", "silobridge", "serve", "--port", str(port), "--api-key-env", "BENCH_KEY",
                 "--home", str(out / name / "service"), "--log-level", "warning"]
        extra = ["--api-key-env", "BENCH_KEY"]
        scheme = "http"
        if args.tls:
            cert, tls_key = self_signed(out)
            serve += ["--tls-cert", cert, "--tls-key", tls_key]
            extra += ["--ca-cert", cert]
            scheme = "https"
        for s in args.set:
            if s.startswith(("lm.", "policy.")):
                serve += ["--set", s]
        url = f"{scheme}://127.0.0.1:{port}"
        server = subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_healthy(url, server, verify=cert if args.tls else True)
            remote = run(name, out / name / "http", args.set, ["--model-url", url, *extra], env)
        finally:
            server.terminate()
            server.wait(timeout=30)
        rows.append((name, local, remote, out / name))
    print(f"\n{'strategy':16} {'in-process s':>12} {scheme + ' s':>10} {'ratio':>6}  agree  {'emulator':>12} "
          f"{'in-proc MB/s':>12} {scheme + ' MB/s':>10}  peak RSS MB: in-proc | data + service")
    for name, local, remote, d in rows:
        lw, rw = local["objectives"]["compute"]["wall_seconds"], remote["objectives"]["compute"]["wall_seconds"]
        same = all(local["objectives"][k] == remote["objectives"][k] for k in ("utility", "communication"))
        same = same and remote["transport"]["ledgers_agree"] and local["transport"]["ledgers_agree"]
        rates = [transfer_rate(d / "in-process"), transfer_rate(d / "http")]
        size = f"{rates[0][0] / 1e6:,.0f} MB" if rates[0] else "-"
        mbs = [f"{b / 1e6 / s:,.0f}" if (b and s > 0) else "-" for b, s in (r or (0, 0) for r in rates)]
        rc, lc = remote["objectives"]["compute"], local["objectives"]["compute"]
        print(f"{name:16} {lw:12.1f} {rw:10.1f} {rw / lw:6.2f}  {'yes' if same else 'NO':5}  {size:>12} "
              f"{mbs[0]:>12} {mbs[1]:>10}  {lc['peak_rss_mb']:,.0f} | {rc['peak_rss_mb']:,.0f} + "
              f"{rc['model_peak_rss_mb']:,.0f}")
        for label, (b, s) in (("in-process", rates[0] or (0, 0)), (scheme, rates[1] or (0, 0))):
            if b:
                print(f"    {label}: emulator {b:,} bytes in {s:.2f} s (encode done -> decoded at the data party)")


if __name__ == "__main__":
    main()
