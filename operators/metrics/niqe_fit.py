"""Fit a NIQE pristine model (Mittal et al. 2013, Sec. III-B) from sharp patches of clean images.

    python -m operators.metrics.niqe_fit --data ../shared/data/train/BSDS400_color \
        --out weights/niqe_pristine_restoray.npz [--max-images N] \
        [--compare ../shared/data/weights/niqe_pris_params.npz --eval DIR ...]

Per image: the 36 NIQE features of every whole 96x96 block (two scales); a block is kept
when its sharpness (mean local deviation sigma of Eq. 1 at scale 1) exceeds
``threshold`` x the image's sharpest block (the paper's p = 0.75). The pristine model is
the mean and covariance of the kept features (NaN-free rows for the covariance).
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from operators.metrics.niqe import NIQEModel, niqe, niqe_features, to_luma255

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def sharp_patch_features(images: Iterable[torch.Tensor], threshold: float = 0.75) -> torch.Tensor:
    """Features of the sharp 96x96 blocks of every image: (n_kept, 36) float64."""
    kept = []
    for img in images:
        x = img if img.ndim == 4 else img[None]
        feats, sharp = niqe_features(to_luma255(x))
        for f, s in zip(feats, sharp):
            kept.append(f[s > threshold * s.max()])
    if not kept:
        raise ValueError("no images to fit a NIQE model")
    return torch.cat(kept)


def fit_niqe_pristine(images: Iterable[torch.Tensor], threshold: float = 0.75) -> tuple[torch.Tensor, torch.Tensor]:
    """Pristine (mu, cov) from images, each (C, H, W) or (1, C, H, W) in [0, 1], C in {1, 3}.

    Returns mu (36,) and cov (36, 36), float64.
    """
    return _gaussian(sharp_patch_features(images, threshold))


def _gaussian(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (NaN-skipping) and covariance (NaN-free rows) of features (n, 36)."""
    ok = feats[~feats.isnan().any(dim=1)]
    if ok.shape[0] < 37:
        raise ValueError(f"only {ok.shape[0]} usable patches; need > 36 for a full-rank covariance")
    return feats.nanmean(dim=0), torch.cov(ok.T)


def load_image(path: str | Path) -> torch.Tensor:
    """An image file as (1, C, H, W) float32 in [0, 1]; grayscale stays one channel."""
    im = Image.open(path)
    im = im.convert("L" if im.mode in ("L", "I;16", "I") else "RGB")
    a = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)
    return (a[None] if a.ndim == 2 else a.permute(2, 0, 1))[None]


def image_paths(folder: str | Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def compare_table(paths: list[Path], models: dict[str, NIQEModel]) -> str:
    """A markdown table of NIQE under each model, on each image and a noisy copy (sigma 25/255)."""
    names = list(models)
    rows = ["| image | " + " | ".join(names) + " | difference |", "|---" * (len(names) + 2) + "|"]
    g = torch.Generator().manual_seed(0)
    for p in paths:
        x = load_image(p)
        noisy = (x + 25 / 255 * torch.randn(x.shape, generator=g)).clamp(0, 1)
        for label, img in ((p.name, x), (p.name + " + noise 25", noisy)):
            v = [niqe(img, models[n]).item() for n in names]
            rows.append(f"| {label} | " + " | ".join(f"{s:.3f}" for s in v) + f" | {v[-1] - v[0]:+.3f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="folder of clean training images")
    ap.add_argument("--out", required=True, help="output .npz (mu_pris_param, cov_pris_param)")
    ap.add_argument("--max-images", type=int, default=0, help="use the first N sorted images (0: all)")
    ap.add_argument("--threshold", type=float, default=0.75, help="sharpness fraction of the image max")
    ap.add_argument("--compare", default=None, help="another pristine .npz to compare scores against")
    ap.add_argument("--eval", nargs="*", default=[], help="image files for the comparison table")
    args = ap.parse_args(argv)

    paths = image_paths(args.data)
    if args.max_images > 0:
        paths = paths[: args.max_images]
    t0 = time.perf_counter()
    feats = sharp_patch_features((load_image(p) for p in paths), args.threshold)
    model = NIQEModel(*_gaussian(feats))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    took = time.perf_counter() - t0
    print(f"fitted on {feats.shape[0]} sharp patches of {len(paths)} images from {args.data} in {took:.1f} s -> {args.out}")
    if args.compare and args.eval:
        models = {"published": NIQEModel.load(args.compare), "restoray": model}
        print(compare_table([Path(e) for e in args.eval], models))


if __name__ == "__main__":
    main()
