"""Under `wanllmdb run` the SDK attaches to the wrapper's run: metrics through its file,
config from WANLLMDB_RUN_CONFIG, nothing twice. System metrics and credentials from the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time

import pytest
from conftest import binary, child_env, cli, history, wait_for

import wanllmdb as wandb
from wanllmdb import _settings

WRAPPED = textwrap.dedent("""
    import os, sys
    import wanllmdb as wandb
    run = wandb.init(project="ignored-under-the-wrapper", config={"batch": 32, "lr": 1.0})
    assert run.id == os.environ["WANLLMDB_RUN_ID"], run.id
    print("config", dict(sorted(wandb.config.items())), flush=True)
    for i in range(50):
        wandb.log({"loss": 1.0 / (i + 1), "step": i * 10})
    wandb.log_message("from the sdk")
    print("printed once", flush=True)
    wandb.finish()
""")


def test_wanllmdb_run_records_everything_exactly_once(env, api, tmp_path):
    (tmp_path / "train.py").write_text(WRAPPED)
    out = cli(
        env,
        "run",
        "--project",
        "sdk-wrapped",
        "--id",
        "wrapped1",
        "--config",
        "lr=0.01",
        "--",
        "python3",
        "train.py",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    # The wrapper's --config wins over the script's defaults, which join the config.
    assert "config {'batch': 32, 'lr': 0.01}" in out.stdout
    got = api.get("/runs/wrapped1")
    assert got["state"] == "finished" and got["project"] == "sdk-wrapped"
    assert got["config"] == {"lr": 0.01, "batch": 32}
    h = history(api, "wrapped1")
    assert h["loss"] == {i: 1.0 / (i + 1) for i in range(50)}
    # A metric named "step" is a metric: the SDK writes `_step`.
    assert h["step"] == {i: i * 10 for i in range(50)}
    lines = [ln["message"] for ln in api.get("/runs/wrapped1/logs")["items"]]
    assert lines.count("printed once") == 1 and lines.count("from the sdk") == 1
    # The wrapper owns the spool: the SDK made none of its own.
    assert os.listdir(tmp_path / "spool" / "runs") == ["wrapped1"]


KILLED = textwrap.dedent("""
    import os, time
    import wanllmdb as wandb
    wandb.init()
    for i in range(300):
        wandb.log({"i": i})
    open("pid", "w").write(str(os.getpid()))
    time.sleep(600)
""")


def test_kill_9_of_a_wrapped_training_process_loses_nothing(env, api, tmp_path):
    (tmp_path / "train.py").write_text(KILLED)
    proc = subprocess.Popen(
        [
            binary(),
            "run",
            "--project",
            "sdk-wrapped",
            "--id",
            "wrapkill",
            "--",
            "python3",
            "train.py",
        ],
        cwd=tmp_path,
        env=child_env(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = tmp_path / "spool" / "runs" / "wrapkill" / "metrics.jsonl"
    wait_for(
        lambda: (tmp_path / "pid").exists() and len(metrics.read_text().splitlines()) == 300,
        what="the metrics file",
    )
    os.kill(int((tmp_path / "pid").read_text()), signal.SIGKILL)
    assert proc.wait(60) == 128 + signal.SIGKILL
    assert api.get("/runs/wrapkill")["state"] == "killed"
    assert history(api, "wrapkill")["i"] == {i: i for i in range(300)}


def _fake_nvidia_smi(tmp_path):
    d = tmp_path / "fakebin"
    d.mkdir()
    smi = d / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho '0, 87, 2048, 8192, 66'\n")
    smi.chmod(0o755)
    return str(d) + os.pathsep + os.environ.get("PATH", "")


def test_system_metrics_of_the_sdk_include_gpus(env, api, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path))
    monkeypatch.setenv("WANLLMDB_SYSTEM_METRICS_INTERVAL", "0.2")
    run = wandb.init(project="sdk-system", console="off")
    wandb.log({"x": 1})
    samples = tmp_path / "spool" / "runs" / run.id / "system.jsonl"
    wait_for(
        lambda: samples.exists() and len(samples.read_text().splitlines()) >= 2, what="two samples"
    )
    wandb.finish()
    h = history(api, run.id)
    assert set(h["system/gpu/0/utilization_percent"].values()) == {87.0}
    assert set(h["system/gpu/0/memory_percent"].values()) == {25.0}
    assert set(h["system/gpu/0/temperature_c"].values()) == {66.0}
    assert "system/cpu_percent" in h and "system/rss_mb" in h and "system/host_memory_percent" in h
    # Steps are the Unix seconds of the samples.
    assert abs(max(h["system/rss_mb"]) - time.time()) < 120
    monkeypatch.setenv("WANLLMDB_NO_SYSTEM_METRICS", "1")
    run2 = wandb.init(project="sdk-system", console="off")
    wandb.log({"x": 1})
    wandb.finish()
    assert set(history(api, run2.id)) == {"x"}


def test_credentials_come_from_the_cli_login(env, server, monkeypatch, tmp_path):
    monkeypatch.delenv("WANLLMDB_API_KEY")
    out = cli(
        env | {"WANLLMDB_API_KEY": ""}, "login", "--host", server.url, "--api-key", server.admin_key
    )
    assert out.returncode == 0, out.stderr
    s = _settings.resolve()
    assert s.api_key == server.admin_key and s.host == server.url
    assert wandb.login(), "wandb.login() without a key checks the stored one"
    run = wandb.init(project="sdk-login", console="off", system_metrics=False)
    wandb.finish()
    assert server.api().get(f"/runs/{run.id}")["created_by"] == "admin"


def test_a_key_in_the_keyring_is_asked_of_the_binary(env, server, monkeypatch, tmp_path):
    monkeypatch.delenv("WANLLMDB_API_KEY")
    cfg = tmp_path / "config"
    cfg.mkdir()
    (cfg / "config.toml").write_text(
        f'host = "{server.url}"\n\n[hosts."{server.url}"]\nusername = "admin"\nkeyring = true\n'
    )
    fake = tmp_path / "fake-wanllmdb"
    fake.write_text(
        f'#!/bin/sh\n[ "$1 $2 $3 $4" = "auth token --host {server.url}" ] && echo {server.admin_key}\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("WANLLMDB_BIN", str(fake))
    assert _settings.resolve().api_key == server.admin_key


def test_login_stores_a_key_the_cli_reads(env, server, monkeypatch):
    monkeypatch.delenv("WANLLMDB_API_KEY")
    with pytest.raises(wandb.UsageError, match="wanllmdb login"):
        wandb.login(host=server.url)
    with pytest.raises(wandb.AuthenticationError):
        wandb.login(key="wlk_wrong", host=server.url)
    assert wandb.login(key=server.admin_key, host=server.url)
    creds = _settings.config_dir() / "credentials.toml"
    assert oct(creds.stat().st_mode & 0o777) == "0o600"
    out = cli(env | {"WANLLMDB_API_KEY": ""}, "auth", "token", "--host", server.url)
    assert out.returncode == 0 and out.stdout.strip() == server.admin_key
    who = cli(env | {"WANLLMDB_API_KEY": ""}, "whoami", "--json")
    assert who.returncode == 0, who.stderr
