"""DVDnet: layout and loader (strict keys and shapes), the stages' data flow, the clip-edge
rule, and on the published weights the CBSD68 figure and the video gain over the spatial stage."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from operators.priors import build_prior
from operators.priors.dvdnet import (
    SIGMA_MAX, SIGMA_MIN, DVDnet, DVDnetPrior, DVDnetSpatial, DVDnetTemporal, load_dvdnet, neighbours,
)

from ._data import SHARED_DATA, needs_shared_data

WEIGHTS = SHARED_DATA / "weights" / "dvdnet"
# benchmarks/dvdnet_check.py --cbsd68 20: the first 3 images at sigma 25 (the first 20 give 31.45 dB
# against the MANIFEST's 31.46, see benchmarks/RESULTS.md "DVDnet sanity check")
FIRST3_SIGMA25 = 30.833


def _randomise(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights and BatchNorm statistics, so eval-mode BN is not the identity."""
    g = torch.Generator().manual_seed(seed)
    for name, t in net.state_dict().items():
        if t.is_floating_point():
            scale = 0.05 if name.endswith("weight") and t.ndim == 4 else 0.2
            t.copy_(torch.rand(t.shape, generator=g) + 0.5 if "running_var" in name
                    else scale * torch.randn(t.shape, generator=g))
    return net


def _save(tmp_path, seed: int = 0):
    spatial, temporal = _randomise(DVDnetSpatial(), seed), _randomise(DVDnetTemporal(), seed + 1)
    for net, name in ((spatial, "model_spatial.pth"), (temporal, "model_temp.pth")):
        torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / name)  # as DataParallel
    return spatial, temporal


@pytest.fixture
def tiny(tmp_path) -> DVDnet:
    _save(tmp_path)
    return load_dvdnet(tmp_path, flow="dis")


def test_parameter_counts_match_the_manifest():
    for net, params, tensors in ((DVDnetSpatial(), 854_688, 62), (DVDnetTemporal(), 478_656, 38)):
        assert sum(p.numel() for p in net.parameters()) == params and len(net.state_dict()) == tensors


