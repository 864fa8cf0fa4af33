"""MLflow client benchmark: the same MLflow client calls against a do-nothing HTTP server (the
ceiling the client itself allows), a real ``mlflow server`` with a SQLite store, and
``wanllmdb server`` speaking the MLflow API. Prints one Markdown table of

- ingest: points/s of N x ``MlflowClient().log_batch(run_id, metrics=[1000 Metric])``
  (10 keys x 100 steps a batch), timed in one client process, each batch answered before
  the next is sent; afterwards the stored history is counted, so nothing is lost silently;
- history: seconds of ``MlflowClient().get_metric_history`` for one key of 100,000 points
  (median of 3), checked to return every point. The do-nothing server answers it with a
  history prepared beforehand: what the client spends reading 100,000 points, whatever the
  server. The same history fetched over plain HTTP, every page but no parsing beyond the
  page token, shows the server's own part.

Usage (from the repository root; the MLflow client and server live in a venv of their own):

    python3 -m venv /tmp/mlflow-venv
    /tmp/mlflow-venv/bin/pip install mlflow==3.17.2
    cargo build --release -p wanllmdb
    python3 bench/mlflow_bench.py --wanllmdb target/release/wanllmdb \\
        --python /tmp/mlflow-venv/bin/python --batches 200
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Runs in the MLflow venv, one process per target: argv = what, batches, points.
CLIENT = r'''
import json, os, statistics, sys, time
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

what, batches, points = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = MlflowClient()
null = os.environ.get("BENCH_NULL") == "1"
out = {}

def new_run(name):
    if null:
        return "0123abcd"
    experiment_id = client.create_experiment(f"{name} {time.time_ns()}")
    return client.create_run(experiment_id).info.run_id

def batch(b, keys=10, steps=100):
    now = int(time.time() * 1000)
    return [Metric(f"metric_{k}", float(b * steps + s + k), now, b * steps + s)
            for s in range(steps) for k in range(keys)]

if what in ("ingest", "both"):
    run_id = new_run("ingest")
    prepared = [batch(b) for b in range(batches)]
    client.log_batch(run_id, metrics=batch(batches))  # warm the connection and the run
    t = time.perf_counter()
    for metrics in prepared:
        client.log_batch(run_id, metrics=metrics)
    out["ingest_s"] = time.perf_counter() - t
    out["ingest_points"] = batches * 1000
    if not null:
        out["ingest_stored"] = len(client.get_metric_history(run_id, "metric_0"))
        out["ingest_expected"] = (batches + 1) * 100

def raw_history(run_id):
    """Seconds to fetch every page of the history's JSON, not parsed by the client."""
    import urllib.parse, urllib.request
    headers = {}
    if os.environ.get("MLFLOW_TRACKING_TOKEN"):
        headers["Authorization"] = "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"]
    token, t = None, time.perf_counter()
    while True:
        q = {"run_id": run_id, "metric_key": "h", "max_results": 25000}
        if token:
            q["page_token"] = token
        url = os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/metrics/get-history?"
        body = urllib.request.urlopen(urllib.request.Request(
            url + urllib.parse.urlencode(q), headers=headers)).read()
        token = json.loads(body).get("next_page_token") if b"next_page_token" in body else None
        if not token:
            return time.perf_counter() - t

if what in ("history", "both"):
    run_id = new_run("history")
    now = int(time.time() * 1000)
    for start in range(0, points if not null else 0, 1000):
        client.log_batch(run_id, metrics=[Metric("h", i * 1e-3, now + i, i)
                                          for i in range(start, min(start + 1000, points))])
    times = []
    for _ in range(3):
        t = time.perf_counter()
        got = client.get_metric_history(run_id, "h")
        times.append(time.perf_counter() - t)
        assert len(got) == points, f"get_metric_history returned {len(got)} of {points} points"
    out["history_s"] = statistics.median(times)
    out["history_http_s"] = statistics.median(raw_history(run_id) for _ in range(3))
