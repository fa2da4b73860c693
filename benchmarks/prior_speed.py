"""Seconds per NFE of the embedded EDM UNet on a 256x256 image on this CPU (not a test).

    python benchmarks/prior_speed.py [--threads 2] [--size 256] [--repeats 10] [--weights PATH]
                                     [--dtype float32|bfloat16|float16]

Without --weights it times a randomly initialised network of the default config (the same
arithmetic as trained weights). Reports params and min / median seconds per forward.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from operators.priors.edm_unet import EDMUNet, EDMUNetConfig, load_edm_unet
from operators.priors.precision import DTYPES, run_network


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--grey", action="store_true")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="the UNet's compute precision")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    c = 1 if args.grey else 3
    net = load_edm_unet(args.weights) if args.weights else EDMUNet(EDMUNetConfig(in_channels=c, out_channels=c)).eval()
    c = net.config.in_channels
    x = torch.rand(1, c, args.size, args.size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    sigma = torch.tensor([0.2])
    times, dtype = [], DTYPES[args.dtype]
    with torch.inference_mode():
        run_network(net, dtype, x, sigma)  # warm-up
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            run_network(net, dtype, x, sigma)
            times.append(time.perf_counter() - t0)
    n = sum(p.numel() for p in net.parameters())
    print(f"EDM UNet {net.config.channels} blocks {net.config.blocks}: {n / 1e6:.2f} M params; "
          f"{c}x{args.size}x{args.size}, {args.threads} threads, {args.dtype}: min {min(times):.3f} s, "
          f"median {statistics.median(times):.3f} s per NFE")


if __name__ == "__main__":
    main()
