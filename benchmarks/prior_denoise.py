"""The embedded pixel prior as a plain denoiser (one NFE) next to CBM3D on CBSD68.

For each sigma (in /255 units) every image gets the same seeded Gaussian noise; the prior's
D(y, sigma) and CBM3D (`bm3d.bm3d_rgb`, same noisy input, same known sigma) are scored
with PSNR on the clean image (8-bit quantised output, as published tables do).

    python benchmarks/prior_denoise.py [--limit 68] [--sigmas 15 25 50] [--weights embedded_pixel]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from operators.media import decode_image
from operators.metrics import psnr
from operators.priors import build_prior

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval" / "CBSD68"


def quantise(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round() / 255


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=68)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[15, 25, 50])
    ap.add_argument("--weights", default="embedded_pixel")
    ap.add_argument("--no-bm3d", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    prior = build_prior({"name": "embedded", "weights": args.weights})
    files = sorted(DATA.glob("*.png"))[: args.limit]
    print(f"CBSD68: {len(files)} images, weights={args.weights}")
    print("| sigma | embedded prior, 1 NFE (dB) | CBM3D (dB) | prior s/image | CBM3D s/image |")
    print("|---|---|---|---|---|")
    for s in args.sigmas:
        sigma = s / 255
        ours, ref, t_ours, t_ref = [], [], 0.0, 0.0
        for i, f in enumerate(files):
            clean = torch.from_numpy(decode_image(f.read_bytes()).pixels.transpose(2, 0, 1).copy())[None]
            g = torch.Generator().manual_seed(1000 * int(s) + i)
            noisy = clean + sigma * torch.randn(clean.shape, generator=g)
            t0 = time.perf_counter()
            with torch.no_grad():
                den = prior.denoise(noisy, sigma)
            t_ours += time.perf_counter() - t0
            ours.append(float(psnr(quantise(den), clean)[0]))
            if not args.no_bm3d:
                import bm3d

                t0 = time.perf_counter()
                out = bm3d.bm3d_rgb(noisy[0].permute(1, 2, 0).numpy().astype(np.float64), sigma)
                t_ref += time.perf_counter() - t0
                ref.append(float(psnr(quantise(torch.from_numpy(out).permute(2, 0, 1)[None].float()), clean)[0]))
        n = len(files)
        ref_txt = f"{np.mean(ref):.2f}" if ref else "-"
        print(f"| {s:g} | {np.mean(ours):.2f} | {ref_txt} | {t_ours / n:.2f} | {t_ref / n if ref else 0:.2f} |", flush=True)


if __name__ == "__main__":
    main()
