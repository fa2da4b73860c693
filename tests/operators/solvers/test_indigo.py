"""LatentINDIGO: guidance steps reduce ||y - c|| (PixelINN) and move z0 toward z_inv
(LatentINN); refinement works on a copy; Gaussian-weighted latent tiles agree with the whole
latent and leave no seam; whole runs with tiny random INNs from tmp_path; clear errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from solver_testkit import gaussian_prior, gen

from operators.degradations import sample_degradation
from operators.degradations.blind import Blind, upsample
from operators.priors.base import Prior
from operators.priors.edm_unet import EDMUNet, EDMUNetConfig
from operators.priors.embedded import EmbeddedPixelPrior
from operators.priors.inn import build, save
from operators.solvers.config import build_config
from operators.solvers.generators import GeneratorBatch
from operators.solvers.indigo import (
    IndigoConfig, inn_model, latent_guidance, pixel_guidance, refine, refiner, solve_indigo, train_command,
)  # fmt: skip
from operators.solvers.tiling import TiledPrior, tile_starts

TINY = dict(width=8, embed_dim=8)
REPO = Path(__file__).resolve().parents[3]


def random_inn(seed: int = 0, std: float = 0.02, **config):
    """A tiny INN with every weight random (close to the plain Haar transform for small std)."""
    torch.manual_seed(seed)  # nn layers initialise from the global RNG
    model = build({**TINY, **config})
    for p in model.parameters():
        torch.nn.init.normal_(p, std=std)
    return model.requires_grad_(False)


def smooth(shape, seed: int = 0) -> torch.Tensor:
    """Smooth images in [0, 1]: bilinear upsampling of 6 x 6 noise."""
    return F.interpolate(torch.rand(*shape[:2], 6, 6, generator=gen(seed)), size=shape[-2:], mode="bilinear")


def problem(batch: int = 1, size: int = 32):
    x = smooth((batch, 3, size, size))
    return x, F.avg_pool2d(x, 4) + 0.01 * torch.randn(batch, 3, size // 4, size // 4, generator=gen(9))


def residual(inn, x, y, e):
    return float((inn(x, e=e).c - y).norm())


# -- one guidance step ------------------------------------------------------------------------
def test_untrained_pixel_guidance_projects_the_coarse_band_onto_y():
    """Zero predict / update nets: c = 4 x 4 block mean and x_inv - x = up(y - c), so both terms
    have gradient 2 up(c - y) and step 1 / (2 (w_y + w_p)) lands exactly on c = y."""
    inn = random_inn(std=0.0)
    x, y = smooth((1, 3, 32, 32), seed=3), problem()[1]
    e = inn.embed(y)
    cfg = IndigoConfig(step=0.25, w_y=1.0, w_p=1.0)
    x_new, r = pixel_guidance(inn, gaussian_prior(), x, y, e, (32, 32), cfg)
    assert float(r) == pytest.approx(residual(inn, x, y, e), rel=1e-5) and float(r) > 0.3
    assert residual(inn, x_new, y, e) < 1e-5


def test_a_steep_inn_never_makes_the_guidance_loss_rise():
    """Weights 5x the near-Haar ones: a plain step of 0.2 overshoots (loss 2.8e4 -> 3.2e7); backtracking keeps the
    step's loss at or below the start's (x_inv held fixed, as in the step)."""
    inn = random_inn(std=0.1)
    x, y = smooth((1, 3, 32, 32), seed=3), problem()[1]
    e = inn.embed(y)
    c, d = inn(x, e=e)
    x_inv = inn.inverse(y, d, e=e, size=(32, 32))

    def loss(v):
        return float(16 * (inn(v, e=e).c - y).pow(2).sum() + (x_inv - v).pow(2).sum())

    x_new, _ = pixel_guidance(inn, gaussian_prior(), x, y, e, (32, 32), IndigoConfig(step=0.2))
    assert loss(x_new) <= loss(x) and torch.isfinite(x_new).all()


def test_conditional_denoiser_replaces_the_prior():
    """``denoiser: conditional``: the conditional model bound to upsample(y) is the denoiser;
    the job's prior is never called; deterministic, x4 output, one NFE per step."""
    y = problem()[1]
    prior = gaussian_prior()
    cfg = IndigoConfig(denoiser="conditional", conditional_weights="untrained", weights="untrained")
    out = solve_indigo(y, Blind(4), prior, nfe=3, generator=gen(1), config=cfg)
    assert out.x.shape == (1, 3, 32, 32) and out.nfe == 3 and prior.nfe.forward == 0
    assert torch.equal(out.x, solve_indigo(y, Blind(4), prior, nfe=3, generator=gen(1), config=cfg).x)
    with pytest.raises(ValueError, match="denoiser"):
        IndigoConfig(denoiser="nope")


