"""Video restoration side by side: windowed langevin_video vs the same solver per frame, with and
without the DVDnet expert, DVDnet alone and per-frame CBM3D, on the development clips.

Each method runs through the job's own segment code (actors.video.VideoRestoreActor) on the
first ``--frames`` frames of each clip as one segment, in-process (a bare loop: no Ray), on the
same degraded frames (pipelines.stages.video_load.degrade_frames, seeded as in the job).
Metrics frame by frame (operators.metrics.clip_stats): PSNR, SSIM, flicker (reference-
relative), warp error (flows from the reference; its own floor beside).

  python benchmarks/video_bench.py --clips carphone,pan --frames 24 --tasks denoise25,crf35
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from actors.columns import pack, unpack  # noqa: E402
from actors.video import VideoRestoreActor  # noqa: E402
from operators.degradations import build_degradation  # noqa: E402
from operators.metrics.clip_stats import ClipMetrics  # noqa: E402
from operators.priors.paths import SHARED_WEIGHTS_DIR  # noqa: E402
from operators.video import probe, read_frames  # noqa: E402
from pipelines.stages.video_load import degrade_frames  # noqa: E402

DVDNET = {"name": "dvdnet", "weights": str(SHARED_WEIGHTS_DIR / "dvdnet")}
TASKS = {"denoise25": {"name": "denoise", "noise_sigma": 25 / 255},
         "crf35": {"name": "video_codec", "codec": "h264", "crf": 35}}


def methods(nfe: int) -> dict[str, tuple[dict, dict | None]]:
    """name -> (solver spec, video prior spec)."""
    return {
        f"langevin per frame ({nfe} NFE)": ({"name": "langevin", "nfe": nfe, "window": 8}, None),
        f"langevin_video W8 O2 ({nfe} NFE)": ({"name": "langevin_video", "nfe": nfe, "window": 8, "overlap": 2}, None),
        f"langevin_video + DVDnet expert, sampler ({nfe}+{nfe})": (
            {"name": "langevin_video", "nfe": nfe, "window": 8, "overlap": 2, "expert_blend": "none"}, DVDNET),
        f"langevin_video W16 O4 + DVDnet expert, sampler ({nfe}+{nfe}), SURE blend": (
            {"name": "langevin_video", "nfe": nfe, "window": 16, "overlap": 4, "expert_blend": "sure"}, DVDNET),
        "langevin_video + DVDnet expert, warm start, deterministic (1+2)": (
            {"name": "langevin_video", "nfe": 1, "window": 8, "overlap": 2, "warm_start": "expert",
             "sigma_max": 0.02, "renoise": False, "temporal_weight": 0.0, "expert_blend": "none"}, DVDNET),
        "DVDnet alone": ({"name": "dvdnet", "window": 16, "overlap": 4}, DVDNET),
        "CBM3D per frame": ({"name": "bm3d", "window": 8}, None),
    }


def clip_path(name: str) -> str:
    if name == "pan":
        from pipelines.inputs import export_skimage_clip

        return os.path.join(export_skimage_clip("/tmp/restoray-bench-clips"), "pan.mkv")
    files = {"carphone": "carphone_pristine.mp4", "bikes": "bikes.mp4", "chaplin": "chaplin.mp4",
             "pancake": "flipping_a_pancake.mkv"}
    return str(SHARED_WEIGHTS_DIR.parent / "video" / files[name])


def measure(frames: np.ndarray, ref: np.ndarray) -> dict:
    m = ClipMetrics()
    for f, r in zip(frames, ref):
        m.update(f, r)
    return m.result()


def run_method(solver: dict, video_prior: dict | None, lq: np.ndarray, spec: dict, clip_id: str) -> tuple[np.ndarray, float, int]:
    baseline_spec = spec
    if solver["name"] == "bm3d" and spec["name"] == "video_codec":  # BM3D at the coding-error level
        baseline_spec = {"name": "denoise", "noise_sigma": build_degradation(spec).init_sigma}
    actor = VideoRestoreActor(solver, {"name": "embedded"}, video_prior, seed=0, device="cpu")
    row = {"id": clip_id, "clip_id": clip_id, "context": 0, "start": 0, "stop": len(lq),
           "lq": pack(lq, np.float16), "degradation": json.dumps(baseline_spec)}
    t0 = time.perf_counter()
    out = actor.restore_row(row)
    secs = time.perf_counter() - t0
    if out.get("error_stage"):
        raise RuntimeError(out["error_message"])
    return unpack(out["restored"]).astype(np.float32) / 255, secs, int(out["nfe"])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", default="carphone,pan")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--tasks", default="denoise25,crf35")
    ap.add_argument("--nfe", type=int, default=4)
    ap.add_argument("--methods", default="", help="comma-separated substrings of method names (default: all)")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    print("| clip | task | method | NFE/frame | frames/s | PSNR | SSIM | flicker | warp err (ref) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for clip in args.clips.split(","):
        path = clip_path(clip)
        info = probe(path)
        clean = np.concatenate([c.frames for c in read_frames(path, info, 0, min(args.frames, info.frames))])
        for task in args.tasks.split(","):
            lq, _ = degrade_frames(TASKS[task], clean, 0, clip, 0)
            lq = lq.astype(np.float16).astype(np.float32)  # what the job's actor sees
            m = measure(np.clip(lq, 0, 1), clean)
            print(f"| {clip} {clean.shape[2]}x{clean.shape[1]}x{len(clean)} | {task} | input | - | - | "
                  f"{m['psnr']:.2f} | {m['ssim']:.4f} | {m['flicker']:.4f} | {m['warp_error']:.4f} ({m['ref_warp_error']:.4f}) |",
                  flush=True)
            for name, (solver, vp) in methods(args.nfe).items():
                if args.methods and not any(s in name for s in args.methods.split(",")):
                    continue
                x, secs, nfe = run_method(solver, vp, lq, TASKS[task], clip)
                m = measure(x, clean)
                print(f"| {clip} | {task} | {name} | {nfe / len(x):.1f} | {len(x) / secs:.2f} | {m['psnr']:.2f} | "
                      f"{m['ssim']:.4f} | {m['flicker']:.4f} | {m['warp_error']:.4f} ({m['ref_warp_error']:.4f}) |",
                      flush=True)


if __name__ == "__main__":
    main()
