"""Workers of a job started by init_ray get the malloc settings that keep long video jobs flat
(pipelines.ray_runtime.MALLOC_ENV); a value the user exported wins. A fresh Ray in a
subprocess: the test session's own Ray is started by the fixture, not by init_ray."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = """
import json, os, ray
from pipelines.ray_runtime import init_ray
from pipelines.sections import RayConfig
init_ray(RayConfig(num_cpus=1, object_store_mb=100))
env = ray.get(ray.remote(lambda: {k: os.environ.get(k) for k in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_")}).remote())
print(json.dumps(env))
"""


def _worker_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=tempfile.mkdtemp(prefix="rw", dir="/tmp"), **extra)  # short: socket paths
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_workers_start_with_bounded_malloc_arenas_and_the_users_values_win():
    assert _worker_env() == {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": None}
    assert _worker_env(MALLOC_ARENA_MAX="4")["MALLOC_ARENA_MAX"] == "4"