def test_defaults_run_the_conditional_model_from_its_start():
    """The default denoiser is the conditional model, started at 4.0 (its few-step sampler's
    start); with ``denoiser: prior`` the start is 0.4."""
    y = problem()[1]
    run = lambda **c: solve_indigo(y, Blind(4), gaussian_prior(), nfe=2, generator=gen(1), config=dict(
        conditional_weights="untrained", weights="untrained", **c)).x
    assert IndigoConfig().denoiser == "conditional" and IndigoConfig.RUN_DEFAULTS == {"nfe": 2}
    assert torch.equal(run(), run(sigma_start=4.0)) and not torch.equal(run(), run(sigma_start=0.4))
    prior = lambda **c: run(denoiser="prior", **c)
    assert torch.equal(prior(), prior(sigma_start=0.4)) and not torch.equal(prior(), prior(sigma_start=4.0))


@pytest.mark.parametrize("latent", [False, True], ids=["pixel-prior", "latent-prior"])
def test_pixel_guidance_steps_reduce_the_residual(latent):
    inn, prior = random_inn(), gaussian_prior(latent=latent)
    x, y = smooth((1, 3, 32, 32), seed=3), problem()[1]
    e = inn.embed(y)
    z = prior.encode(x)
    cfg = IndigoConfig(step=0.05)
    res = []
    for _ in range(4):
        z, r = pixel_guidance(inn, prior, z, y, e, (32, 32), cfg)
        res.append(float(r))
    res.append(residual(inn, prior.decode(z), y, e))
    assert all(b < a for a, b in zip(res, res[1:])) and res[-1] < 0.5 * res[0], res


def test_latent_guidance_moves_z0_toward_z_inv():
    inn = random_inn(std=0.05, split="undecimated", channels=12)
    z0, z_mu = torch.randn(2, 12, 10, 9, generator=gen(0)), torch.randn(2, 12, 10, 9, generator=gen(1))
    e = inn.embed(torch.rand(2, 3, 5, 5, generator=gen(2)))
    z_inv = inn.inverse(z_mu, inn(z0, e=e).d, e=e)
    z_new, r = latent_guidance(inn, z0, z_mu, e, eta=0.3)
    assert torch.allclose((z_new - z_inv).flatten(1).norm(dim=1), 0.7 * (z0 - z_inv).flatten(1).norm(dim=1), rtol=1e-5)
    assert torch.allclose(r, (inn(z0, e=e).c - z_mu).flatten(1).norm(dim=1))
    flat = random_inn(std=0.0, split="undecimated", channels=12)  # zero nets: z_inv swaps c for z_mu
    c0 = flat(z0, e=e).c
    assert torch.allclose(latent_guidance(flat, z0, z_mu, e, 0.3)[0], z0 + 0.3 * (z_mu - c0), atol=1e-5)


def test_refinement_fits_a_copy_and_leaves_the_model_untouched():
    inn = random_inn()
    x, y = problem()
    e = inn.embed(y)
    state = {k: v.clone() for k, v in inn.state_dict().items()}
    model, opt = refiner(inn, lr=1e-3)
    before = (model(x, e=e).c - y).abs().mean()
    refine(model, opt, x, y, e, steps=10)
    assert (model(x, e=e).c - y).abs().mean() < 0.9 * before
    assert all(torch.equal(v, state[k]) for k, v in inn.state_dict().items())


# -- Alg. 3: Gaussian-weighted latent tiles ----------------------------------------------------
class BoxPrior(Prior):
    """A smoothing "denoiser" with zero padding (a 5 x 5 box): tile edges see dark borders."""

    name, sigma_min, sigma_max = "box", 0.002, 10.0

    def _denoise(self, x, sigma, prompt):
        return F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=True)


