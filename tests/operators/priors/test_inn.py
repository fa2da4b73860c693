"""The lifting-scheme INN: exact inverse on odd sizes for any weights, the Haar split's exact
answers, config checks, safetensors round trip, and training steps that lower the loss."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from operators.degradations import sample_degradation
from operators.priors.base import Codec
from operators.priors.inn import INNConfig, build, fit, load, save, training_loss
from operators.priors.inn_blocks import haar_merge, haar_split, undecimated_merge, undecimated_split

TINY = dict(width=8, embed_dim=8)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_inn(seed: int = 0, std: float = 0.1, **config):
    """An INN whose every weight is random (the zero-initialised output convs too)."""
    torch.manual_seed(seed)  # nn layers initialise from the global RNG
    model = build({**TINY, **config})
    for p in model.parameters():
        torch.nn.init.normal_(p, std=std)
    return model


class UnshuffleCodec(Codec):
    """A linear codec: 2 x 2 space-to-depth, 12 latent channels."""

    factor, latent_channels = 2, 12

    def encode(self, x):
        return F.pixel_unshuffle(x, 2)

    def decode(self, z):
        return F.pixel_shuffle(z, 2)


@pytest.mark.parametrize("size", [(37, 29), (5, 3), (1, 1), (16, 16)])
@pytest.mark.parametrize("split", ["haar", "undecimated"])
def test_inverse_is_exact_on_odd_sizes_for_any_weights(split, size):
    model = random_inn(split=split).requires_grad_(False)
    x, y = torch.rand(2, 3, *size, generator=gen(0)), torch.rand(2, 3, 7, 5, generator=gen(1))
    c, d = model(x, y)
    H, W = size
    if split == "haar":  # c: ceil(H / 4) x ceil(W / 4); details at 1/2 and 1/4 of the padded size
        h, w = -(-H // 4), -(-W // 4)
        assert c.shape == (2, 3, h, w) and [t.shape for t in d] == [(2, 9, 2 * h, 2 * w), (2, 9, h, w)]
    else:
        assert c.shape == x.shape and [t.shape for t in d] == [(2, 9, H, W)] * 2
    assert float(c.std()) > 0.05 and not torch.allclose(c, F.adaptive_avg_pool2d(x, c.shape[-2:]), atol=1e-2)
    x_back = model.inverse(c, d, y, size=size)
    assert x_back.shape == x.shape and float((x_back - x).abs().max()) < 1e-5
    # the same e forward and inverse: a different LQ image gives another (c, d), still inverted
    e = model.embed(torch.rand(2, 3, 4, 4, generator=gen(2)))
    c2, d2 = model(x, e=e)
    assert not torch.allclose(c2, c) and float((model.inverse(c2, d2, e=e, size=size) - x).abs().max()) < 1e-5


def test_haar_split_is_orthonormal_with_a_scaled_coarse_band():
    x = torch.rand(2, 3, 8, 6, generator=gen(0), dtype=torch.float64)
    c, d = haar_split(x)
    assert torch.allclose(c, F.avg_pool2d(x, 2))  # c = LL / 2 = the 2 x 2 block mean
    assert torch.allclose((2 * c).pow(2).sum() + d.pow(2).sum(), x.pow(2).sum())  # Parseval
    assert torch.allclose(haar_merge(c, d), x)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_undecimated_split_keeps_the_size_and_merges_back(level):
    x = torch.rand(1, 2, 9, 7, generator=gen(0), dtype=torch.float64)
    c, d = undecimated_split(x, level)
    s = 2**level
    assert c.shape == x.shape and d.shape == (1, 6, 9, 7)
    inner = (x[..., :-s, :-s] + x[..., s:, :-s] + x[..., :-s, s:] + x[..., s:, s:]) / 4
    assert torch.allclose(c[..., :-s, :-s], inner)  # the mean of the 4 samples s apart
    assert torch.allclose(undecimated_merge(c, d), x)


def test_untrained_pixel_inn_is_the_block_mean_and_its_inverse_swaps_the_coarse_band():
    torch.manual_seed(0)
    model = build(TINY)
    x, y = torch.rand(1, 3, 16, 12, generator=gen(0)), torch.rand(1, 3, 4, 3, generator=gen(1))
    c, d = model(x, y)
    assert torch.allclose(c, F.avg_pool2d(x, 4), atol=1e-6)
    x_inv = model.inverse(y, d, y)  # x with its 4 x 4 block means replaced by y's pixels
    assert torch.allclose(x_inv, x + F.interpolate(y - c, scale_factor=4, mode="nearest"), atol=1e-6)


def test_config_scale_is_derived_and_checked():
    assert INNConfig().scale == 4 and INNConfig(levels=1).scale == 2 and INNConfig(split="undecimated").scale == 1
    latent = INNConfig(channels=8, split="undecimated")
    assert INNConfig.from_json(latent.to_json()) == latent
    with pytest.raises(ValueError, match="scale 4, got scale=2"):
        INNConfig(scale=2)
    with pytest.raises(ValueError, match="split"):
        INNConfig(split="db2")
    with pytest.raises(ValueError, match=r"unknown INNConfig key\(s\) \['depth'\]"):
        build({"depth": 3})


def test_save_load_round_trip_and_refuse_other_files(tmp_path):
    model = random_inn(split="undecimated", channels=4)
    save(model, tmp_path / "inn.safetensors", extra={"steps": "3"})
    back = load(tmp_path / "inn.safetensors")
    assert back.config == model.config and not back.training
    x, y = torch.rand(1, 4, 9, 9, generator=gen(0)), torch.rand(1, 3, 5, 5, generator=gen(1))
    assert torch.equal(back(x, y).c, model(x, y).c)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "other.safetensors"), metadata={"kind": "edm_unet"})
    with pytest.raises(ValueError, match="not an INN file.*'edm_unet'"):
        load(tmp_path / "other.safetensors")


def pairs(batch: int = 4, size: int = 32, scale: int = 4):
    """Smooth HQ images (bilinear 8 x 8 noise) and their realesrgan-degraded LQ images."""
    g = gen(0)
    hq = F.interpolate(torch.rand(batch, 3, 8, 8, generator=g), size=size, mode="bilinear", align_corners=False)
    op = sample_degradation("realesrgan", g, tuple(hq.shape), scale=scale)
    return hq, op.measure(hq, g)


def train(model, hq, lq, steps: int = 30, **kw) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(steps):
        loss = training_loss(model, hq, lq, gen(0), **kw)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_pixel_inn_training_lowers_the_loss():
    hq, lq = pairs()
    assert lq.shape == (4, 3, 8, 8)
    torch.manual_seed(0)
    model = build(TINY)
    first = float(training_loss(model, hq, lq, gen(0)).detach())
    assert first == float(training_loss(model, hq, lq, gen(1)).detach())  # no randomness in the loss
    losses = train(model, hq, lq)
    assert losses[0] == pytest.approx(first) and losses[-1] < 0.5 * first  # measured 0.279 -> 0.086
    with pytest.raises(ValueError, match="lq of size hq / 4"):
        training_loss(model, hq, hq, gen(0))


@pytest.mark.parametrize("codec", [None, UnshuffleCodec()], ids=["pixels", "latents"])
def test_latent_inn_training_lowers_the_loss(codec):
    hq, lq = pairs(scale=4)
    torch.manual_seed(0)
    model = build({**TINY, "split": "undecimated", "channels": 3 if codec is None else 12})
    losses = train(model, hq, lq, codec=codec)
    assert losses[-1] < 0.5 * losses[0]  # measured 0.266 -> 0.073 (pixels), 0.219 -> 0.066 (latents)
    if codec is not None:
        with pytest.raises(ValueError, match="3 channels but the codec's latent has 12"):
            training_loss(build({**TINY, "split": "undecimated"}), hq, lq, gen(0), codec=codec)


def test_fit_crops_or_pads_to_the_coarse_size():
    y = torch.rand(1, 3, 4, 5, generator=gen(0))
    assert fit(y, torch.zeros(1, 3, 3, 3)).shape == (1, 3, 3, 3)
    padded = fit(y, torch.zeros(1, 3, 5, 6))
    assert padded.shape == (1, 3, 5, 6) and torch.equal(padded[..., :4, :5], y)
    assert torch.equal(padded[..., 4, :5], y[..., 3, :])
