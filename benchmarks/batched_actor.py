"""RestoreActor throughput with B rows per solve (ray.solve_batch) versus one row per solve.

Calls the actor directly on numpy batches (no Ray): N centre crops of CBSD68, denoising at
sigma 25/255 (the noisy image synthesised once, seeded per image), LATINO langevin at a few
NFE, embedded pixel prior. For each B the actor gets the rows B at a time with
``solve_batch = B``; one untimed call first (warm-up). Prints images/s, the mean PSNR and the
largest pixel difference from the first B's outputs (batching must not change results).

    python benchmarks/batched_actor.py --n 32 --size 128 --batches 1 4 16 --nfe 4 --threads 1
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "eval" / "CBSD68"


def make_rows(n: int, size: int, sigma: float, seed: int) -> tuple[list[dict], list[np.ndarray]]:
    """(actor input rows with a noisy ``lq``, the clean crops), one per CBSD68 image."""
    from PIL import Image

    from actors.columns import no_error, pack
    from actors.runtime import hwc_to_nchw
    from operators.degradations import build_degradation
    from operators.seeding import make_generator

    files = sorted(DATA.glob("*.png"))
    if not files:
        raise SystemExit(f"no images under {DATA} (../shared/data beside the repo)")
    spec = {"name": "denoise", "noise_sigma": sigma}
    op = build_degradation(spec)
    rows, clean = [], []
    for i in range(n):
        img = np.asarray(Image.open(files[i % len(files)]).convert("RGB"), dtype=np.float32) / 255
        top, left = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2 + (i // len(files)) * 7
        hq = np.ascontiguousarray(img[top:top + size, left:left + size])
        y = op.measure(hwc_to_nchw(hq), make_generator(seed, f"im{i}", "degrade"))
        lq = y[0].permute(1, 2, 0).numpy()
        rows.append({"id": f"im{i}", "lq": pack(lq), "degradation": json.dumps(spec), **no_error()})
        clean.append(hq)
    return rows, clean


def run(rows: list[dict], b: int, solver: dict, device: str, threads: int,
        seed: int) -> tuple[float, float, list[dict]]:
    """(wall seconds, process CPU seconds for all rows, B per call after one warm-up call;
    the output rows). On a shared machine the CPU seconds of a one-thread run are the steadier
    measure: wall time also counts waiting for a core."""
    from actors.columns import batch_to_rows, rows_to_batch
    from actors.restore import RestoreActor

    actor = RestoreActor(solver, {"name": "embedded"}, seed, device, threads, solve_batch=b)
    actor(rows_to_batch(rows[:b]))  # warm-up: first-call allocations
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    out, t0, c0 = [], time.perf_counter(), time.process_time()
    for k in range(0, len(rows), b):
        out += batch_to_rows(actor(rows_to_batch(rows[k:k + b])))
    return time.perf_counter() - t0, time.process_time() - c0, out


def main() -> None:
    from actors.columns import unpack
    from operators.metrics.quality import quality

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--nfe", type=int, default=4)
    ap.add_argument("--sigma", type=float, default=25 / 255)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows, clean = make_rows(args.n, args.size, args.sigma, args.seed)
    solver = {"name": "langevin", "nfe": args.nfe}
    print(f"{args.n} CBSD68 crops {args.size}x{args.size}, denoise sigma {args.sigma * 255:.0f}/255, "
          f"langevin {args.nfe} NFE, embedded prior, {args.device}, {args.threads} torch thread(s)")
    print("| rows per solve (B) | wall s | images/s (wall) | CPU s | images per CPU s | speed-up (CPU) "
          "| mean PSNR (dB) | max diff vs B = 1 |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = None
    for b in args.batches:
        wall, cpu, out = run(rows, b, solver, args.device, args.threads, args.seed)
        errors = [r["error_message"] for r in out if r["error_stage"]]
        if errors:
            raise SystemExit(f"B={b}: {len(errors)} error rows, first: {errors[0]}")
        restored = [unpack(r["restored"]).copy() for r in out]  # writable, for the metrics
        psnr = float(np.mean([quality(x, hq)[0] for x, hq in zip(restored, clean)]))
        base = base or (cpu, restored)
        diff = max(float(np.abs(x - y).max()) for x, y in zip(restored, base[1]))
        print(f"| {b} | {wall:.1f} | {args.n / wall:.2f} | {cpu:.1f} | {args.n / cpu:.2f} | {base[0] / cpu:.2f}x "
              f"| {psnr:.2f} | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
