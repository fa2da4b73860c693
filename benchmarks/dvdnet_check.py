"""DVDnet (published weights) as a sanity check: its spatial stage on CBSD68 against the
MANIFEST's figure, and the full video denoiser on carphone against its own spatial stage.

Video protocol (as the authors' test_dvdnet.py): clean RGB frames of carphone_pristine.mp4
(176x144, PyAV) in [0, 1]; noisy = clean + sigma/255 * n, n from one CPU torch.Generator seeded
1000 * sigma for the whole clip, not clipped; PSNR of the float output (clamped to [0, 1], not
rounded) per frame, averaged over frames. Methods: DVDnet with DeepFlow (the authors' flow) or
DIS (a substitute they did not evaluate), the spatial stage alone, and optionally CBM3D per
frame (operators.baselines, slow). The published numbers are on other clips (Set8, DAVIS), so
this is a sanity check, not a reproduction.

Image check: the spatial stage on the first N images of eval/CBSD68 (cropped to even size) at
sigma 25 under benchmarks/pretrained_denoise.py's protocol (seeded noise per image, output
rounded to 8 bits); the MANIFEST gives 31.46 dB for the first 20; tests pin the first-3 figure.

    python -m benchmarks.dvdnet_check [--frames 30] [--sigmas 10 20 30 40 50] [--cbm3d]
        [--cbsd68 20] [--threads 2]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.pretrained_denoise import dataset, denoised_psnr, load_clean
from operators.metrics import psnr
from operators.priors.dvdnet import DVDnet, DVDnetPrior, load_dvdnet

VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "carphone_pristine.mp4"
FIRST3_SUBSET = 3
# dvdnet README, PSNR (dB) by sigma; sequences of up to 85 frames, averaged per frame then per sequence
PUBLISHED = {"Set8": {10: 36.08, 20: 33.49, 30: 31.79, 40: 30.55, 50: 29.56},
             "DAVIS-test": {10: 38.13, 20: 35.70, 30: 34.08, 40: 32.86, 50: 31.85}}


def load_clip(path: Path = VIDEO, frames: int | None = None) -> torch.Tensor:
    """The first ``frames`` RGB frames: (T, 3, H, W) float32 in [0, 1]."""
    import av

    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if frames is not None and len(out) == frames:
                break
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def add_noise(clean: torch.Tensor, sigma255: float, seed: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(1000 * sigma255) if seed is None else seed)
    return clean + sigma255 / 255 * torch.randn(clean.shape, generator=g)


def video_psnr(out: torch.Tensor, clean: torch.Tensor) -> float:
    """Mean over frames of the per-frame PSNR (dB) of the clamped output."""
    return float(psnr(out.clamp(0, 1), clean).mean())


def spatial_only(net: DVDnet, noisy: torch.Tensor, sigma: float) -> torch.Tensor:
    s, b = torch.full((len(noisy),), sigma), net.batch
    with torch.no_grad():
        out = [net.denoise_frames(noisy[i : i + b], s[i : i + b]) for i in range(0, len(noisy), b)]
    return torch.cat(out).clamp(0, 1)


def cbm3d(noisy: torch.Tensor, sigma: float) -> torch.Tensor:
    from operators.baselines.bm3d import baseline_bm3d
    from operators.degradations import build_degradation
    from operators.seeding import make_generator

    op = build_degradation({"name": "denoise", "noise_sigma": sigma})
    op = op.bind(tuple(noisy.shape), make_generator(0, "bind"))
    return baseline_bm3d(noisy, op)


def methods(net: DVDnet, with_cbm3d: bool) -> dict:
    dis = DVDnet(net.spatial, net.temporal, flow="dis", edge=net.edge, batch=net.batch)
    out = {"DVDnet (DeepFlow)": net.denoise_video, "DVDnet (DIS)": dis.denoise_video,
           "spatial stage only": lambda y, s: spatial_only(net, y, s)}
    if with_cbm3d:
        out["CBM3D per frame"] = cbm3d
    return out


def cbsd68_check(net: DVDnet, limit: int) -> list[float]:
    """Per-image PSNR (dB) of the spatial stage at sigma 25 on the first ``limit`` CBSD68 images."""
    prior = DVDnetPrior(net)
    scores = []
    for i, f in enumerate(dataset("CBSD68", limit)):
        x = load_clean(f, grey=False)
        h, w = x.shape[-2:]
        scores.append(denoised_psnr(prior, x[..., : h - h % 2, : w - w % 2], 25, i))
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--sigmas", type=int, nargs="+", default=[10, 20, 30, 40, 50])
    ap.add_argument("--cbm3d", action="store_true", help="add CBM3D per frame (slow)")
    ap.add_argument("--cbsd68", type=int, default=0, help="also the spatial stage on the first N CBSD68 images")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    net = load_dvdnet()
    if args.cbsd68:
        t0, scores = time.perf_counter(), cbsd68_check(net, args.cbsd68)
        print(f"CBSD68 spatial stage, sigma 25: first {len(scores)} {np.mean(scores):.2f} dB, first {FIRST3_SUBSET} "
              f"{np.mean(scores[:FIRST3_SUBSET]):.3f} dB ({(time.perf_counter() - t0) / len(scores):.2f} s/image)\n")
    clean = load_clip(frames=args.frames)
    table = {name: {} for name in methods(net, args.cbm3d)}
    speed = {name: [] for name in table}
    noisy_psnr = {}
    for s in args.sigmas:
        noisy = add_noise(clean, s)
        noisy_psnr[s] = video_psnr(noisy, clean)
        for name, fn in methods(net, args.cbm3d).items():
            t0 = time.perf_counter()
            table[name][s] = video_psnr(fn(noisy, s / 255), clean)
            speed[name].append(len(clean) / (time.perf_counter() - t0))
            print(f"  sigma {s} {name}: {table[name][s]:.2f} dB", flush=True)
    h, w = clean.shape[-2:]
    print(f"\ncarphone_pristine, first {len(clean)} frames ({w}x{h}), PSNR (dB) per frame, averaged\n")
    print("| method | " + " | ".join(f"sigma {s}" for s in args.sigmas) + " | frames/s |")
    print("|---|" + "---:|" * (len(args.sigmas) + 1))
    print("| noisy input | " + " | ".join(f"{noisy_psnr[s]:.2f}" for s in args.sigmas) + " | - |")
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[s]:.2f}" for s in args.sigmas) + f" | {np.mean(speed[name]):.2f} |")
    for name, row in PUBLISHED.items():
        print(f"| published DVDnet, {name} (other clips) | " + " | ".join(f"{row.get(s, float('nan')):.2f}"
                                                                     for s in args.sigmas) + " | - |")


if __name__ == "__main__":
    main()
