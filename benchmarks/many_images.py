"""restore-images on many small images: is the job's memory flat in the number of images?

    python benchmarks/many_images.py --counts 1000 10000 [--size 32]

For each count, that many small PNGs (crops of the CBSD68 photos, cycled with a shift so no two
are equal) are written to a scratch folder, and `restoray run` restores them (denoise 25/255,
diffpir at 1 NFE with the embedded prior, 2 actors: the per-image model cost is small, so the
pipeline's own per-row memory is what grows, if anything). While it runs this script samples,
every 0.5 s, the driver's RSS and the summed PSS of the whole process tree (driver, raylet,
object store, workers; benchmarks/video_scale.tree_rss). Reported: peaks and the tree's PSS at
the end of the run, per count. Flat means the 10,000-image peaks are within ~10% of the 1,000's.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from video_scale import tree_rss  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CBSD68 = REPO.parent / "shared" / "data" / "eval" / "CBSD68"


def make_images(folder: Path, count: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(CBSD68.glob("*.png"))]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img = photos[i % len(photos)]
        k = i // len(photos)
        top = (k * 7) % (img.shape[0] - size)
        left = (k * 13) % (img.shape[1] - size)
        Image.fromarray(img[top:top + size, left:left + size]).save(folder / f"img_{i:06d}.png")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run(count: int, size: int) -> dict:
    import yaml

    with tempfile.TemporaryDirectory(dir=REPO / "runs") as tmp:
        tmp = Path(tmp)
        make_images(tmp / "in", count, size)
        cfg = {"job": "restore-images", "input": str(tmp / "in"), "output": str(tmp / "out"), "synthesize": True,
               "degradation": {"name": "denoise", "noise_sigma": 25 / 255}, "solver": {"name": "diffpir", "nfe": 1},
               "prior": {"name": "embedded"}, "comparisons": 0, "ray": {"actors": 2, "batch_size": 16},
               "mlflow": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db"}}
        (tmp / "job.yaml").write_text(yaml.safe_dump(cfg))
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(tmp / "job.yaml")], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        driver = tree = last = 0
        while proc.poll() is None:
            try:
                d, t = rss_kb(proc.pid) * 1024, tree_rss(proc.pid)
            except (FileNotFoundError, ProcessLookupError):
                break
            driver, tree, last = max(driver, d), max(tree, t), t or last
            time.sleep(0.5)
        err = proc.stderr.read()
        if proc.wait():
            raise RuntimeError(f"job failed ({proc.returncode}): {err[-2000:]}")
        return {"count": count, "driver_mb": driver / 2**20, "tree_mb": tree / 2**20, "end_mb": last / 2**20,
                "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--size", type=int, default=32)
    args = ap.parse_args()
    print("| images | size | driver peak RSS (MB) | job tree peak PSS (MB) | tree PSS at the end (MB) | wall (s) |")
    print("|---:|---|---:|---:|---:|---:|")
    for n in args.counts:
        r = run(n, args.size)
        print(f"| {n} | {args.size}x{args.size} | {r['driver_mb']:.0f} | {r['tree_mb']:.0f} | {r['end_mb']:.0f} | "
              f"{r['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
