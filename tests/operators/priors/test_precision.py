"""A prior's compute precision: the network under autocast, everything around it float32."""
from __future__ import annotations

import pytest
import torch

from operators.priors import build_prior
from operators.priors.edm_unet import EDMUNet, EDMUNetConfig
from operators.priors.embedded import EmbeddedPixelPrior
from operators.priors.precision import compute_dtype, run_network

TINY = dict(channels=(8, 16), blocks=(1, 1), emb_dim=16, fourier_features=8, groups=4)


def _net() -> EDMUNet:
    net = EDMUNet(EDMUNetConfig(**TINY))
    with torch.no_grad():
        net.out.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(0))
    return net


def test_bfloat16_runs_the_network_in_bfloat16_and_returns_float32_close_to_it():
    net = _net()
    full, low = EmbeddedPixelPrior(net), EmbeddedPixelPrior(net, dtype="bfloat16")
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    a, b = full.denoise(x, 0.1), low.denoise(x, 0.1)
    assert b.dtype == torch.float32
    assert not torch.equal(a, b)  # really computed in the lower precision
    torch.testing.assert_close(b, a, atol=0.02, rtol=0)  # bfloat16 keeps ~3 significant digits
    assert low.nfe.forward == 1


def test_gradients_flow_through_the_autocast_network():
    prior = EmbeddedPixelPrior(_net(), dtype="bfloat16")
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    prior.denoise(x, 0.2).square().sum().backward()  # DPS differentiates D with respect to x
    assert x.grad is not None and x.grad.dtype == torch.float32 and x.grad.abs().sum() > 0


def test_float32_is_the_network_call_unchanged():
    net = _net()
    x, s = torch.rand(1, 3, 8, 8), torch.tensor([0.3])
    assert compute_dtype("float32") is None
    assert torch.equal(run_network(net, None, x, s), net(x, s))


def test_a_bad_dtype_names_the_choices_before_loading_weights(tmp_path):
    with pytest.raises(ValueError, match="dtype must be one of float32, bfloat16, float16, got 'fp8'"):
        build_prior({"name": "embedded", "weights": str(tmp_path / "absent.safetensors"), "dtype": "fp8"})
    with pytest.raises(ValueError, match="dtype must be one of"):
        build_prior({"name": "embedded_latent", "weights": str(tmp_path / "absent.safetensors"), "dtype": "half"})


def test_a_config_names_the_bad_dtype_key_before_any_job_runs():
    from pipelines.config import ConfigError
    from pipelines.registry_check import check_prior

    check_prior({"name": "embedded", "dtype": "bfloat16"}, "methods[0].prior")
    with pytest.raises(ConfigError, match=r"config key 'methods\[0\]\.prior\.dtype': dtype must be one of"):
        check_prior({"name": "embedded", "dtype": "bf16"}, "methods[0].prior")
