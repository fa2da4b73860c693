"""Published denoisers loaded from their MatConvNet files, scored against their papers' tables.

FFDNet colour and CDnCNN-B on CBSD68, FFDNet grey on BSD68 (all 68 images, 481x321). Protocol
(as the authors' demos): clean 8-bit image in [0, 1]; noisy = clean + sigma/255 * n with n from
a CPU torch.Generator seeded 1000 * sigma + image index (no clipping of the noisy image); the
output clipped to [0, 1] and rounded to 8 bits; PSNR (operators.metrics, = skimage) on the
clean image, averaged over the images. "first 3" is the mean over the first 3 images (sorted
by name): tests/operators/priors/test_pretrained_denoisers.py checks that figure, since the
whole set is too slow for a unit test on 2 CPU cores.

    python benchmarks/pretrained_denoise.py [--nets ffdnet_color dncnn_color ffdnet_gray]
        [--sigmas 15 25 50] [--limit 68] [--threads 2]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from operators.metrics import psnr
from operators.priors import Prior, build_prior
from operators.priors.paths import shared_weights

EVAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval"
SUBSET = 3
# (prior spec, dataset, published PSNR by sigma). FFDNet: README figs/table2.png (colour) and
# figs/table1.png (grey), Zhang, Zuo & Zhang, TIP 2018; CDnCNN-B: the same table2 row "CDnCNN"
# (= DnCNN paper, TIP 2017).
NETS = {
    "ffdnet_color": ({"name": "ffdnet", "weights": str(shared_weights("FFDNet_color.mat"))}, "CBSD68",
                     {15: 33.87, 25: 31.21, 35: 29.58, 50: 27.96, 75: 26.24}),
    "dncnn_color": ({"name": "dncnn", "weights": str(shared_weights("GD_Color_Blind.mat"))}, "CBSD68",
                    {15: 33.89, 25: 31.23, 35: 29.58, 50: 27.92}),
    "ffdnet_gray": ({"name": "ffdnet", "weights": str(shared_weights("FFDNet_gray.mat"))}, "BSD68",
                    {15: 31.63, 25: 29.19, 50: 26.29}),
}


def load_clean(path: Path, grey: bool) -> torch.Tensor:
    """(1, C, H, W) float32 in [0, 1]: C = 1 for ``grey``, else 3."""
    a = np.asarray(Image.open(path).convert("L" if grey else "RGB"), dtype=np.float32) / 255.0
    a = a[..., None] if a.ndim == 2 else a
    return torch.from_numpy(a).permute(2, 0, 1)[None].contiguous()


def denoised_psnr(prior: Prior, clean: torch.Tensor, sigma255: int, index: int) -> float:
    """The protocol above for one image: PSNR (dB) of the 8-bit denoised output."""
    g = torch.Generator().manual_seed(1000 * sigma255 + index)
    noisy = clean + sigma255 / 255 * torch.randn(clean.shape, generator=g)
    with torch.no_grad():
        out = prior.denoise(noisy, sigma255 / 255)
    return float(psnr((out.clamp(0, 1) * 255).round() / 255, clean)[0])


def dataset(name: str, limit: int = 68) -> list[Path]:
    return sorted((EVAL / name).glob("*.png"))[:limit]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--sigmas", type=int, nargs="+", default=[15, 25, 50])
    ap.add_argument("--limit", type=int, default=68)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"| net | set | sigma | PSNR (dB) | published | ours - published | first {SUBSET} (dB) | s/image |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for key in args.nets:
        spec, data, published = NETS[key]
        prior = build_prior(spec)
        files = dataset(data, args.limit)
        for s in args.sigmas:
            t0, scores = time.perf_counter(), []
            for i, f in enumerate(files):
                scores.append(denoised_psnr(prior, load_clean(f, prior.channels == 1), s, i))
            sec = (time.perf_counter() - t0) / len(files)
            pub = published.get(s)
            pub_txt, diff = (f"{pub:.2f}", f"{np.mean(scores) - pub:+.2f}") if pub else ("-", "-")
            print(f"| {key} | {data} ({len(files)}) | {s} | {np.mean(scores):.2f} | {pub_txt} | {diff} | "
                  f"{np.mean(scores[:SUBSET]):.3f} | {sec:.2f} |", flush=True)


if __name__ == "__main__":
    main()
