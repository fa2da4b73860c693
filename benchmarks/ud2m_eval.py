"""UD2M against the langevin solver at equal NFE, on CBSD68 crops it was never trained on.

    python benchmarks/ud2m_eval.py [--unfolding weights/embedded_ud2m.safetensors] [--images 6]
                                   [--size 128] [--nfe 6] [--tasks deblur_gauss sr_x4] [--init imdn] [--quick]

Each task is one of the evaluate grid's (configs/evaluate.yaml), scored by
benchmarks/preset_objective.score (seeded degradations and solves, mean PSNR): langevin with its
preset, ud2m at its starting point (``unfolding: untrained``) and the trained unfolding (on its own
schedule, and with its per-task preset where configs/presets.yaml has one), next to
the classical baselines TV and BM3D (where they apply) on the same degraded crops. ``--init
imdn``: every solver starts from the IMDN x4 network's estimate (a solver's ``init:``; x4 SR only),
so the file's ``refine`` expert runs where it has one; the "input estimate" column is IMDN's.
``--quick``: langevin and the trained unfolding only (the other columns "-").
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import preset_objective as po  # noqa: E402

from operators.degradations import build_degradation  # noqa: E402
from operators.degradations.estimated import with_estimate  # noqa: E402
from operators.estimators import build_estimator  # noqa: E402
from operators.solvers.presets import preset_values, task_family  # noqa: E402

CBSD68 = po.REPO.parent / "shared" / "data" / "eval" / "CBSD68"


def crops(n: int, size: int) -> list[np.ndarray]:
    out = []
    for f in sorted(CBSD68.glob("*.png"))[:n]:
        a = np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255
        t, l = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
        out.append(np.ascontiguousarray(a[t:t + size, l:l + size]))
    return out


def baseline_psnr(name: str, task: str, images: list[np.ndarray]) -> float:
    """Mean PSNR of a classical baseline on the same seeded degradations (NaN where it does not
    apply to the task's operator)."""
    from operators.baselines import baseline_applies, get_baseline

    spec = po.tasks()[task]
    got = []
    for i, crop in enumerate(images):
        op, y = po.degrade(spec, crop, i)
        if not baseline_applies(name, op):
            return float("nan")
        got.append(po.psnr(get_baseline(name)(y, op)[0].permute(1, 2, 0).numpy(), crop))
    return float(np.mean(got))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unfolding", default=str(po.REPO / "weights" / "embedded_ud2m.safetensors"))
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--nfe", type=int, default=6)
    ap.add_argument("--tasks", nargs="+", default=["deblur_gauss", "sr_x4"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", default=None, help="a learned start for every solver (imdn)")
    ap.add_argument("--quick", action="store_true", help="langevin and the trained unfolding only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    images, prior = crops(args.images, args.size), {"name": "embedded"}
    print("| task | input estimate | tv | bm3d | langevin (preset) | ud2m untrained | ud2m trained | "
          "ud2m trained (preset) |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    init = {"name": args.init} if args.init else None
    for task in args.tasks:
        base = [float("nan")] * 2 if args.quick else [baseline_psnr(b, task, images) for b in ("tv", "bm3d")]
        lv = po.score("langevin", task, {"preset": "auto"}, args.nfe, prior, images, init)
        un = {"psnr": float("nan")} if args.quick else po.score("ud2m", task, {"unfolding": "untrained"}, args.nfe, prior, images, init)
        tr = po.score("ud2m", task, {"unfolding": args.unfolding}, args.nfe, prior, images, init)
        family = task_family(with_estimate(build_degradation(po.tasks()[task]), build_estimator(init)))
        preset = (po.score("ud2m", task, {"unfolding": args.unfolding, "preset": "auto"}, args.nfe, prior, images,
                           init)
                  if preset_values("ud2m", family) else tr)  # the unfolding's own schedule where none
        cells = [lv["input_psnr"], *base, lv["psnr"], un["psnr"], tr["psnr"], preset["psnr"]]
        print(f"| {task} | " + " | ".join("-" if np.isnan(c) else f"{c:.2f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
