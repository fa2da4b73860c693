"""The embedded latent prior as a one-NFE latent denoiser (not a test): PSNR of
Dec(D(E(x) + sigma n, sigma)) and of Dec(E(x) + sigma n) against x, and of Dec(E(x)).

    python benchmarks/latent_denoise.py [--limit 8] [--sigmas 0.25 0.5 1.0]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from operators.media import decode_image
from operators.metrics import psnr
from operators.priors import build_prior

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval" / "CBSD68"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    prior = build_prior({"name": "embedded_latent"})
    files = sorted(DATA.glob("*.png"))[: args.limit]
    print("| latent sigma | Dec(E(x)) dB | noisy Dec(z + sigma n) dB | denoised Dec(D(.)) dB |")
    print("|---:|---:|---:|---:|")
    for s in args.sigmas:
        rec, noisy, den = [], [], []
        for i, f in enumerate(files):
            x = torch.from_numpy(decode_image(f.read_bytes()).pixels.transpose(2, 0, 1).copy())[None]
            x = x[..., : x.shape[-2] // 8 * 8, : x.shape[-1] // 8 * 8]
            g = torch.Generator().manual_seed(i)
            with torch.no_grad():
                z = prior.encode(x)
                zn = z + s * torch.randn(z.shape, generator=g)
                for acc, lat in ((rec, z), (noisy, zn), (den, prior.denoise(zn, s))):
                    acc.append(float(psnr(prior.decode(lat).clamp(0, 1), x)[0]))
        mean = lambda v: sum(v) / len(v)
        print(f"| {s:g} | {mean(rec):.2f} | {mean(noisy):.2f} | {mean(den):.2f} |", flush=True)


if __name__ == "__main__":
    main()
