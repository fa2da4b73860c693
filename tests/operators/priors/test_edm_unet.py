from __future__ import annotations

import json
import math

import pytest
import torch

from operators.priors.edm_unet import (
    EDMUNet,
    EDMUNetConfig,
    load_edm_unet,
    read_metadata,
    save_edm_unet,
)

TINY = EDMUNetConfig(channels=(8, 16), blocks=(1, 1), emb_dim=16, fourier_features=8, groups=4)


def _randomize_out(net: EDMUNet, seed: int = 0) -> EDMUNet:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if (p == 0).all():  # zero-initialised layers: give them values so F != 0
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return net


@pytest.mark.parametrize("size", [(16, 16), (37, 50), (5, 9)])
def test_any_size_keeps_shape(size):
    net = _randomize_out(EDMUNet(TINY))
    x = torch.rand(2, 3, *size)
    assert net(x, torch.tensor([0.5, 2.0])).shape == x.shape


def test_zero_init_is_c_skip_times_x():
    net = EDMUNet(TINY)
    x = torch.randn(2, 3, 12, 12)
    sigma = torch.tensor([0.1, 3.0])
    c_skip = 0.25 / (sigma**2 + 0.25)
    torch.testing.assert_close(net(x, sigma), c_skip.view(-1, 1, 1, 1) * x, rtol=0, atol=0)


def test_preconditioning_matches_karras_table_1():
    net = EDMUNet(TINY)
    seen = {}

    def fake_backbone(x_in, c_noise):
        seen["x_in"], seen["c_noise"] = x_in, c_noise
        return 2 * x_in + c_noise.view(-1, 1, 1, 1)

    net.backbone = fake_backbone
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    sigma = torch.tensor([0.02, 5.0], dtype=torch.float64)
    s, sd = sigma.view(-1, 1, 1, 1), 0.5
    c_in = 1 / torch.sqrt(s**2 + sd**2)
    expect = sd**2 / (s**2 + sd**2) * x + s * sd / torch.sqrt(s**2 + sd**2) * (2 * c_in * x + torch.log(s) / 4)
    torch.testing.assert_close(net(x, sigma), expect)
    torch.testing.assert_close(seen["c_noise"], torch.log(sigma) / 4)


def test_scalar_sigma_and_gradient_to_input():
    net = _randomize_out(EDMUNet(TINY))
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    net(x, 1.0).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_save_load_round_trip(tmp_path):
    net = _randomize_out(EDMUNet(EDMUNetConfig(**{**TINY.__dict__, "in_channels": 1, "out_channels": 1})))
    path = tmp_path / "w.safetensors"
    save_edm_unet(net, path, extra={"note": "hello"})
    meta = read_metadata(path)
    assert json.loads(meta["config"]) == json.loads(net.config.to_json()) and meta["note"] == "hello"
    back = load_edm_unet(path)
    assert back.config == net.config
    x = torch.rand(1, 1, 10, 10)
    torch.testing.assert_close(back(x, 0.3), net(x, 0.3), rtol=0, atol=0)
    save_edm_unet(net, tmp_path / "h.safetensors", dtype=torch.float16)
    assert (tmp_path / "h.safetensors").stat().st_size < 0.6 * path.stat().st_size
    torch.testing.assert_close(load_edm_unet(tmp_path / "h.safetensors")(x, 0.3), net(x, 0.3), rtol=0, atol=2e-3)


def test_config_rejects_unknown_keys_and_bad_groups():
    with pytest.raises(ValueError, match="unknown EDMUNetConfig keys"):
        EDMUNetConfig.from_json(json.dumps({"channels": [8], "blocks": [1], "bogus": 1}))
    with pytest.raises(ValueError, match="groups"):
        EDMUNetConfig(channels=(12, 24), blocks=(1, 1), groups=8)


def test_default_size_is_small():
    n = sum(p.numel() for p in EDMUNet(EDMUNetConfig()).parameters())
    assert 1e6 < n < 4e6


def test_loss_weight():
    net = EDMUNet(TINY)
    s = torch.tensor([0.5])
    assert math.isclose(net.loss_weight(s).item(), (0.25 + 0.25) / 0.0625)


def test_sigma_zero_returns_x():
    net = _randomize_out(EDMUNet(TINY))
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(net(x, 0.0), x, rtol=0, atol=0)
