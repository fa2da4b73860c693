"""Every stage of a job keeps a CPU share on a 2-CPU node, so the results tables are written as
rows finish. Ray Data reserves each stage's minimum (one task's CPUs; an actor pool's actors x
their CPUs) upstream first; a stage whose minimum no longer fits waits until the stages before
it have finished. With 1 CPU per load task and 2 actors x 0.5, the loads and the model took
both CPUs, and a long evaluate wrote no row for hours (a killed run lost them all)."""
from __future__ import annotations

import pytest
import ray

from pipelines.config import from_dict
from pipelines.job import Plan
from pipelines.stages.write_rows import WRITE_CPUS

NODE_CPUS = 2  # this project's machines and CI


def _minimum_cpus(ds) -> dict[str, float]:
    """{stage: the CPUs Ray Data must reserve for it to run at all}, from the logical plan."""
    out, op = {}, ds._logical_plan.dag
    while op.input_dependencies:
        cpus = op.ray_remote_args.get("num_cpus", 1)
        pool = op.compute.min_size if isinstance(op.compute, ray.data.ActorPoolStrategy) else 1
        out[op.name] = cpus * pool
        op = op.input_dependencies[0]
    return out


def _check(stages: dict[str, float]) -> None:
    total = sum(stages.values()) + WRITE_CPUS  # the write stage follows every job's stages
    assert len(stages) >= 2 and total <= NODE_CPUS, (stages, total)


@pytest.mark.usefixtures("ray_local")
def test_evaluate_stages_and_the_writer_fit_a_two_cpu_node(tmp_path):
    from pipelines.evaluate import EvaluateConfig, EvaluateJob

    cfg = from_dict(EvaluateConfig, {
        "datasets": [{"name": "d", "input": str(tmp_path)}],
        "tasks": [{"name": "denoise", "degradation": {"name": "denoise", "noise_sigma": 0.1}}],
        "methods": [{"name": "tv", "kind": "baseline", "baseline": {"name": "tv"}}], "output": str(tmp_path / "o")})
    ds = EvaluateJob(cfg).stages(ray.data.from_items([{"id": "a"}]), "h", Plan([]))
    _check(_minimum_cpus(ds))


@pytest.mark.usefixtures("ray_local")
def test_restore_images_stages_and_the_writer_fit_a_two_cpu_node(tmp_path):
    from pipelines.restore_images import RestoreImagesConfig, RestoreImagesJob

    cfg = from_dict(RestoreImagesConfig, {"input": str(tmp_path), "output": str(tmp_path / "o")})
    ds = RestoreImagesJob(cfg).stages(ray.data.from_items([{"id": "a"}]), "h", Plan([]))
    stages = _minimum_cpus(ds)
    assert len(stages) == 3  # load, restore actors, finish
    _check(stages)