def test_spatial_stage_is_unfold_noise_first_then_residual(tiny):
    """The MANIFEST's data flow: nn.Unfold 2x2/2 (= pixel_unshuffle), noise map in front, x - estimate."""
    x, sigma = torch.rand(2, 3, 8, 12), torch.tensor([0.1, 0.2])
    n, _, h, w = x.shape
    z = F.unfold(x, kernel_size=2, stride=2).reshape(n, 12, h // 2, w // 2)
    m = sigma.view(-1, 1, 1, 1).expand(n, 3, h // 2, w // 2)
    want = x - F.pixel_shuffle(tiny.spatial.conv_relu_bn(torch.cat([m, z], 1)), 2)
    torch.testing.assert_close(tiny.spatial(x, sigma), want)
    torch.testing.assert_close(tiny.spatial(x[1:], sigma[1:]), want[1:], atol=1e-6, rtol=1e-5)  # eval BN


def test_loader_strips_module_and_is_strict(tmp_path):
    spatial, temporal = _save(tmp_path)
    net = load_dvdnet([tmp_path / "model_spatial.pth", tmp_path / "model_temp.pth"])
    assert not net.training and not net.spatial.training and not net.temporal.training
    for a, b in ((net.spatial, spatial), (net.temporal, temporal)):
        for k, v in b.state_dict().items():
            torch.testing.assert_close(a.state_dict()[k], v, rtol=0, atol=0)
    state = torch.load(tmp_path / "model_temp.pth", weights_only=True)
    state["module.conv1x1.weight"] = state["module.conv1x1.weight"][:, :48]
    torch.save(state, tmp_path / "model_temp.pth")
    with pytest.raises(ValueError, match="(?s)is not a DVDnetTemporal state dict.*size mismatch for conv1x1.weight"):
        load_dvdnet(tmp_path)
    del state["module.conv1x1.weight"]
    torch.save(state, tmp_path / "model_temp.pth")
    with pytest.raises(ValueError, match="Missing key"):
        load_dvdnet(tmp_path)
    with pytest.raises(FileNotFoundError, match="model_spatial.pth and model_temp.pth"):
        load_dvdnet(tmp_path / "nowhere")


def test_clip_edges_clamp_as_the_repository_or_reflect():
    assert neighbours(0, 10) == [0, 0, 0, 1, 2] and neighbours(1, 10) == [0, 0, 1, 2, 3]
    assert neighbours(9, 10) == [7, 8, 9, 9, 9] and neighbours(4, 10) == [2, 3, 4, 5, 6]
    assert neighbours(0, 10, "reflect") == [2, 1, 0, 1, 2] and neighbours(9, 10, "reflect") == [7, 8, 9, 8, 7]
    assert neighbours(0, 1, "reflect") == [0] * 5 and neighbours(1, 2, "reflect") == [1, 0, 1, 0, 1]


def test_video_sizes_sigma_range_and_static_clip(tiny):
    x = torch.rand(3, 3, 17, 23)
    out = tiny.denoise_video(x, 25 / 255)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    with pytest.raises(ValueError, match=r"sigma in \[5, 55\]/255.*got 25 = 6.38e\+03/255"):
        tiny.denoise_video(x, 25)
    with pytest.raises(ValueError, match="trained for sigma"):
        tiny.denoise_video(x, 4 / 255)
    with pytest.raises(ValueError, match=r"RGB frames \(T, 3, H, W\)"):
        tiny.denoise_video(x[:, :1], 25 / 255)
    # a static clip: every neighbour is the centre frame itself (zero flow), so the temporal stage
    # sees 5 copies of the spatial output
    still = torch.rand(1, 3, 16, 20).expand(4, 3, 16, 20)
    spatial = tiny.denoise_frames(still[:1], torch.tensor([0.1])).clamp(0, 1)
    want = tiny.temporal(spatial.repeat(1, 5, 1, 1), torch.tensor([0.1])).clamp(0, 1)
    torch.testing.assert_close(tiny.denoise_video(still, 0.1), want.expand(4, 3, 16, 20), atol=1e-5, rtol=0)


def test_prior_is_the_spatial_stage_with_sigma_clamped(tmp_path):
    _save(tmp_path)
    prior = build_prior({"name": "dvdnet", "weights": str(tmp_path), "flow": "dis"})
    assert isinstance(prior, DVDnetPrior) and prior.video.flow == "dis" and prior.name == "dvdnet"
    assert (prior.sigma_min, prior.sigma_max) == pytest.approx((SIGMA_MIN, SIGMA_MAX))
    x = torch.rand(2, 3, 9, 14)
    torch.testing.assert_close(prior.denoise(x, 0.1), prior.video.denoise_frames(x, torch.tensor([0.1, 0.1])))
    torch.testing.assert_close(prior.denoise(x, 1.0), prior.denoise(x, SIGMA_MAX), rtol=0, atol=0)
    torch.testing.assert_close(prior.denoise(x, 0.0), prior.denoise(x, SIGMA_MIN), rtol=0, atol=0)
    assert prior.denoise(x[:, :1], 0.1).shape == (2, 1, 9, 14) and prior.nfe.forward == 6


@needs_shared_data
def test_published_files_load_strictly():
    net = load_dvdnet(WEIGHTS)
    for stage, name in ((net.spatial, "model_spatial.pth"), (net.temporal, "model_temp.pth")):
        raw = torch.load(WEIGHTS / name, map_location="cpu", weights_only=True)
        assert all(k.startswith("module.") for k in raw)
        want = {k: tuple(v.shape) for k, v in stage.state_dict().items()}
        assert {k[7:]: tuple(v.shape) for k, v in raw.items()} == want
    assert net.spatial.conv_relu_bn[3].running_var.std() > 0  # real BatchNorm statistics, eval mode
    assert not net.spatial.training


@needs_shared_data
@pytest.mark.slow
def test_spatial_stage_reproduces_the_cbsd68_figure():
    from benchmarks.dvdnet_check import cbsd68_check

    scores = cbsd68_check(load_dvdnet(WEIGHTS), 3)
    assert abs(sum(scores) / 3 - FIRST3_SIGMA25) < 0.02, scores


@needs_shared_data
def test_video_denoiser_beats_its_spatial_stage_on_carphone():
    from benchmarks.dvdnet_check import add_noise, load_clip, spatial_only, video_psnr

    clean = load_clip(frames=5)
    noisy = add_noise(clean, 25)
    net = load_dvdnet(WEIGHTS)  # DeepFlow, as the authors
    video = video_psnr(net.denoise_video(noisy, 25 / 255), clean)
    spatial = video_psnr(spatial_only(net, noisy, 25 / 255), clean)
    assert video > spatial + 0.5 and spatial > video_psnr(noisy, clean) + 10, (video, spatial)
