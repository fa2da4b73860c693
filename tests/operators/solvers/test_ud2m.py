"""UD2M: at its initialisation one outer step is the langevin solver draw for draw; gradients
reach every learned parameter (checkpointed or not); a few steps on a fixed batch lower the
loss; trained unfoldings round-trip through safetensors and refuse another base prior."""
from __future__ import annotations

import pytest
import torch
from solver_testkit import gen

from operators.degradations import Denoise, Noise, SuperResolution
from operators.degradations.blur import Blur
from operators.priors.edm_unet import EDMUNet, EDMUNetConfig
from operators.priors.embedded import EmbeddedPixelPrior
from operators.priors.lora import lora_layers
from operators.priors.paths import shipped_weights
from operators.solvers import get_solver, solver_config
from operators.solvers.unfolded import UD2M, UnfoldingConfig
from operators.solvers.unfolding_file import DEFAULT_UNFOLDING, load_unfolding, save_unfolding

LANGEVIN = dict(delta=(2.0, 3.0, 1.5), sigma_min=0.02, sigma_max=0.5, rho=7.0)


def tiny_prior(seed: int = 0) -> EmbeddedPixelPrior:
    torch.manual_seed(seed)  # test fixture only: nn layers initialise from the global RNG
    net = EDMUNet(EDMUNetConfig(channels=(8, 16), blocks=(1, 1), emb_dim=16, fourier_features=8, groups=4))
    for p in net.parameters():  # EDM zero-inits its output layers; make D depend on its weights
        torch.nn.init.normal_(p, std=0.1)
    return EmbeddedPixelPrior(net)


def problem(op, seed: int = 0, batch: int = 2):
    """x0: smooth 32 x 32 images (bilinear 8 x 8 noise), y = A x0 + n."""
    x0 = torch.nn.functional.interpolate(torch.rand(batch, 3, 8, 8, generator=gen(seed)), size=32, mode="bilinear")
    return x0, op.measure(x0, gen(seed + 1))


@pytest.mark.parametrize("op", [SuperResolution(scale=2, noise=Noise(sigma=0.02)), Denoise(noise=Noise(sigma=0.1)),
                                Blur(sigma=1.5, noise=Noise(sigma=0.01))], ids=["sr", "denoise", "blur"])
def test_one_outer_step_is_langevin_step_for_step(op):
    prior = tiny_prior()
    _, y = problem(op)
    ref, got = [], []
    out = get_solver("langevin")(y, op, prior, nfe=3, generator=gen(5), config=solver_config("langevin", **LANGEVIN),
                                 callback=ref.append)
    model = UD2M(prior, UnfoldingConfig(inner_steps=3, **LANGEVIN), generator=gen(0))  # zero LoRA injected
    assert lora_layers(prior)
    x = model(y, op, 1, gen(5), callback=got.append)
    assert len(got) == len(ref) == 3
    for a, b in zip(ref, got):
        assert a["sigma"] == b["sigma"] and torch.equal(a["denoised"], b["denoised"]) and torch.equal(a["x"], b["x"])
    assert torch.equal(x.clamp(0, 1), out.x)


def test_schedule_ends_given_by_the_solver_config_replace_the_unfoldings():
    """``sigma_max`` / ``sigma_min`` (the JPEG preset starts at the measurement's level): one outer
    step at init is then langevin run with those ends, draw for draw."""
    op = Denoise(noise=Noise(sigma=0.05))
    prior = tiny_prior()
    _, y = problem(op)
    ends = dict(sigma_min=0.03, sigma_max=0.08)
    out = get_solver("langevin")(y, op, prior, nfe=3, generator=gen(5),
                                 config=solver_config("langevin", **{**LANGEVIN, **ends}))
    model = UD2M(prior, UnfoldingConfig(inner_steps=3, **LANGEVIN), lora=False)
    assert torch.equal(model(y, op, 1, gen(5), sigma_range=(0.03, 0.08)).clamp(0, 1), out.x)
    assert not torch.equal(model(y, op, 1, gen(5)).clamp(0, 1), out.x)
    with pytest.raises(ValueError, match="sigma_max must be > 0"):
        solver_config("ud2m", sigma_max=0.0)


