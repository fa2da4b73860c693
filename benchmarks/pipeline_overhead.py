"""Pipeline overhead: the restore-images job on Ray Data versus a plain Python loop.

Both restore the same N images with the same degradation, solver, prior and seed; the loop
decodes, degrades, solves, scores and writes PNGs exactly as the job's stages do, in one
process with all torch threads. Ray startup is timed apart from the job.

    python benchmarks/pipeline_overhead.py --n 32 --size 128 --solver diffpir --nfe 10
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "eval" / "CBSD68"


def make_inputs(dest: Path, n: int, size: int) -> None:
    from PIL import Image

    files = sorted(DATA.glob("*.png"))
    dest.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = Image.open(files[i % len(files)]).convert("RGB")
        w, h = img.size
        left, top = (w - size) // 2 + (i // len(files)) * 7, (h - size) // 2
        img.crop((left, top, left + size, top + size)).save(dest / f"im{i:03d}.png")


def bare_loop(cfg) -> float:
    """The same per-row work as the job's stages, in a plain loop; returns seconds."""
    import torch

    from actors.restore import RestoreActor
    from pipelines.config import config_hash
    from pipelines.restore_images import plan_rows
    from pipelines.stages.finish import FinishStage
    from pipelines.stages.load import LoadStage

    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    rows, _ = plan_rows(cfg, config_hash(cfg))
    load = LoadStage(cfg.degradation, cfg.synthesize, cfg.seed, cfg.storage, cfg.max_pixels)
    actor = RestoreActor(cfg.solver, cfg.prior, cfg.seed, "cpu")
    finish = FinishStage(cfg.output, "loop")
    for row in rows:
        out = finish.finish_row(actor.restore_row(load.load_row(row)))
        assert not out["error_stage"], out
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--solver", default="diffpir")
    ap.add_argument("--nfe", type=int, default=10)
    ap.add_argument("--prior", default="embedded")
    ap.add_argument("--actors", type=int, default=2)
    args = ap.parse_args()

    import ray

    from pipelines.config import from_dict
    from pipelines.ray_runtime import init_ray
    from pipelines.restore_images import RestoreImagesConfig, run

    tmp = Path(tempfile.mkdtemp(prefix="rr-bench-"))
    make_inputs(tmp / "in", args.n, args.size)
    base = {"input": str(tmp / "in"), "degradation": {"name": "sr", "scale": 4, "noise_sigma": 0.01},
            "solver": {"name": args.solver, "nfe": args.nfe}, "prior": {"name": args.prior},
            "ray": {"actors": args.actors, "batch_size": 1}, "mlflow": {"enabled": False}, "comparisons": 0}
    loop_cfg = from_dict(RestoreImagesConfig, {**base, "output": str(tmp / "loop")})
    loop_s = bare_loop(loop_cfg)

    job_cfg = from_dict(RestoreImagesConfig, {**base, "output": str(tmp / "job")})
    t0 = time.perf_counter()
    init_ray(job_cfg.ray)
    startup = time.perf_counter() - t0
    t1 = time.perf_counter()
    summary = run(job_cfg)
    job_s = time.perf_counter() - t1
    assert summary.total_results == args.n, summary.table()
    ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"images={args.n} size={args.size} solver={args.solver} nfe={args.nfe} prior={args.prior} "
          f"cpus={os.cpu_count()}")
    print(f"bare loop:   {loop_s:7.1f} s  {args.n / loop_s:6.3f} img/s")
    print(f"ray job:     {job_s:7.1f} s  {args.n / job_s:6.3f} img/s  (+ ray startup {startup:.1f} s)")
    print(f"ratio (job throughput / loop throughput): {loop_s / job_s:.2f}x")


if __name__ == "__main__":
    main()
