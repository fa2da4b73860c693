"""Peak memory of each restore-images stage on one large image: load, restore, finish.

    python benchmarks/stage_memory.py [--mp 1 12 64] [--stages load restore finish]

Each (stage, size) runs in a fresh subprocess: the stage's inputs are built first (a real
photo, CBSD68 102061, upscaled with Lanczos to the size and saved as PNG; the rows exactly as
the previous stage hands them on), then the kernel's peak-RSS mark is reset
(``/proc/self/clear_refs`` = 5) and the stage is called directly on a one-row batch, as Ray
Data calls it. Reported: RSS before the call (inputs held), the peak during it, and the work
memory (peak - before) per pixel of the image. Restore runs ``diffpir`` at 1 NFE with the
embedded prior, tiled (the NFE count does not change the peak); finish gets the noisy input
as its "restored" column (pixel values do not change its memory). Denoising at sigma 25/255.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "eval" / "CBSD68" / "102061.png"
DEGRADATION = {"name": "denoise", "noise_sigma": 25 / 255}


def status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def make_image(mp: float, folder: Path) -> Path:
    from PIL import Image

    path = folder / f"photo_{mp:g}mp.png"
    if not path.exists():
        src = Image.open(SOURCE).convert("RGB")
        scale = (mp * 1e6 / (src.width * src.height)) ** 0.5
        src.resize((round(src.width * scale), round(src.height * scale)), Image.Resampling.LANCZOS).save(path)
    return path


def run_stage(stage: str, image: str) -> dict:
    """In this process: build the stage's input row, reset the peak mark, call the stage."""
    import numpy as np
    import torch

    from actors.columns import batch_to_rows, rows_to_batch
    from actors.restore import RestoreActor
    from pipelines.stages.finish import FinishStage
    from pipelines.stages.load import LoadStage

    torch.set_num_threads(1)
    out_dir = Path(image).parent / "out"
    row = {"id": "r0", "source_uri": image, "relative_path": Path(image).name}
    load = LoadStage(DEGRADATION, True, 0)
    restore = RestoreActor({"name": "diffpir", "nfe": 1}, {"name": "embedded"}, 0, "cpu", 1)
    finish = FinishStage(str(out_dir), "bench")
    chain = {"load": [], "restore": [load], "finish": [load]}[stage]
    batch = rows_to_batch([row])
    for fn in chain:
        batch = fn(batch)
    if stage == "finish":  # the restored column as the restore stage hands it on; its values do
        # not change the finish stage's memory, so the noisy input stands in (no 64 MP solve)
        rows = batch_to_rows(batch)
        batch = rows_to_batch([{**r, "restored": r["lq"], "std": b"", "seconds": 0.0, "nfe": 0} for r in rows])
    fn = {"load": load, "restore": restore, "finish": finish}[stage]
    pixels = 0
    if stage != "load":
        first = batch_to_rows(batch)[0]
        if first.get("error_stage"):
            raise RuntimeError(first["error_message"])
        pixels = int(first["height"]) * int(first["width"])
    Path("/proc/self/clear_refs").write_text("5")
    before = status_kb("VmRSS")
    res = batch_to_rows(fn(batch))[0]
    if res.get("error_stage"):
        raise RuntimeError(f"{stage}: {res['error_message']}")
    pixels = pixels or int(res["height"]) * int(res["width"])
    peak = status_kb("VmHWM")
    return {"stage": stage, "pixels": pixels, "rss_before_mb": before / 1024, "peak_mb": peak / 1024,
            "work_bytes_per_pixel": (peak - before) * 1024 / pixels, "np": np.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mp", type=float, nargs="+", default=[1, 12, 64])
    ap.add_argument("--stages", nargs="+", default=["load", "restore", "finish"])
    ap.add_argument("--dir", default=str(REPO / "runs" / "stage-memory"))
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_stage(*args.child)))
        return
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    print("| image | stage | RSS before (MB) | peak (MB) | work bytes / pixel |")
    print("|---|---|---:|---:|---:|")
    for mp in args.mp:
        image = make_image(mp, folder)
        for stage in args.stages:
            proc = subprocess.run([sys.executable, __file__, "--child", stage, str(image)], cwd=REPO,
                                  capture_output=True, text=True)
            if proc.returncode:
                print(f"| {mp:g} MP | {stage} | failed: {proc.stderr.strip().splitlines()[-1]} | | |", flush=True)
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"| {r['pixels'] / 1e6:.1f} MP | {stage} | {r['rss_before_mb']:.0f} | {r['peak_mb']:.0f} | "
                  f"{r['work_bytes_per_pixel']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
