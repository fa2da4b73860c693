"""Classical baselines: registry, applicability, determinism, and each one improving PSNR on
a real image (a 64x64 crop of CBSD68) over the degraded input or the pseudo-inverse."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from operators.baselines import (
    APPLIES,
    BASELINES,
    baseline_applies,
    baseline_config,
    baseline_pinv,
    get_baseline,
)
from operators.baselines.tv import div, grad
from operators.degradations import build_degradation
from operators.metrics import psnr
from operators.seeding import make_generator

SHARED_DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
LEVIN = {"name": "blur", "kind": "kernel", "index": 0, "noise_sigma": 0.01}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (../shared/data beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def clean() -> torch.Tensor:
    """(1, 3, 64, 64): a textured crop of CBSD68/102061.png."""
    img = np.asarray(Image.open(shared_data() / "eval" / "CBSD68" / "102061.png"), np.float32) / 255
    return torch.from_numpy(img[100:164, 200:264].transpose(2, 0, 1).copy())[None]


def _measure(spec: dict, x: torch.Tensor):
    op = build_degradation(spec).bind(tuple(x.shape), make_generator(0, "img", "bind"))
    return op, op.measure(x, make_generator(0, "img", "noise"))


def _gain(name: str, spec: dict, x: torch.Tensor, **cfg) -> tuple[float, float]:
    """(PSNR of the baseline's output, PSNR of the reference estimate: y for same-size
    problems, clamp(pinv(y)) otherwise), both in dB."""
    op, y = _measure(spec, x)
    out = get_baseline(name)(y, op, config=baseline_config(name, **cfg))
    assert out.shape == x.shape and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    ref = baseline_pinv(y, op) if y.shape != x.shape or spec["name"] == "inpaint" else y.clamp(0, 1)
    return float(psnr(out, x)[0]), float(psnr(ref, x)[0])


def levin() -> dict:
    return {**LEVIN, "kernel_file": str(shared_data() / "eval" / "blur_kernels" / "Levin09.mat")}


def test_registry_and_applicability():
    assert BASELINES.names() == ["bicubic", "bm3d", "imdn", "pinv", "tv", "wiener"]
    assert set(APPLIES["bm3d"]) == {"denoise", "blur"}
    assert not baseline_applies("bm3d", "inpaint") and not baseline_applies("wiener", "sr")
    assert baseline_applies("tv", build_degradation({"name": "jpeg", "quality": 10}))
    assert not baseline_applies("pinv", "jpeg")
    with pytest.raises(ValueError, match="valid keys: profile, sigma_scale"):
        baseline_config("bm3d", sigma=0.1)
    with pytest.raises(KeyError, match="valid choices: bicubic, bm3d, imdn, pinv, tv, wiener"):
        get_baseline("nlm")
    with pytest.raises(ValueError, match="applies to denoise, blur"):
        get_baseline("wiener")(torch.zeros(1, 3, 8, 8), build_degradation({"name": "sr", "scale": 2}))


def test_bicubic_enlarges_blind_and_realesrgan_inputs(clean):
    y = clean[..., :32, :32]
    for spec in ({"name": "blind", "scale": 4}, {"name": "realesrgan", "scale": 4}, {"name": "sr", "scale": 4}):
        x = get_baseline("bicubic")(y, build_degradation(spec))
        assert x.shape[-2:] == (128, 128)
        assert torch.allclose(x, torch.nn.functional.interpolate(y, size=(128, 128), mode="bicubic").clamp(0, 1))
    one = get_baseline("bicubic")(y, build_degradation({"name": "blind", "scale": 1}))
    assert torch.equal(one, y)
    assert not baseline_applies("bicubic", "denoise")


def test_pinv_sr_is_the_operator_pinv(clean):
    op, y = _measure({"name": "sr", "scale": 4, "noise_sigma": 0.01}, clean)
    assert torch.equal(baseline_pinv(y, op), op.pinv(y).clamp(0, 1))
    bicubic = baseline_pinv(y, op, config=baseline_config("pinv", sr="bicubic"))
    ref = torch.nn.functional.interpolate(y, size=(64, 64), mode="bicubic", align_corners=False).clamp(0, 1)
    assert torch.equal(bicubic, ref)
    op, y = _measure({"name": "denoise", "noise_sigma": 0.1}, clean)
    assert torch.equal(baseline_pinv(y, op), y.clamp(0, 1))


def test_bm3d_denoises(clean):
    out, ref = _gain("bm3d", {"name": "denoise", "noise_sigma": 25 / 255}, clean)
    assert out > ref + 6  # ~20.5 dB noisy -> ~27 dB


@pytest.mark.parametrize("name", ["bm3d", "wiener", "tv"])
def test_deblurring_improves_on_the_blurred_image(clean, name):
    x = clean[:, :1] if name == "bm3d" else clean  # BM3D deblurring runs per channel: one is enough here
    out, ref = _gain(name, levin(), x)
    assert out > ref + 1.0, (name, out, ref)


def test_gaussian_deblur_and_denoise(clean):
    for name, denoise_gain in (("wiener", 3.0), ("tv", 3.5)):  # noisy input ~20.4 dB
        out, ref = _gain(name, {"name": "blur", "kind": "gaussian", "sigma": 1.5, "noise_sigma": 0.01}, clean)
        assert out > ref + 0.5, (name, out, ref)
        out, ref = _gain(name, {"name": "denoise", "noise_sigma": 25 / 255}, clean)
        assert out > ref + denoise_gain, (name, out, ref)


@pytest.mark.parametrize("spec", [{"name": "sr", "scale": 2, "noise_sigma": 0.01},
                                  {"name": "inpaint", "kind": "random", "fraction": 0.7, "noise_sigma": 0.01}])
def test_tv_beats_the_pseudo_inverse(clean, spec):
    out, ref = _gain("tv", spec, clean)
    assert out > ref + (0.3 if spec["name"] == "sr" else 10), (out, ref)


def test_tv_gradient_adjoint_and_determinism(clean):
    g = torch.Generator().manual_seed(0)
    u, p = torch.randn(2, 3, 9, 7, generator=g), torch.randn(2, 3, 2, 9, 7, generator=g)
    assert torch.allclose((grad(u) * p).sum(), -(u * div(p)).sum(), rtol=1e-5)
    op, y = _measure({"name": "jpeg", "quality": 10}, clean)
    a = get_baseline("tv")(y, op)
    assert torch.equal(a, get_baseline("tv")(y, op))
    assert psnr(a, clean) > psnr(y, clean)