def test_gradients_reach_every_learned_parameter_with_and_without_checkpointing():
    op = Blur(sigma=1.0, noise=Noise(sigma=0.02))
    x0, y = problem(op, batch=1)
    grads = {}
    for ckpt in (False, True):
        prior = tiny_prior()
        model = UD2M(prior, UnfoldingConfig(inner_steps=2, lora_rank=2, **LANGEVIN), generator=gen(0))
        with torch.no_grad():  # up = 0 at init makes d/d(down) exactly 0: give the adapters a value
            for layer in lora_layers(prior).values():
                layer.up.weight.normal_(std=0.05, generator=gen(3))
        loss = (model(y, op, 2, gen(7), grad_checkpoint=ckpt) - x0).abs().mean()
        loss.backward()
        grads[ckpt] = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert {"log_delta", "log_sigma", "log_sigma_d"} <= set(grads[False]) and len(grads[False]) > 3
    for name, g in grads[False].items():
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name
        torch.testing.assert_close(grads[True][name], g, rtol=1e-4, atol=1e-7)  # checkpointing is exact


def test_a_few_steps_on_a_fixed_batch_lower_the_loss():
    op = SuperResolution(scale=2, noise=Noise(sigma=0.01))
    x0, y = problem(op, batch=2)
    model = UD2M(tiny_prior(), UnfoldingConfig(inner_steps=2, lora_rank=2, **LANGEVIN), generator=gen(0))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=0.1)
    losses = []
    for _ in range(8):
        loss = (model(y, op, 1, gen(11), grad_checkpoint=True) - x0).abs().mean()  # same noise every step
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0] and losses == sorted(losses, reverse=True), losses  # measured: 0.072 -> 0.021


def test_save_load_round_trip_and_solver_by_path(tmp_path):
    op = SuperResolution(scale=2, noise=Noise(sigma=0.02))
    _, y = problem(op, batch=1)
    prior = tiny_prior()
    model = UD2M(prior, UnfoldingConfig(inner_steps=3, lora_rank=2, **LANGEVIN), generator=gen(0))
    with torch.no_grad():
        for i, p in enumerate(p for p in model.parameters() if p.requires_grad):
            p.add_(0.05 * torch.randn(p.shape, generator=gen(i)))
        expected = model(y, op, 2, gen(4)).clamp(0, 1)
    path = tmp_path / "u.safetensors"
    save_unfolding(model, path, extra={"steps": "0"})
    fresh = tiny_prior()  # same weights, no adapters
    for merge in (False, True):
        loaded = load_unfolding(path, fresh, merge=merge)
        assert loaded.prior is not fresh and not lora_layers(fresh)  # the caller's prior is left as it was
        with torch.no_grad():
            torch.testing.assert_close(loaded(y, op, 2, gen(4)).clamp(0, 1), expected, rtol=1e-5, atol=1e-5)
    out = get_solver("ud2m")(y, op, fresh, nfe=7, generator=gen(4), config=solver_config("ud2m", unfolding=str(path)))
    assert out.nfe == 6 and fresh.nfe.forward == 6  # N = 7 // 3 outer steps of K = 3, counted on the caller's prior
    torch.testing.assert_close(out.x, expected, rtol=1e-5, atol=1e-5)


def test_refuses_a_base_prior_with_other_weights(tmp_path):
    model = UD2M(tiny_prior(0), UnfoldingConfig(inner_steps=2, lora_rank=2), generator=gen(0))
    save_unfolding(model, tmp_path / "u.safetensors")
    with pytest.raises(ValueError, match="trained on base prior EmbeddedPixelPrior:.*this prior is"):
        load_unfolding(tmp_path / "u.safetensors", tiny_prior(1))


def test_solver_errors_are_clear():
    op = Denoise(noise=Noise(sigma=0.1))
    _, y = problem(op, batch=1)
    if not shipped_weights(DEFAULT_UNFOLDING).is_file():
        with pytest.raises(FileNotFoundError, match="no trained unfolding is shipped yet.*train-unfolded"):
            get_solver("ud2m")(y, op, tiny_prior(), nfe=6, generator=gen(0))
    else:  # the shipped unfolding is bound to the embedded prior's weights, not to this one
        with pytest.raises(ValueError, match="was trained on base prior .* but this prior is"):
            get_solver("ud2m")(y, op, tiny_prior(), nfe=6, generator=gen(0))
    with pytest.raises(ValueError, match="nfe must be >= 3"):
        get_solver("ud2m")(y, op, tiny_prior(), nfe=2, generator=gen(0), config={"unfolding": "untrained"})
    out = get_solver("ud2m")(y, op, tiny_prior(), nfe=6, generator=gen(0), config={"unfolding": "untrained"})
    assert out.nfe == 6 and out.extras == {"outer_steps": 2, "inner_steps": 3}