def seam_ratio(img: torch.Tensor, tile: int, overlap: int) -> float:
    """Mean |x[j] - x[j - 1]| across tile borders (starts, ends, overlap middles) over the same
    elsewhere, the larger of rows and columns."""
    ratios = []
    for dim in (-1, -2):
        d = img.diff(dim=dim).abs().movedim(dim, 0)
        s = tile_starts(img.shape[dim], tile, overlap)
        pos = {p - 1 for p in set(s[1:]) | {a + tile for a in s[:-1]} | {(a + b + tile) // 2 for a, b in zip(s, s[1:])}}
        rest = [j for j in range(d.shape[0]) if j not in pos]
        ratios.append(float(d[sorted(pos)].mean() / d[rest].mean()))
    return max(ratios)


def test_gaussian_tiles_reproduce_a_pointwise_prior():
    prior = gaussian_prior()
    x = torch.rand(2, 3, 45, 38, generator=gen(0))
    out = TiledPrior(prior, max_pixels=0, tile=16, overlap=4, window="gaussian").denoise(x, 0.3)
    assert torch.allclose(out, prior._denoise(x, torch.full((2,), 0.3), None), atol=1e-6)


@pytest.mark.parametrize("inn", ["pixel", "latent"])
def test_tiled_and_whole_latent_agree_without_seams(inn):
    x = smooth((1, 3, 96, 96))
    y = F.avg_pool2d(x, 4)

    def run(**tiles):
        cfg = dict(inn=inn, denoiser="prior", weights="untrained", refine_steps=0, sigma_start=0.3, **tiles)
        return solve_indigo(y, Blind(4), BoxPrior(), nfe=4, generator=gen(2), config=cfg)

    whole, tiled, hard = run(), run(tile=32, tile_overlap=8), run(tile=32, tile_overlap=0)
    assert whole.nfe == tiled.nfe == 4
    # measured: max |tiled - whole| 2.0e-4 (pixel) / 2.4e-4 (latent); abutting tiles 0.36 / 0.49
    assert float((tiled.x - whole.x).abs().max()) < 1e-3 < 0.1 < float((hard.x - whole.x).abs().max())
    assert seam_ratio(tiled.x, 32, 8) < 1.02 * seam_ratio(whole.x, 32, 8)
    assert seam_ratio(hard.x, 32, 0) > 1.1 * seam_ratio(whole.x, 32, 0)  # the check sees a seam


# -- whole runs --------------------------------------------------------------------------------
def tiny_unet_prior() -> EmbeddedPixelPrior:
    torch.manual_seed(0)
    net = EDMUNet(EDMUNetConfig(channels=(8, 16), blocks=(1, 1), emb_dim=16, fourier_features=8, groups=4))
    for p in net.parameters():  # EDM zero-inits its output layers; make D depend on its weights
        torch.nn.init.normal_(p, std=0.1)
    return EmbeddedPixelPrior(net)


@pytest.mark.parametrize("inn,prior", [("pixel", "unet"), ("pixel", "latent"), ("latent", "pixel"),
                                       ("latent", "latent")])
def test_runs_with_saved_random_weights_deterministically(tmp_path, inn, prior):
    prior = tiny_unet_prior() if prior == "unet" else gaussian_prior(latent=prior == "latent")
    model = random_inn(**({} if inn == "pixel" else dict(split="undecimated", channels=prior.channels)))
    path = tmp_path / "inn.safetensors"
    save(model, path)
    y = torch.rand(2, 3, 7, 9, generator=gen(0))
    steps = []
    cfg = dict(inn=inn, denoiser="prior", weights=str(path))
    out = solve_indigo(y, Blind(4), prior, nfe=4, generator=gen(1), config=cfg, callback=steps.append)
    assert out.x.shape == (2, 3, 28, 36) and torch.isfinite(out.x).all() and 0 <= out.x.min() <= out.x.max() <= 1
    assert out.nfe == 4 and out.nfe_backward == 0 and [s["step"] for s in steps] == [0, 1, 2, 3]
    assert torch.equal(out.x, solve_indigo(y, Blind(4), prior, nfe=4, generator=gen(1), config=cfg).x)
    assert not torch.equal(out.x, solve_indigo(y, Blind(4), prior, nfe=4, generator=gen(2), config=cfg).x)
    used = inn_model(IndigoConfig(**cfg), prior, 4, 3, y.device)  # the cached model: never refined in place
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in used.state_dict().items())


def test_rows_do_not_depend_on_their_batch(tmp_path):
    """Per-image INN copies are refined: a row solved in a batch equals its lone solve."""
    save(random_inn(), tmp_path / "inn.safetensors")
    y = torch.rand(2, 3, 6, 6, generator=gen(0))
    cfg = dict(denoiser="prior", weights=str(tmp_path / "inn.safetensors"), refine_steps=2)
    both = solve_indigo(y, Blind(4), gaussian_prior(), nfe=3, generator=GeneratorBatch([gen(1), gen(2)]), config=cfg).x
    for b in range(2):
        alone = solve_indigo(y[b:b + 1], Blind(4), gaussian_prior(), nfe=3, generator=gen(b + 1), config=cfg).x
        assert torch.allclose(both[b:b + 1], alone, atol=1e-5)


def test_only_the_scale_of_the_degradation_is_read():
    x = smooth((1, 3, 32, 32))
    op = sample_degradation("realesrgan", gen(0), tuple(x.shape), scale=4)
    y = op.measure(x, gen(0))
    cfg = dict(denoiser="prior", weights="untrained", refine_steps=1)
    out = solve_indigo(y, op, gaussian_prior(), nfe=3, generator=gen(1), config=cfg)
    assert torch.equal(out.x, solve_indigo(y, Blind(4), gaussian_prior(), nfe=3, generator=gen(1), config=cfg).x)


def test_guidance_beats_the_unguided_start_on_a_known_blur():
    """Untrained PixelINN (c = block mean) on y = 4 x 4 block means: guidance pulls the output's
    block means toward y (the default step corrects 80% of the residual per step), closer than the
    bicubic start and far closer than no guidance (step 0)."""
    x, y = problem(size=32)
    prior = gaussian_prior(s2=0.05)
    run = lambda **c: solve_indigo(y, Blind(4), prior, nfe=6, generator=gen(1), config=dict(denoiser="prior", weights="untrained", **c)).x
    err = lambda v: float((F.avg_pool2d(v, 4) - y).norm())
    guided = err(run())  # measured 0.17, bicubic 0.29, unguided 2.20
    assert guided < 0.7 * err(upsample(y, (32, 32))) and guided < 0.1 * err(run(step=0.0))


# -- clear errors ------------------------------------------------------------------------------
def test_missing_weights_name_the_training_job(tmp_path):
    y = torch.rand(1, 3, 4, 4, generator=gen(0))
    for inn, config in (("pixel", "train-inn"), ("latent", "train-latent-inn-image")):
        command = train_command(inn, "pixel")
        assert command == f"restoray run configs/{config}.yaml" and (REPO / "configs" / f"{config}.yaml").is_file()
        with pytest.raises(FileNotFoundError, match=command.replace(".", r"\.")):
            solve_indigo(y, Blind(4), gaussian_prior(), nfe=2, generator=gen(0),
                         config=dict(inn=inn, weights=str(tmp_path / "absent.safetensors")))
    assert train_command("latent", "latent") == "restoray run configs/train-latent-inn.yaml"


def test_mismatched_inn_is_refused(tmp_path):
    y = torch.rand(1, 3, 4, 4, generator=gen(0))
    save(random_inn(), tmp_path / "pixel.safetensors")
    save(random_inn(split="undecimated"), tmp_path / "latent3.safetensors")
    solve = lambda op, prior, **c: solve_indigo(y, op, prior, nfe=2, generator=gen(0), config=dict(denoiser="prior", **c))
    with pytest.raises(ValueError, match="PixelINN is x4 on 3 channels, the task is x2"):
        solve(Blind(2), gaussian_prior(), weights=str(tmp_path / "pixel.safetensors"))
    with pytest.raises(ValueError, match="LatentINN has 3 channels, prior 'gaussian' has 12"):
        solve(Blind(4), gaussian_prior(latent=True), inn="latent", weights=str(tmp_path / "latent3.safetensors"))
    with pytest.raises(ValueError, match="inn='latent' needs a 'undecimated' INN"):
        solve(Blind(4), gaussian_prior(), inn="latent", weights=str(tmp_path / "pixel.safetensors"))


def test_config_checks_and_round_trip():
    cfg = IndigoConfig(inn="latent", tile=32, tile_overlap=8, eta=0.1)
    assert build_config(IndigoConfig, "indigo", cfg.to_dict()) == cfg
    for bad in (dict(tile=16), dict(eta=1.5), dict(inn="both"), dict(sigma_start=0.0), dict(refine_steps=-1)):
        with pytest.raises(ValueError):
            IndigoConfig(**bad)