print("RESULT " + json.dumps(out))
'''


class DoNothing(BaseHTTPRequestHandler):
    """Answers every request 200 ``{}`` at once, after reading its body; a metric history
    request gets a history prepared beforehand, so the client's own cost of reading one is
    measured too."""

    protocol_version = "HTTP/1.1"
    # One write per answer, sent at once: otherwise Nagle's algorithm and the client's delayed
    # ACK add tens of milliseconds to every call, and the ceiling would be the network's.
    disable_nagle_algorithm = True
    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    history = b""

    def _answer(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        if self.path.startswith("/api/2.0/mlflow/metrics/get-history"):
            self.wfile.write(self.history)
        else:
            self.wfile.write(self.ANSWER)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


def start_do_nothing(points: int) -> tuple[ThreadingHTTPServer, str]:
    now = int(time.time() * 1000)
    body = json.dumps({"metrics": [{"key": "h", "value": i * 1e-3, "timestamp": now + i, "step": i}
                                   for i in range(points)]}).encode()
    DoNothing.history = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body)) + body
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), DoNothing)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not answer /health within 120 s")


def start_mlflow(python: str, work: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    (work / "mlflow-artifacts").mkdir()
    proc = subprocess.Popen(
        [str(Path(python).parent / "mlflow"), "server",
         "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
         "--artifacts-destination", str(work / "mlflow-artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(work / "mlflow-server.log", "wb"))  # noqa: SIM115
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, "mlflow server")
    return proc, url


def start_wanllmdb(binary: str, data: Path) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen([binary, "server", "--bind", "127.0.0.1:0", "--data-dir", str(data)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "listening on " in line:
            url = line.split("listening on ", 1)[1].split()[0]
            break
    else:
        raise SystemExit("wanllmdb server did not start")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
    return proc, url, (data / "admin-api-key").read_text().strip()


def measure(python: str, url: str, what: str, args: argparse.Namespace,
            token: str | None = None, null: bool = False) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=url, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
               MLFLOW_HTTP_REQUEST_TIMEOUT="600")
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    if null:
        env["BENCH_NULL"] = "1"
    out = subprocess.run([python, "-c", CLIENT, what, str(args.batches), str(args.history_points)],
                         capture_output=True, text=True, env=env, timeout=3600)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "no result")
    r = json.loads(line[7:])
    if "ingest_stored" in r and r["ingest_stored"] != r["ingest_expected"]:
        raise RuntimeError(f"stored {r['ingest_stored']} of {r['ingest_expected']} points of metric_0")
    return r


def fmt_rate(r: dict[str, float] | str | None) -> str:
    if isinstance(r, str):
        return r
    if not r or "ingest_s" not in r:
        return "—"
    return f"{r['ingest_points'] / r['ingest_s']:,.0f} points/s"


def fmt_secs(r: dict[str, float] | str | None, field: str = "history_s") -> str:
    if isinstance(r, str):
        return r
    if not r or field not in r:
        return "—"
    return f"{r[field]:.3f} s"


def ratio(a: float | None, b: float | None, target: float, higher: bool = True) -> str:
    if not a or not b:
        return "—"
    x = a / b
    ok = x >= target if higher else x <= target
    return f"{x:.2f}x ({'met' if ok else 'missed'})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wanllmdb", default=None, help="wanllmdb binary (default: target/release)")
    ap.add_argument("--python", default=sys.executable, help="python of a venv with mlflow")
    ap.add_argument("--batches", type=int, default=200, help="log_batch calls of 1000 metrics")
    ap.add_argument("--history-points", type=int, default=100_000)
    ap.add_argument("--mlflow-workers", type=int, default=4, help="mlflow server --workers")
    ap.add_argument("--targets", default="null,mlflow,wanllmdb",
                    help="comma-separated subset of null,mlflow,wanllmdb")
    args = ap.parse_args()
    targets = args.targets.split(",")
    binary = args.wanllmdb or str(REPO / "target/release/wanllmdb")
    work = Path(tempfile.mkdtemp(prefix="mlflow-bench-"))
    results: dict[str, dict[str, float] | str] = {}
    procs: list[subprocess.Popen[bytes] | subprocess.Popen[str]] = []
    try:
        if "null" in targets:
            httpd, url = start_do_nothing(args.history_points)
            results["null"] = measure(args.python, url, "both", args, null=True)
            httpd.shutdown()
        if "mlflow" in targets:
            proc, url = start_mlflow(args.python, work, args.mlflow_workers)
            procs.append(proc)
            try:
                results["mlflow"] = measure(args.python, url, "both", args)
            except RuntimeError as e:
                results["mlflow"] = f"error: {e}"
            proc.terminate()
        if "wanllmdb" in targets:
            wproc, url, key = start_wanllmdb(binary, work / "wanllmdb")
            procs.append(wproc)
            try:
                results["wanllmdb"] = measure(args.python, url, "both", args, token=key)
            except RuntimeError as e:
                results["wanllmdb"] = f"error: {e}"
            wproc.terminate()
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()

    def num(target: str, field: str) -> float | None:
        r = results.get(target)
        if not isinstance(r, dict) or field not in r:
            return None
        return r["ingest_points"] / r["ingest_s"] if field == "ingest_s" else r[field]

    ours_rate, null_rate, ml_rate = num("wanllmdb", "ingest_s"), num("null", "ingest_s"), num("mlflow", "ingest_s")
    ours_hist, ml_hist = num("wanllmdb", "history_s"), num("mlflow", "history_s")
    null_hist = num("null", "history_s")
    ours_http, ml_http = num("wanllmdb", "history_http_s"), num("mlflow", "history_http_s")
    null_http = num("null", "history_http_s")
    version = subprocess.run([args.python, "-c", "import mlflow; print(mlflow.__version__)"],
                             capture_output=True, text=True).stdout.strip()
    print(f"{args.batches} x log_batch(1000 metrics), history of {args.history_points:,} points; "
          f"mlflow {version} (server --workers {args.mlflow_workers}, SQLite); wanllmdb {binary}; "
          f"{os.cpu_count()} CPUs\n")
    print("| figure | target | do-nothing | mlflow server | wanllmdb | ratios |")
    print("|---|---|---:|---:|---:|---|")
    print(f"| log_batch ingest | within 1.2x of do-nothing; >= 2x mlflow server "
          f"| {fmt_rate(results.get('null'))} | {fmt_rate(results.get('mlflow'))} "
          f"| {fmt_rate(results.get('wanllmdb'))} "
          f"| do-nothing/wanllmdb {ratio(null_rate, ours_rate, 1.2, higher=False)}; "
          f"wanllmdb/mlflow {ratio(ours_rate, ml_rate, 2.0)} |")
    print(f"| get_metric_history, {args.history_points:,} points | >= 20x faster than mlflow server "
          f"| {fmt_secs(results.get('null'))} | {fmt_secs(results.get('mlflow'))} "
          f"| {fmt_secs(results.get('wanllmdb'))} "
          f"| mlflow/wanllmdb {ratio(ml_hist, ours_hist, 20.0)}; "
          f"wanllmdb/do-nothing {ratio(ours_hist, null_hist, 1.0, higher=False)} |")
    h = "history_http_s"
    print(f"| the same over plain HTTP, not parsed | >= 20x faster than mlflow server "
          f"| {fmt_secs(results.get('null'), h)} | {fmt_secs(results.get('mlflow'), h)} "
          f"| {fmt_secs(results.get('wanllmdb'), h)} "
          f"| mlflow/wanllmdb {ratio(ml_http, ours_http, 20.0)}; "
          f"wanllmdb/do-nothing {ratio(ours_http, null_http, 1.0, higher=False)} |")


if __name__ == "__main__":
    main()
