"""Normalised-convolution hole filling (the inpainting initial estimate)."""
from __future__ import annotations

import torch

from operators.degradations import build_degradation
from operators.degradations.fill import fill_holes
from operators.seeding import make_generator


def test_observed_pixels_kept_and_every_hole_filled():
    g = make_generator(0, "fill")
    x = torch.rand(2, 3, 33, 47, generator=g)
    mask = torch.rand(33, 47, generator=g) > 0.8
    out = fill_holes(x * mask, mask)
    assert torch.equal(out[..., mask], x[..., mask])
    assert bool((out[..., ~mask] > 0).all())


def test_constant_and_ramp_images_are_filled_back():
    mask = torch.ones(40, 40, dtype=torch.bool)
    mask[10:30, 12:28] = False  # a box hole
    const = torch.full((1, 1, 40, 40), 0.3)
    torch.testing.assert_close(fill_holes(const * mask, mask), const)
    ramp = torch.linspace(0, 1, 40).view(1, 1, 1, 40).expand(1, 1, 40, 40)
    random = torch.rand(40, 40, generator=make_generator(0, "m")) > 0.7
    err = (fill_holes(ramp * random, random) - ramp).abs()
    assert float(err[..., 3:-3].max()) < 0.06  # interior: within ~2 px of slope on a ramp (0.025 / px)


def test_inpaint_init_estimate_is_nearer_than_zeros():
    g = make_generator(0, "img")
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 68, 68, generator=g), 5, 1)  # smooth, 64x64
    op = build_degradation({"name": "inpaint", "kind": "random", "fraction": 0.7}).bind(tuple(x.shape), g)
    y = op.forward(x)
    assert float((op.init_estimate(y) - x).pow(2).mean()) < 0.1 * float((op.pinv(y) - x).pow(2).mean())
