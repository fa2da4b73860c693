"""restore-images submitted as a Ray job to a separately started cluster, as a cluster user
would run it: `ray start --head`, then `ray job submit -- restoray run ...`; the results are
read back from the output's Parquet table.

The head runs in its own process session and temp dir on free loopback ports; teardown ends
exactly the processes it started (never `ray stop`, which stops every Ray on the machine).
"""
from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pipelines.stages.finish import output_name
from pipelines.tables import image_id, read_table

BIN = Path(sys.executable).parent
PORTS = ("port", "dashboard-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
         "runtime-env-agent-port", "metrics-export-port", "node-manager-port", "object-manager-port",
         "ray-client-server-port")


def _free_ports(n: int) -> list[int]:
    """n distinct loopback ports free now (all held open together, so they differ)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _ours(temp: str) -> list:
    """Processes of the head started on ``temp``: all inherit RAY_TMPDIR=temp (unique), even
    those reparented when their parent died (other users' processes are unreadable: skipped)."""
    import psutil  # Ray's vendored copy, importable once ray is

    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("RAY_TMPDIR") == temp:
                found.append(p)
        except psutil.Error:
            pass
    return found


def _end_cluster(head: subprocess.Popen, temp: str) -> None:
    """SIGTERM the head and each process of its cluster (by pid), SIGKILL what is left after
    3 s (a graceful Ray shutdown takes ~15 s on a loaded machine; this cluster is disposable)."""
    import psutil

    for _ in range(2):  # a second pass for any worker started while the first ended the rest
        procs = _ours(temp)
        for p in procs:
            try:
                p.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(procs, timeout=3)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=5)
    head.wait(timeout=10)


def _wait_http(urls: list[str], head: subprocess.Popen, log: Path, timeout_s: float = 180) -> None:
    """Until each URL answers 200 (the head still running), else fail with the head's log."""
    deadline = time.monotonic() + timeout_s
    for u in urls:
        while True:
            assert head.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{u} did not answer in {timeout_s:g} s"
            try:
                with urllib.request.urlopen(u, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(1)


@pytest.fixture
def ray_head():
    """A head node started with the `ray` CLI (dashboard on, so it takes job submissions);
    yields (dashboard URL, GCS port, environment a cluster user's shell would have)."""
    import ray  # noqa: F401  (puts Ray's vendored psutil on the path for _ours)

    try:
        import ray.dashboard.optional_deps  # noqa: F401
    except ImportError as e:
        pytest.fail(f"the job server needs ray[default] (a dependency of restoray: pip install -e .): {e}")

    temp = tempfile.mkdtemp(prefix="rj", dir="/tmp")  # short: socket paths must stay < 108 bytes
    ports = dict(zip(PORTS, _free_ports(len(PORTS))))
    env = {**os.environ, "RAY_TMPDIR": temp, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    cmd = [str(BIN / "ray"), "start", "--head", "--block", f"--temp-dir={temp}", "--num-cpus=2",
           f"--object-store-memory={256 * 1024 * 1024}", "--include-dashboard=true",
           "--dashboard-host=127.0.0.1", "--disable-usage-stats",
           *(f"--{name}={port}" for name, port in ports.items())]
    log = open(Path(temp) / "head.log", "w")
    head = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{ports['dashboard-port']}"
    try:
        # the job server takes submissions once the head's dashboard agent answers too
        agent = f"http://127.0.0.1:{ports['dashboard-agent-listen-port']}/api/healthz"
        _wait_http([f"{url}/api/version", agent], head, Path(temp) / "head.log")
        yield url, ports["port"], env
    finally:
        _end_cluster(head, temp)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _inputs(root: Path) -> list[str]:
    """Three 64x64 crops of scikit-image's bundled photographs."""
    from skimage import data

    root.mkdir(parents=True)
    names = []
    for name in ("astronaut", "chelsea", "coffee"):
        img = getattr(data, name)()
        h, w = img.shape[:2]
        Image.fromarray(np.ascontiguousarray(img[h // 2 - 32:h // 2 + 32, w // 2 - 32:w // 2 + 32])).save(
            root / f"{name}.png")
        names.append(f"{name}.png")
    return names


def test_job_submitted_to_started_cluster(ray_head, tmp_path):
    url, gcs_port, env = ray_head
    names = _inputs(tmp_path / "in")
    out = tmp_path / "out"
    cfg = {
        "job": "restore-images", "input": str(tmp_path / "in"), "output": str(out), "seed": 1,
        "degradation": {"name": "sr", "scale": 2, "noise_sigma": 0.02},
        "solver": {"name": "diffpir", "nfe": 2}, "prior": {"name": "gaussian", "s2": 0.05, "mean": 0.5},
        "ray": {"actors": 1, "batch_size": 2, "num_cpus_per_actor": 0.5},
        "mlflow": {"enabled": False},
    }
    cfg_path = tmp_path / "job.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))

    submit = subprocess.run(
        ["ray", "job", "submit", f"--address={url}", "--log-style=record", "--",
         "restoray", "run", str(cfg_path), "--set", "ray.address=auto"],
        env=env, capture_output=True, text=True, timeout=300)
    logs = submit.stdout + submit.stderr
    assert submit.returncode == 0, logs[-4000:]
    assert "succeeded" in logs, logs[-4000:]
    joined = [line for line in logs.splitlines() if "Connecting to existing Ray cluster at address" in line]
    assert joined and f":{gcs_port}" in joined[0], logs[-4000:]  # the job joined this cluster...
    assert "Started a local Ray instance" not in logs  # ...and started no Ray of its own
    assert "restore-images: 3 results, 0 errors" in logs, logs[-4000:]

    results = read_table(str(out), "results").to_pylist()
    assert sorted(r["relative_path"] for r in results) == names
    for r in results:
        assert r["id"] == image_id(r["source_uri"]) and r["source_uri"].endswith(r["relative_path"])
        assert (r["width"], r["height"], r["nfe"], r["seed"]) == (64, 64, 2, 1)
        assert math.isfinite(r["psnr"]) and math.isfinite(r["lq_psnr"]) and 0 < r["ssim"] <= 1
        restored = out / "restored" / output_name(r["relative_path"])
        assert restored.is_file() and Image.open(restored).size == (64, 64)
    assert read_table(str(out), "errors") is None
