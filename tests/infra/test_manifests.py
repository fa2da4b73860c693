"""infra/: the manifests parse and name what a cluster run needs."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from pipelines.cli import build_parser

INFRA = Path(__file__).resolve().parents[2] / "infra"


def test_rayjob_runs_restoray_with_gpu_actors():
    job = yaml.safe_load((INFRA / "rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[0] == "restoray"
    args = build_parser().parse_args(argv[1:])  # the entrypoint is a valid restoray command line
    assert args.command == "run" and "ray.num_gpus=1" in args.overrides
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == "2.60.0"
    workers = cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert workers["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert workers["image"].startswith("restoray:")
    assert "secretRef" in str(workers["envFrom"])  # credentials from a secret, not the config


def test_cluster_launcher_yaml():
    cfg = yaml.safe_load((INFRA / "cluster.yaml").read_text())
    assert cfg["head_node_type"] in cfg["available_node_types"]
    assert cfg["docker"]["image"].startswith("restoray:")
    assert any("ray start --head" in c for c in cfg["head_start_ray_commands"])
    assert cfg["max_workers"] >= max(t.get("max_workers", 0) for t in cfg["available_node_types"].values())


def test_dockerfile_has_cpu_and_cuda_targets():
    text = (INFRA / "Dockerfile").read_text()
    targets = re.findall(r"^FROM \S+ AS (\w+)", text, flags=re.M)
    assert targets == ["cpu", "cuda"]
    assert "torch==2.13.0" in text and "torchvision" not in text
    assert 'ENTRYPOINT ["restoray"]' in text
