"""Python SDK benchmark: the same training loop against wanllmdb, W&B (offline) and MLflow
(local file store), side by side. Prints a Markdown table of

- import time (median of 5 fresh interpreters),
- the mean cost of one log() call with a dict of 10 floats, measured around each call,
- end-to-end points/s: from init() to the end of finish(), when everything is stored
  (wanllmdb: on the server, checked by reading the history back).

Usage (from the repository root; wandb and mlflow live in a venv of their own, never in
the SDK's dependencies):

    python3 -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install ./python wandb mlflow-skinny
    cargo build --release -p wanllmdb
    /tmp/bench-venv/bin/python bench/python_sdk.py --steps 20000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LOOP = r'''
import json, os, sys, time
backend, steps, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = [{f"metric_{k}": (i * keys + k) * 1e-3 for k in range(keys)} for i in range(256)]
clock = time.perf_counter_ns
t0 = time.perf_counter()
if backend == "wanllmdb":
    import wanllmdb as wandb
    run = wandb.init(project="bench", console="off", system_metrics=False)
    log = wandb.log
elif backend == "wandb":
    import wandb
    run = wandb.init(project="bench", mode="offline", settings=wandb.Settings(console="off", x_disable_stats=True))
    log = wandb.log
else:
    import mlflow
    mlflow.set_tracking_uri("file://" + os.path.abspath("mlruns"))
    mlflow.set_experiment("bench")
    run = mlflow.start_run()
    def log(d, i=[0]):
        mlflow.log_metrics(d, step=i[0])
        i[0] += 1
spent = 0
for i in range(steps):
    d = rows[i & 255]
    a = clock()
    log(d)
    spent += clock() - a
if backend == "mlflow":
    mlflow.end_run()
else:
    wandb.finish()
total = time.perf_counter() - t0
out = {"log_us": spent / steps / 1000, "total_s": total, "run": getattr(run, "id", None) or getattr(getattr(run, "info", None), "run_id", None)}
print("RESULT " + json.dumps(out))
'''


def import_ms(python: str, module: str, env: dict[str, str]) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1000)"
    times = []
    for _ in range(5):
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def start_server(binary: str, data: Path) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen([binary, "server", "--bind", "127.0.0.1:0", "--data-dir", str(data)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "listening on " in line:
            url = line.split("listening on ", 1)[1].split()[0]
            break
    else:
        raise SystemExit("the server did not start")
    return proc, url, (data / "admin-api-key").read_text().strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--keys", type=int, default=10)
    ap.add_argument("--backends", default="wanllmdb,wandb,mlflow")
    ap.add_argument("--binary", default=None, help="wanllmdb binary (default: target/release, else target/debug)")
    args = ap.parse_args()
    binary = args.binary or next(
        (str(p) for p in (REPO / "target/release/wanllmdb", REPO / "target/debug/wanllmdb") if p.exists()), "wanllmdb")
    work = Path(tempfile.mkdtemp(prefix="sdk-bench-"))
    server, url, key = start_server(binary, work / "data")
    env = dict(os.environ, WANLLMDB_BASE_URL=url, WANLLMDB_API_KEY=key, WANLLMDB_DIR=str(work / "spool"),
               WANLLMDB_CONFIG_DIR=str(work / "cfg"), WANDB_DIR=str(work), WANDB_SILENT="true",
               WANDB_MODE="offline", MLFLOW_ALLOW_FILE_STORE="true", PYTHONPATH=str(REPO / "python"))
    rows = []
    try:
        for backend in args.backends.split(","):
            module = {"wanllmdb": "wanllmdb", "wandb": "wandb", "mlflow": "mlflow"}[backend]
            imp = import_ms(sys.executable, module, env)
            out = subprocess.run([sys.executable, "-c", LOOP, backend, str(args.steps), str(args.keys)],
                                 capture_output=True, text=True, env=env, cwd=work, timeout=3600)
            line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                raise SystemExit(f"{backend} failed:\n{out.stderr[-3000:]}")
            r = json.loads(line[7:])
            if backend == "wanllmdb":
                import urllib.request

                req = urllib.request.Request(f"{url}/api/v1/runs/{r['run']}/history?keys=metric_0",
                                             headers={"Authorization": f"Bearer {key}"})
                got = json.load(urllib.request.urlopen(req))["series"][0]["total_points"]
                assert got == args.steps, f"the server holds {got} of {args.steps} points"
            points = args.steps * args.keys
            rows.append((backend, imp, r["log_us"], points / r["total_s"]))
    finally:
        server.terminate()
    print(f"{args.steps} steps × {args.keys} floats; server {binary}; Python {sys.version.split()[0]}\n")
    print("| SDK | import | log() mean | end-to-end |")
    print("|---|---:|---:|---:|")
    for backend, imp, log_us, pps in rows:
        print(f"| {backend} | {imp:.0f} ms | {log_us:.2f} µs | {pps:,.0f} points/s |")


if __name__ == "__main__":
    main()
