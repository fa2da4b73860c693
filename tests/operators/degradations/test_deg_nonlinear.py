"""JPEG (real vs surrogate), video codec, compose, the Real-ESRGAN chain, init estimates."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from operators.degradations import (
    JPEG,
    Blur,
    Colorize,
    Compose,
    Inpaint,
    RealESRGAN,
    SuperResolution,
    VideoCodec,
    build_degradation,
    sample_realesrgan_chain,
)

SET14 = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "eval" / "Set14"
G = lambda s: torch.Generator().manual_seed(s)  # noqa: E731


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


def _real_crop() -> torch.Tensor:
    if not SET14.is_dir():
        pytest.skip(f"real images not found at {SET14}")
    from PIL import Image

    a = np.array(Image.open(SET14 / "barbara.bmp").convert("RGB"))[100:165, 200:259]  # odd size 65 x 59
    return torch.from_numpy(a).permute(2, 0, 1)[None].double() / 255


@pytest.mark.parametrize("quality,subsampling", [(30, "4:2:0"), (75, "4:2:0"), (90, "4:4:4")])
def test_jpeg_surrogate_is_close_to_real_jpeg(quality, subsampling):
    x = _real_crop()
    op = JPEG(quality=quality, subsampling=subsampling)
    real = op.forward(x)
    assert real.shape == x.shape and not op.linear
    sur = op.surrogate(x)
    assert _psnr(real, sur) > 36 and _psnr(real, sur) > _psnr(real, x) + 5
    assert _psnr(real, op.surrogate(x, rounding="cubic")) > _psnr(real, x) - 1


def test_jpeg_surrogate_is_differentiable():
    x = torch.rand(2, 3, 16, 24, generator=G(0), dtype=torch.float64).requires_grad_()
    for rounding in ("ste", "cubic"):
        (g,) = torch.autograd.grad(JPEG(50).surrogate(x, rounding).sum(), x)
        assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_video_codec_runs_on_a_small_stack():
    x = torch.nn.functional.avg_pool2d(torch.rand(4, 3, 31, 40, generator=G(0)), 5, 1, 2)
    for codec in ("h264", "h265"):
        op = VideoCodec(codec=codec, crf=23, preset="ultrafast")
        y = op.forward(x)
        assert y.shape == x.shape and 0 < float((y - x).abs().mean()) < 0.05
        assert torch.equal(y, op.forward(x))
    assert VideoCodec().forward(x[None]).shape == (1, *x.shape)  # (B, T, C, H, W)


def test_compose_linearity_shapes_and_noise_placement():
    lin = build_degradation({"name": "compose", "ops": [{"name": "blur", "sigma": 1.0}, {"name": "sr", "scale": 2}],
                             "noise_sigma": 0.02})
    assert lin.linear and lin.output_shape((1, 3, 32, 32)) == (1, 3, 16, 16) and lin.sigma_n == 0.02
    nonlin = Compose(ops=(SuperResolution(scale=2), JPEG(50)))
    assert not nonlin.linear
    with pytest.raises(NotImplementedError, match="non-linear"):
        nonlin.adjoint(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="noise goes at the end"):
        build_degradation({"name": "compose", "ops": [{"name": "blur", "noise_sigma": 0.1}]})
    bound = Compose(ops=(Blur(kind="motion"), Inpaint(kind="box"))).bind((1, 3, 24, 24), G(0))
    assert bound.forward(torch.rand(1, 3, 24, 24)).shape == (1, 3, 24, 24)


def test_realesrgan_chain_records_params_and_replays():
    op = build_degradation({"name": "realesrgan"}).bind((1, 3, 64, 64), G(5))
    spec = json.loads(json.dumps(op.spec()))
    assert spec["seed"] is not None and spec["chain"][0]["op"] == "blur"
    x = torch.rand(2, 3, 64, 64, generator=G(1))
    y = op.forward(x)
    assert y.shape == (2, 3, 16, 16) and y.min() >= 0 and y.max() <= 1
    assert torch.equal(build_degradation(spec).forward(x), y)
    assert torch.equal(((y * 255).round() / 255), y)  # quantized like the LQ images it mimics
    with pytest.raises(ValueError, match="bind"):
        RealESRGAN().forward(x)


def test_realesrgan_sampled_ranges():
    """Over many draws every step sits in the paper's ranges and the probabilities show up."""
    chains = [sample_realesrgan_chain(G(s)) for s in range(300)]
    blurs = [st for c in chains for st in c if st["op"] == "blur"]
    kinds = {b["kind"] for b in blurs}
    assert {"iso", "aniso", "sinc"} <= kinds
    for b in blurs:
        assert b["size"] % 2 == 1 and 7 <= b["size"] <= 21
        if b["kind"] == "sinc":
            assert math.pi / 5 <= b["omega_c"] <= math.pi
        else:
            assert 0.2 <= b["sigma_x"] <= 3.0 and 0.2 <= b["sigma_y"] <= 3.0
    noises = [st for c in chains for st in c if st["op"] == "noise"]
    assert all(1 / 255 <= n["sigma"] <= 30 / 255 for n in noises if n["kind"] == "gaussian")
    assert all(0.05 <= n["scale"] <= 3 for n in noises if n["kind"] == "poisson")
    assert 0.3 < np.mean([n["gray"] for n in noises]) < 0.5
    assert all(30 <= st["quality"] <= 95 for c in chains for st in c if st["op"] == "jpeg")
    assert all(c[-1]["op"] in ("jpeg", "resize", "blur") for c in chains)
    final = [c[-1]["op"] == "jpeg" for c in chains]
    assert 0.4 < np.mean(final) < 0.6  # 50/50 order of [resize + sinc] and [JPEG]


@pytest.mark.parametrize("op,shape", [(SuperResolution(scale=4), (1, 3, 8, 8)), (Colorize(), (1, 1, 8, 8)),
                                      (JPEG(60), (1, 3, 8, 8)), (RealESRGAN.sample(G(0)), (1, 3, 8, 8)),
                                      (Blur(sigma=1.0), (1, 3, 8, 8))])
def test_init_estimate_has_the_input_shape(op, shape):
    y = torch.rand(shape, generator=G(0))
    est = op.init_estimate(y)
    assert est.shape == op.input_shape(shape) and est.min() >= 0 and est.max() <= 1
