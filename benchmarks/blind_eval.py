"""Blind x4 restoration (issue 12): the three blind methods against bicubic upsampling and a
non-blind solver told the wrong operator, on images none of them was trained or tuned on.

    python benchmarks/blind_eval.py [--images 8] [--size 128] [--realsr 6] [--methods ...] [--latent-weights F] [--inn-weights F]

1. CBSD68 centre crops (``--size``), each degraded by its own Real-ESRGAN x4 chain drawn from a
   generator seeded by the image name (every method sees the same LQ); PSNR / SSIM (skimage-equal,
   operators.metrics.quality) against the clean crop, seconds per image (in-process, one thread).
2. RealSRSet+5images, real LQ photos with no reference (the smallest ``--realsr`` of them): NIQE
   (lower is better) of each method's x4 output, and of the input (bicubic-enlarged x4, and as is).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from operators.baselines import get_baseline
from operators.degradations import Blind, build_degradation, sample_degradation
from operators.metrics.niqe import niqe
from operators.metrics.quality import quality
from operators.priors import build_prior
from operators.seeding import derive_seed
from operators.solvers import get_solver, row_config, solver_config
from operators.solvers.posterior import posterior_samples, split_posterior

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "data" / "eval"
WRONG = {"name": "sr", "scale": 4, "noise_sigma": 0.02}
METHODS = {  # name -> (solver, nfe, config, assumed operator, prior)
    "langevin told bicubic x4": ("langevin", 8, {}, WRONG, "embedded"),
    "indigo (PixelINN, embedded prior)": ("indigo", 10, {"inn": "pixel", "denoiser": "prior", "sigma_start": 0.1}, None, "embedded"),
    "indigo (PixelINN, conditional model)": ("indigo", 2, {"inn": "pixel", "denoiser": "conditional",
                                                             "sigma_start": 4.0}, None, "embedded"),
    "indigo (LatentINN, conditional model)": ("indigo", 2, {"inn": "latent", "denoiser": "conditional",
                                                              "sigma_start": 4.0}, None, "embedded"),
    "indigo (LatentINN, embedded_latent prior)": ("indigo", 10, {"inn": "latent", "denoiser": "prior", "sigma_start": 0.5}, None,
                                                  "embedded_latent"),
    "indigo (PixelINN, embedded_latent prior)": ("indigo", 10, {"inn": "pixel", "denoiser": "prior", "sigma_start": 0.5}, None,
                                                 "embedded_latent"),
    "conditional (1 NFE)": ("conditional", 1, {}, None, "embedded"),
    "conditional (4 NFE)": ("conditional", 4, {}, None, "embedded"),
    "irsde (posterior, 5 NFE)": ("irsde", 5, {"sampler": "posterior"}, None, "embedded"),
    "irsde (mean of 4 posterior samples, 5 NFE each)": ("irsde", 5, {"sampler": "posterior", "samples": 4}, None,
                                                        "embedded"),
    "irsde (Euler-Maruyama, 20 NFE)": ("irsde", 20, {"sampler": "euler"}, None, "embedded"),
}


def load(path: Path, size: int | None = None) -> torch.Tensor:
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
    if size:
        t, l = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
        a = a[t:t + size, l:l + size]
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]


PRIORS: dict = {}
WEIGHTS: dict[str, str] = {}  # prior name -> weights file in place of the shipped one (--latent-weights)


def restore(name: str, y: torch.Tensor, op, seed: int) -> tuple[torch.Tensor, float]:
    t0 = time.perf_counter()
    if name == "bicubic":
        x = get_baseline("bicubic")(y, op)
    else:
        solver, nfe, cfg, assume, prior_name = METHODS[name]
        if prior_name not in PRIORS:
            weights = {"weights": WEIGHTS[prior_name]} if prior_name in WEIGHTS else {}
            PRIORS[prior_name] = build_prior({"name": prior_name, **weights})
        prior = PRIORS[prior_name]
        told = build_degradation(assume) if assume else op
        if solver == "indigo" and "inn" in WEIGHTS:
            cfg = {**cfg, "weights": WEIGHTS["inn"]}
        posterior, keys = split_posterior(cfg)
        config = row_config(solver, keys, told)[0] if not keys else solver_config(solver, **keys)
        x = posterior_samples(get_solver(solver), y, told, prior, nfe=nfe, generator=torch.Generator().manual_seed(seed),
                              config=config, samples=posterior.samples, estimate=posterior.estimate or "mean").x
    return x.clamp(0, 1), time.perf_counter() - t0


def hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--realsr", type=int, default=6)
    ap.add_argument("--methods", nargs="+", default=["bicubic", *METHODS])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--latent-weights", help="the embedded_latent prior's weights file (default: the shipped one)")
    ap.add_argument("--inn-weights", help="the INN of every indigo method (default: the shipped one for its INN and space)")
    args = ap.parse_args()
    if args.latent_weights:
        WEIGHTS["embedded_latent"] = args.latent_weights
    if args.inn_weights:
        WEIGHTS["inn"] = args.inn_weights
    torch.set_num_threads(args.threads)
    rows = {m: {"psnr": [], "ssim": [], "s": []} for m in args.methods}
    lq_stats = {"psnr": [], "ssim": []}
    for f in sorted((EVAL / "CBSD68").glob("*.png"))[: args.images]:
        hq = load(f, args.size)
        seed = derive_seed(0, "blind_eval", f.name)
        g = torch.Generator().manual_seed(seed)
        op = sample_degradation("realesrgan", g, tuple(hq.shape), scale=4)
        y = op.measure(hq, g).clamp(0, 1)
        for m in args.methods:
            x, s = restore(m, y, op, seed)
            p, q = quality(hwc(x), hwc(hq))
            rows[m]["psnr"].append(p), rows[m]["ssim"].append(q), rows[m]["s"].append(s)
    print(f"CBSD68 {args.images} crops {args.size}px, Real-ESRGAN x4 chain per image\n")
    print("| method | PSNR | SSIM | s/image |\n|---|---:|---:|---:|")
    for m, r in rows.items():
        print(f"| {m} | {np.mean(r['psnr']):.2f} | {np.mean(r['ssim']):.4f} | {np.mean(r['s']):.1f} |", flush=True)
    if args.realsr:
        files = sorted((EVAL / "real_lq_RealSRSet+5images").iterdir(), key=lambda p: Image.open(p).size)[: args.realsr]
        scores = {m: [] for m in ["input (as is)", *args.methods]}
        for f in files:
            y = load(f)
            scores["input (as is)"].append(float(niqe(y)[0]))
            for m in args.methods:
                x, _ = restore(m, y, Blind(scale=4), derive_seed(0, "blind_eval", f.name))
                scores[m].append(float(niqe(x)[0]))
        print(f"\nRealSRSet+5images, the {len(files)} smallest ({', '.join(f.name for f in files)}): NIQE (lower is better)\n")
        print("| method | NIQE |\n|---|---:|")
        for m, v in scores.items():
            print(f"| {m}{' (the input enlarged x4)' if m == 'bicubic' else ''} | {np.mean(v):.2f} |")


if __name__ == "__main__":
    main()