def _perturbed(seed: int, rank: int = 2) -> UD2M:
    model = UD2M(tiny_prior(), UnfoldingConfig(inner_steps=3, lora_rank=rank, **LANGEVIN), generator=gen(0))
    with torch.no_grad():
        for i, p in enumerate(p for p in model.parameters() if p.requires_grad):
            p.add_(0.05 * torch.randn(p.shape, generator=gen(100 * seed + i)))
    return model


def test_an_expert_serves_its_operator_family_and_the_shared_unfolding_every_other(tmp_path):
    """A file with an ``sr`` expert: an SR operator runs the expert (as its own file would), a
    blur operator the shared unfolding (as the file without experts would), bit for bit."""
    from operators.solvers.unfolding_experts import experts, save_expert
    from operators.solvers.unfolding_file import read_unfolding

    shared, expert = _perturbed(1), _perturbed(2)
    save_unfolding(shared, tmp_path / "shared.safetensors")
    save_unfolding(expert, tmp_path / "expert_alone.safetensors")
    save_expert(expert, tmp_path / "both.safetensors", tmp_path / "shared.safetensors", "sr", {"steps": 7})
    meta = read_unfolding(tmp_path / "both.safetensors")[1]
    assert experts(meta)["sr"]["steps_total"] == 7 and set(experts(meta)["sr"]["learned"]) >= {"delta", "sigma_scale"}

    def solve(op, name):
        _, y = problem(op, batch=1)
        return get_solver("ud2m")(y, op, tiny_prior(), nfe=6, generator=gen(4),
                                  config=solver_config("ud2m", unfolding=str(tmp_path / name))).x

    sr, blur = SuperResolution(scale=2, noise=Noise(sigma=0.02)), Blur(sigma=1.5, noise=Noise(sigma=0.01))
    torch.testing.assert_close(solve(sr, "both.safetensors"), solve(sr, "expert_alone.safetensors"), rtol=0, atol=0)
    torch.testing.assert_close(solve(blur, "both.safetensors"), solve(blur, "shared.safetensors"), rtol=0, atol=0)
    assert (solve(sr, "both.safetensors") - solve(sr, "shared.safetensors")).abs().max() > 1e-3
    # replacing the expert keeps one copy; an expert of another layout is refused
    save_expert(shared, tmp_path / "both.safetensors", tmp_path / "both.safetensors", "sr", {"steps": 8})
    assert experts(read_unfolding(tmp_path / "both.safetensors")[1])["sr"]["steps_total"] == 15  # continued
    torch.testing.assert_close(solve(sr, "both.safetensors"), solve(sr, "shared.safetensors"), rtol=0, atol=0)
    with pytest.raises(ValueError, match="expert 'sr': its lora_rank differs"):
        save_expert(_perturbed(3, rank=1), tmp_path / "x.safetensors", tmp_path / "both.safetensors", "sr", {})
    other = UD2M(tiny_prior(), UnfoldingConfig(inner_steps=2, lora_rank=2, **LANGEVIN), generator=gen(0))
    with pytest.raises(ValueError, match="expert 'sr': its config differs"):
        save_expert(other, tmp_path / "x.safetensors", tmp_path / "both.safetensors", "sr", {})
    # a wider LoRA (rank 3 on the rank-2 shared unfolding) joins and loads at its own rank
    wide = _perturbed(3, rank=3)
    save_unfolding(wide, tmp_path / "wide_alone.safetensors")
    save_expert(wide, tmp_path / "both.safetensors", tmp_path / "both.safetensors", "sr", {"steps": 1})
    assert experts(read_unfolding(tmp_path / "both.safetensors")[1])["sr"]["layout"]["lora_rank"] == "3"
    torch.testing.assert_close(solve(sr, "both.safetensors"), solve(sr, "wide_alone.safetensors"), rtol=0, atol=0)
    torch.testing.assert_close(solve(blur, "both.safetensors"), solve(blur, "shared.safetensors"), rtol=0, atol=0)
