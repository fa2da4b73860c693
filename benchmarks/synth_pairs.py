"""synth-pairs throughput: the job on the first N BSDS400 colour images, pairs per second.

Runs the real job (local Ray, output in a temp dir, MLflow off) and, with ``--loop``, the
same stage in a plain single-process loop for comparison. Ray startup and a 1-pair warm-up
job (which starts the worker processes) are timed apart.
The 1-minute load average is printed before and after (the machine is shared).

    python benchmarks/synth_pairs.py --n 40 --crops 4 --size 256 --loop
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
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "train" / "BSDS400_color"


def job_config(n: int, crops: int, size: int, out: str, batch_size: int):
    from pipelines.config import from_dict
    from pipelines.synth_pairs import SynthPairsConfig

    cfg = from_dict(SynthPairsConfig, {
        "input": str(DATA), "output": out, "crop_size": size, "crops_per_image": crops, "limit_images": n,
        "degradation": {"name": "realesrgan", "scale": 4}, "seed": 0,
        "ray": {"num_cpus": os.cpu_count(), "batch_size": batch_size}, "mlflow": {"enabled": False}})
    cfg.validate()
    return cfg


def bare_loop(cfg) -> tuple[int, float]:
    """The job's stage over the same files in one process; returns (pairs, seconds)."""
    import numpy as np
    import torch

    from pipelines.config import config_hash
    from pipelines.stages.crop_degrade import CropDegradeStage
    from pipelines.synth_pairs import HASH_EXCLUDE, plan_files

    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    rows, _ = plan_files(cfg, config_hash(cfg, HASH_EXCLUDE))
    stage = CropDegradeStage(cfg.specs, cfg.crop_size, cfg.seed, cfg.storage, cfg.max_pixels)
    pairs = 0
    for r in rows:
        batch = stage({k: np.array([v]) for k, v in r.items()})
        pairs += int(sum(1 for e in batch["error_stage"] if not e))
    return pairs, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=40, help="first N images of BSDS400_color")
    ap.add_argument("--crops", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=2, help="files per map_batches call")
    ap.add_argument("--loop", action="store_true", help="also time the plain single-process loop")
    ap.add_argument("--no-warmup", action="store_true",
                    help="skip the 1-pair warm-up job (it starts Ray and its worker processes)")
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"data not found: {DATA}")
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min), cpus: {os.cpu_count()}")
    tmp = tempfile.mkdtemp(prefix="bench-synth-")
    try:
        from pipelines.synth_pairs import run

        if not args.no_warmup:
            warm = run(job_config(1, 1, args.size, os.path.join(tmp, "warmup"), 1))
            print(f"warm-up: Ray startup {warm.ray_startup_s:.1f} s, 1-pair job {warm.seconds - warm.ray_startup_s:.1f} s")
        summary = run(job_config(args.n, args.crops, args.size, os.path.join(tmp, "job"), args.batch_size))
        work = summary.seconds - summary.ray_startup_s
        print(f"job:  {summary.done} pairs, {summary.errors} errors in {work:.1f} s "
              f"-> {summary.pairs_per_s:.2f} pairs/s (Ray startup {summary.ray_startup_s:.1f} s apart)")
        if args.loop:
            pairs, secs = bare_loop(job_config(args.n, args.crops, args.size, os.path.join(tmp, "loop"), 1))
            print(f"loop: {pairs} pairs in {secs:.1f} s -> {pairs / secs:.2f} pairs/s "
                  f"(job/loop = {summary.pairs_per_s / (pairs / secs):.2f}x)")
        print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
