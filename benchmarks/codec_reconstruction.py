"""Reconstruction PSNR of a latent codec, decode(encode(x)), on CBSD68 (not a test).

    python benchmarks/codec_reconstruction.py [--codec embedded|taef2] [--limit 68]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from operators.media import decode_image
from operators.metrics import psnr

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval" / "CBSD68"


def load_codec(name: str):
    if name == "taef2":
        from operators.priors.taef2 import TAEF2Codec

        return TAEF2Codec.from_weights()
    from operators.priors.autoencoder import load_autoencoder
    from operators.priors.paths import shipped_weights

    return load_autoencoder(shipped_weights("embedded_codec" if name == "embedded" else name))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codec", default="embedded")
    ap.add_argument("--limit", type=int, default=68)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    codec = load_codec(args.codec)
    f = codec.factor
    vals = []
    for path in sorted(DATA.glob("*.png"))[: args.limit]:
        x = torch.from_numpy(decode_image(path.read_bytes()).pixels.transpose(2, 0, 1).copy())[None]
        x = x[..., : x.shape[-2] // f * f, : x.shape[-1] // f * f]
        with torch.no_grad():
            rec = codec.decode(codec.encode(x)).clamp(0, 1)
        vals.append(float(psnr(rec, x)[0]))
    print(f"{args.codec}: reconstruction PSNR on {len(vals)} CBSD68 images: "
          f"{sum(vals) / len(vals):.2f} dB mean, {min(vals):.2f} dB min")


if __name__ == "__main__":
    main()
