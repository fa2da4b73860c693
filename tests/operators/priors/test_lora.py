"""LoRA adapters on the embedded EDM UNet and a tiny diffusers UNet: zero at init, merged ==
unmerged, saved apart from the base weights and loaded merged or not, base digest unchanged."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from operators.priors.edm_unet import EDMUNet, EDMUNetConfig
from operators.priors.embedded import EmbeddedPixelPrior
from operators.priors.lora import (
    DIFFUSERS_TARGETS,
    EDM_UNET_TARGETS,
    base_weights_digest,
    inject_lora,
    load_lora,
    lora_layers,
    lora_metadata,
    lora_state_dict,
    merge_lora,
    save_lora,
    unmerge_lora,
    widen_lora_state,
    wrap,
)

TINY = dict(channels=(8, 16), blocks=(1, 1), emb_dim=16, fourier_features=8, groups=4, attention=True)


def tiny_prior(seed: int = 0) -> EmbeddedPixelPrior:
    torch.manual_seed(seed)  # test fixture only: nn layers initialise from the global RNG
    net = EDMUNet(EDMUNetConfig(**TINY))
    for p in net.parameters():  # EDM zero-inits its output layers; make every layer matter
        nn.init.normal_(p, std=0.2)
    return EmbeddedPixelPrior(net)


def randomize_up(model: nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.up.weight.copy_(0.3 * torch.randn(layer.up.weight.shape, generator=g))


def test_injects_by_pattern_and_starts_as_the_base_exactly():
    prior, x = tiny_prior(), torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    before = prior.denoise(x, 0.3)
    names = inject_lora(prior, EDM_UNET_TARGETS, rank=2, alpha=4.0, generator=torch.Generator().manual_seed(0))
    assert "net.enc.0.0.conv1" in names and "net.attn.qkv" in names and "net.attn.proj" in names
    assert all(n.endswith(("conv1", "conv2", "qkv", "proj")) for n in names) and "net.inp" not in names
    assert torch.equal(prior.denoise(x, 0.3), before)  # up = 0: exactly the base
    assert inject_lora(prior, EDM_UNET_TARGETS, rank=2, alpha=4.0) == []  # adapters are not wrapped again
    trainable = [n for n, p in prior.named_parameters() if p.requires_grad]
    assert trainable and all(".down." in n or ".up." in n for n in trainable)  # the base stays frozen
    with pytest.raises(ValueError, match="no Conv2d/Linear layer matches"):
        inject_lora(tiny_prior(), ["net.*.nothing"], rank=2, alpha=2.0)


def test_merged_equals_unmerged_and_unmerge_restores_the_base():
    prior, x = tiny_prior(), torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    base = {k: v.clone() for k, v in prior.state_dict().items()}
    digest = base_weights_digest(prior)
    inject_lora(prior, EDM_UNET_TARGETS, rank=3, alpha=3.0, generator=torch.Generator().manual_seed(0))
    assert base_weights_digest(prior) == digest  # adapters do not change the base digest
    randomize_up(prior)
    unmerged = prior.denoise(x, 0.3)
    assert (unmerged - prior.denoise(x, 0.3)).abs().max() == 0
    merge_lora(prior)
    assert all(layer.merged for layer in lora_layers(prior).values())
    torch.testing.assert_close(prior.denoise(x, 0.3), unmerged, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="unmerge"):
        base_weights_digest(prior)
    unmerge_lora(prior)
    for k, v in prior.state_dict().items():
        if ".down." not in k and ".up." not in k:
            torch.testing.assert_close(v, base[k.replace(".base.", ".")], rtol=0, atol=1e-6)


def test_a_wider_adapter_starts_as_the_narrow_one_and_its_new_rank_trains():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    narrow = tiny_prior()
    inject_lora(narrow, EDM_UNET_TARGETS, rank=2, alpha=4.0, generator=torch.Generator().manual_seed(0))
    randomize_up(narrow)
    wide = tiny_prior()
    inject_lora(wide, EDM_UNET_TARGETS, rank=5, alpha=5.0, generator=torch.Generator().manual_seed(1))
    state = widen_lora_state(wide, lora_state_dict(narrow), lora_metadata(narrow))
    for key, value in state.items():
        getattr(lora_layers(wide)[key.rsplit(".", 2)[0]], key.rsplit(".", 2)[1]).weight.data.copy_(value)
    torch.testing.assert_close(wide.denoise(x, 0.3), narrow.denoise(x, 0.3), rtol=1e-5, atol=1e-5)
    assert not torch.equal(wide.denoise(x, 0.3), tiny_prior().denoise(x, 0.3))  # the adapters act
    layer = next(iter(lora_layers(wide).values()))
    assert layer.down.weight[2:].abs().sum() > 0 and layer.up.weight[:, 2:].abs().sum() == 0  # LoRA's own init
    wide.denoise(x, 0.3).square().mean().backward()
    assert layer.up.weight.grad[:, 2:].abs().sum() > 0  # the added rank gets gradient
    with pytest.raises(ValueError, match="rank 2 < 5"):
        widen_lora_state(narrow, lora_state_dict(wide), lora_metadata(wide))


@pytest.mark.parametrize("merge", [False, True])
def test_save_load_round_trip_merged_or_not(tmp_path, merge):
    prior, x = tiny_prior(), torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    inject_lora(prior, EDM_UNET_TARGETS, rank=2, alpha=2.0, generator=torch.Generator().manual_seed(0))
    randomize_up(prior)
    expected = prior.denoise(x, 0.2)
    save_lora(prior, tmp_path / "a.safetensors")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "a.safetensors"), framework="pt") as f:  # adapters only, no base weights
        assert all(k.endswith((".down.weight", ".up.weight")) for k in f.keys())
    fresh = tiny_prior()
    names = load_lora(fresh, tmp_path / "a.safetensors", merge=merge)
    assert names == sorted(lora_layers(prior)) and all(m.merged == merge for m in lora_layers(fresh).values())
    torch.testing.assert_close(fresh.denoise(x, 0.2), expected, rtol=1e-5, atol=1e-5)


def test_linear_and_strided_conv_adapters_merge_exactly():
    g = torch.Generator().manual_seed(0)
    for base, x in ((nn.Linear(6, 5), torch.randn(4, 6, generator=g)),
                    (nn.Conv2d(3, 4, 3, stride=2, padding=1, padding_mode="reflect"),
                     torch.randn(2, 3, 9, 9, generator=g))):
        layer = wrap(base, rank=2, alpha=1.0, generator=g)
        with torch.no_grad():
            layer.up.weight.normal_(generator=g)
        out = layer(x)
        layer.merge()
        torch.testing.assert_close(layer(x), out, rtol=1e-5, atol=1e-5)


def test_diffusers_unet_attention_and_convs():
    diffusers = pytest.importorskip("diffusers")
    from operators.priors.diffusers_backend import DiffusersPrior

    torch.manual_seed(0)  # test fixture only: diffusers initialises weights from the global RNG
    unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
        norm_num_groups=4, attention_head_dim=4, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    prior = DiffusersPrior(unet, torch.linspace(0.999, 0.01, 100))
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    before = prior.denoise(x, 0.2)
    names = inject_lora(prior, DIFFUSERS_TARGETS, rank=2, alpha=2.0, generator=torch.Generator().manual_seed(0))
    assert {n.rsplit(".", 1)[-1] for n in names} >= {"to_q", "to_k", "to_v", "conv1", "conv2"}
    assert any(n.endswith("to_out.0") for n in names)
    assert torch.equal(prior.denoise(x, 0.2), before)
    randomize_up(prior)
    unmerged = prior.denoise(x, 0.2)
    assert (unmerged - before).abs().max() > 1e-4
    merge_lora(prior)
    torch.testing.assert_close(prior.denoise(x, 0.2), unmerged, rtol=1e-4, atol=1e-5)
