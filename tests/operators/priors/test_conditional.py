from __future__ import annotations

import json

import pytest
import torch

from operators.degradations import sample_degradation
from operators.degradations.blind import upsample
from operators.priors.conditional import (
    ConditionalConfig,
    ConditionalUNet,
    build,
    condition,
    load,
    save,
    training_loss,
)
from operators.priors.edm_unet import EDMUNet, EDMUNetConfig, read_metadata, save_edm_unet

TINY_UNET = {"channels": [8, 16], "blocks": [1, 1], "emb_dim": 16, "fourier_features": 8, "groups": 4}


def tiny(target: str = "residual", scale: int = 4) -> ConditionalUNet:
    return build({"scale": scale, "target": target, "unet": TINY_UNET})


def randomize(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if (p == 0).all():  # zero-initialised layers: give them values so F != 0
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return net


def pairs(n: int = 8, size: int = 32, scale: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth colour fields with a sharp edge, degraded by one sampled realesrgan chain."""
    g = torch.Generator().manual_seed(seed)
    hq = upsample(torch.rand(n, 3, 4, 4, generator=g), (size, size))
    hq[..., size // 2:] = (hq[..., size // 2:] + 0.4).clamp(0, 1)
    op = sample_degradation("realesrgan", g, tuple(hq.shape), scale=scale)
    return hq, op.measure(hq, g)


def test_default_is_small_and_residual():
    net = build({})
    assert net.conditional == ConditionalConfig() and net.conditional.target == "residual"
    assert (net.config.in_channels, net.config.out_channels) == (6, 3)
    assert sum(p.numel() for p in net.parameters()) < 1_500_000


@pytest.mark.parametrize("target", ["image", "residual"])
def test_zero_init_is_c_skip_times_x(target):
    net = tiny(target)
    x, mu = torch.randn(2, 3, 12, 12), torch.rand(2, 3, 12, 12) * 2 - 1
    sigma = torch.tensor([0.1, 3.0])
    sd2 = net.config.sigma_data**2  # 0.25**2, DEFAULT_UNET's sigma_data
    c_skip = (sd2 / (sigma**2 + sd2)).view(-1, 1, 1, 1)
    expect = c_skip * x if target == "image" else mu + c_skip * (x - mu)
    torch.testing.assert_close(net(x, sigma, mu), expect, rtol=0, atol=0)


@pytest.mark.parametrize("target", ["image", "residual"])
def test_sigma_zero_returns_x_and_mu_matters(target):
    net = randomize(tiny(target))
    x, mu = torch.randn(2, 3, 9, 14), torch.rand(2, 3, 9, 14) * 2 - 1
    torch.testing.assert_close(net(x, 0.0, mu), x, rtol=0, atol=1e-6)
    d1, d2 = net(x, 0.5, mu), net(x, 0.5, -mu)
    assert d1.shape == x.shape and (d1 - d2).abs().max() > 1e-3  # the condition reaches F


def test_unconditional_edm_unet_unchanged_by_cond_argument():
    net = randomize(EDMUNet(EDMUNetConfig(**{k: tuple(v) if isinstance(v, list) else v
                                              for k, v in TINY_UNET.items()})))
    x = torch.randn(2, 3, 10, 13)
    torch.testing.assert_close(net(x, 0.7), net(x, 0.7, cond=None), rtol=0, atol=0)


def test_build_rejects_unknown_keys_and_wrong_channels():
    with pytest.raises(ValueError, match="colour"):
        build({"colour": True})
    with pytest.raises(ValueError, match="depth"):
        build({"unet": {"depth": 3}})
    with pytest.raises(ValueError, match="6 channels"):
        build({"unet": {"in_channels": 3}})
    with pytest.raises(ValueError, match="scale"):
        build({"scale": 3})


def test_training_loss_is_deterministic_and_checks_sizes():
    net, (hq, lq) = randomize(tiny()), pairs(2)
    a = training_loss(net, hq, lq, torch.Generator().manual_seed(5))
    b = training_loss(net, hq, lq, torch.Generator().manual_seed(5))
    assert a.ndim == 0 and a.item() > 0 and a.item() == b.item()
    with pytest.raises(ValueError, match="x4"):
        training_loss(net, hq, lq[..., :7, :7], torch.Generator())


def test_training_loss_decreases_with_adam():
    torch.manual_seed(0)
    net, (hq, lq) = tiny(), pairs(8)

    def fixed() -> float:  # the same sigmas and noise before and after
        return sum(training_loss(net, hq, lq, torch.Generator().manual_seed(s)).item() for s in range(4))

    before = fixed()
    opt, g = torch.optim.Adam(net.parameters(), lr=2e-3), torch.Generator().manual_seed(1)
    for _ in range(30):
        loss = training_loss(net, hq, lq, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert fixed() < 0.85 * before  # measured 0.59 (0.53-0.72 over three seeds)


def test_save_load_round_trip_and_kind(tmp_path):
    net = randomize(tiny("image", scale=2))
    path = tmp_path / "c.safetensors"
    save(net, path, extra={"steps": "7"})
    meta = read_metadata(path)
    assert meta["kind"] == "conditional_edm" and meta["steps"] == "7"
    assert json.loads(meta["config"])["unet"]["channels"] == [8, 16]
    back = load(path)
    assert back.conditional == net.conditional and not back.training
    x, mu = torch.randn(1, 3, 10, 10), condition(torch.rand(1, 3, 5, 5), (10, 10))
    torch.testing.assert_close(back(x, 0.3, mu), net(x, 0.3, mu), rtol=0, atol=0)
    save_edm_unet(EDMUNet(EDMUNetConfig(channels=(8,), blocks=(1,), groups=4)), tmp_path / "u.safetensors")
    with pytest.raises(ValueError, match="not a conditional diffusion model"):
        load(tmp_path / "u.safetensors")
