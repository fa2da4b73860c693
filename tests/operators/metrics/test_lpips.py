"""LPIPS: the real linear layers load; a random backbone runs the full metric; absent weights give a reason."""
from __future__ import annotations

import math

import pytest
import torch
from tests.conftest import shared_data
from safetensors.torch import save_file

from operators.metrics import compute_metrics
from operators.metrics.lpips import LPIPS, LPIPSMetric, load_state_dict
from operators.metrics.lpips_nets import CHANNELS


def _lin(net: str):
    return shared_data() / "weights" / "lpips_v0.1" / f"{net}.pth"


def _random_backbone(net: str, path, seed: int = 0) -> dict[str, torch.Tensor]:
    """A randomly initialised trunk saved as safetensors in torchvision layout (plus a classifier key)."""
    g = torch.Generator().manual_seed(seed)
    shapes = {k: v.shape for k, v in LPIPS(net).backbone.features.state_dict().items()}
    sd = {f"features.{k}": 0.1 * torch.randn(s, generator=g) for k, s in shapes.items()}
    save_file({**sd, "classifier.1.weight": torch.zeros(2, 2)}, str(path))
    return sd


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_real_linear_layers_load(net):
    state = load_state_dict(_lin(net))
    model = LPIPS(net)
    model.load_lin(state)
    assert [tuple(l.weight.shape) for l in model.lins] == [(1, c, 1, 1) for c in CHANNELS[net]]
    for k, lin in enumerate(model.lins):
        assert torch.equal(lin.weight, state[f"lin{k}.model.1.weight"])
        assert (lin.weight >= 0).all()  # v0.1 weights are clamped non-negative


@pytest.mark.parametrize("net", ["alex", "squeeze"])
def test_full_metric_with_random_backbone(net, tmp_path):
    sd = _random_backbone(net, tmp_path / "b.safetensors")
    model, reason = LPIPS.from_paths(net, _lin(net), tmp_path / "b.safetensors")
    assert reason is None and model is not None
    for k, v in model.backbone.features.state_dict().items():
        assert torch.equal(v, sd[f"features.{k}"])
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g)
    with torch.no_grad():
        same, d_xy, d_yx = model(x, x), model(x, y), model(y, x)
    assert same.shape == (2,) and torch.equal(same, torch.zeros(2))
    assert (d_xy > 0).all()
    torch.testing.assert_close(d_xy, d_yx)
    # the metric wrapper gives the same numbers
    metric = LPIPSMetric(net, str(_lin(net)), str(tmp_path / "b.safetensors"))
    torch.testing.assert_close(metric(x, y), d_xy)
    assert metric.reason is None


def test_no_backbone_gives_null_and_reason(monkeypatch):
    monkeypatch.delenv("RESTORAY_LPIPS_BACKBONE", raising=False)
    model, reason = LPIPS.from_paths("alex", _lin("alex"), None)
    assert model is None and "no ImageNet backbone weights configured" in reason
    metric = LPIPSMetric("alex", lin_path=str(_lin("alex")))
    out = metric(torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32))
    assert out.shape == (3,) and all(math.isnan(v) for v in out.tolist())
    assert "backbone" in metric.reason
    notes: dict[str, str] = {}
    res = compute_metrics(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), ["lpips"], notes=notes,
                          overrides={"lpips": metric})
    assert res["lpips"].isnan().all() and notes["lpips"] == metric.reason


def test_missing_file_and_wrong_weights_give_reasons(tmp_path):
    _, reason = LPIPS.from_paths("alex", _lin("alex"), tmp_path / "nope.safetensors")
    assert "not found" in reason and "nope.safetensors" in reason
    _random_backbone("alex", tmp_path / "b.safetensors")
    model, reason = LPIPS.from_paths("alex", _lin("vgg"), tmp_path / "b.safetensors")  # VGG lins into AlexNet
    assert model is None and "could not load" in reason
