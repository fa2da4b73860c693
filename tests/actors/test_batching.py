"""Rows of one actor call solved together: each row gets exactly what it gets solved alone.

A pointwise prior (GaussianPrior) makes a batched solve bit-identical to the lone solves;
the embedded conv UNet may round differently at another batch size (CPU kernels pick their
blocking by batch), so it is held to 1e-5 while its noise draws are checked to be identical.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from actors.batching import solve_groups, solve_rows
from actors.columns import no_error, pack, unpack
from actors.evaluate import EvaluateActor
from actors.restore import RestoreActor
from operators.degradations import build_degradation
from operators.priors import build_prior
from operators.seeding import make_generator
from operators.solvers import get_solver, row_config
from operators.solvers.diffpir import solve_diffpir
from operators.solvers.generators import GeneratorBatch
from operators.solvers.posterior import posterior_samples

DEG = {"name": "denoise", "noise_sigma": 0.1}
GAUSSIAN = {"name": "gaussian", "s2": 0.05, "mean": 0.5}
EMBEDDED = {"name": "embedded"}
DIFFPIR = {"name": "diffpir", "nfe": 3, "preset": "none", "zeta": 0.3}  # zeta > 0: fresh noise each step
LANGEVIN = {"name": "langevin", "nfe": 4}


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def _lq(seed: int, h: int = 32, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)


def _row(rid: str, lq: np.ndarray, deg: dict = DEG) -> dict:
    return {"id": rid, "lq": pack(lq), "degradation": json.dumps(deg), **no_error()}


def _restored(rows: list[dict]) -> list[np.ndarray]:
    assert all(r["error_stage"] == "" for r in rows), [r["error_message"] for r in rows]
    return [unpack(r["restored"]) for r in rows]


def _alone_and_batched(solver: dict, prior: dict, rows: list[dict]) -> tuple[list[dict], list[dict]]:
    alone = RestoreActor(solver, prior, seed=7, device="cpu")
    batched = RestoreActor(solver, prior, seed=7, device="cpu", solve_batch=len(rows))
    return [alone.restore_row(r) for r in rows], batched.restore_rows(rows)


def test_generator_batch_draws_each_row_group_from_its_own_generator():
    gens = [torch.Generator().manual_seed(s) for s in (1, 2, 3)]
    eps = GeneratorBatch(gens).randn((6, 3, 5, 5))
    lone = [torch.randn((2, 3, 5, 5), generator=torch.Generator().manual_seed(s)) for s in (1, 2, 3)]
    torch.testing.assert_close(eps, torch.cat(lone), rtol=0, atol=0)
    batch = GeneratorBatch([torch.Generator().manual_seed(s) for s in (1, 2, 3)])
    state = batch.get_state()
    first = batch.randn((3, 4))
    assert not torch.equal(state, batch.get_state())
    torch.testing.assert_close(batch.set_state(state).randn((3, 4)), first, rtol=0, atol=0)
    with pytest.raises(ValueError, match="multiple of 3"):
        batch.randn((4, 2))


@pytest.mark.parametrize("solver", [DIFFPIR, LANGEVIN], ids=["diffpir", "langevin"])
def test_a_batch_of_three_rows_is_bit_identical_to_three_lone_rows_with_a_pointwise_prior(solver):
    rows = [_row(f"r{i}", _lq(i)) for i in range(3)]
    alone, batched = _alone_and_batched(solver, GAUSSIAN, rows)
    for a, b in zip(_restored(alone), _restored(batched), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [int(r["nfe"]) for r in batched] == [int(r["nfe"]) for r in alone] == [solver["nfe"]] * 3
    assert len({float(r["seconds"]) for r in batched}) == 1  # the call's time, split evenly


@pytest.mark.parametrize("solver", [DIFFPIR, LANGEVIN], ids=["diffpir", "langevin"])
def test_the_embedded_unet_draws_the_same_noise_batched_and_agrees_to_1e5(solver):
    """Solver level: after a batched solve each row's generator is where its lone solve left it
    (the same draws, in the same calls), and the images agree to float rounding."""
    prior = build_prior(EMBEDDED)
    op = build_degradation(DEG)
    name = solver["name"]
    config = row_config(name, {k: v for k, v in solver.items() if k not in ("name", "nfe")}, op)[0]
    ys = [torch.from_numpy(_lq(i).transpose(2, 0, 1))[None] for i in range(3)]
    lone_gens = [make_generator(7, f"r{i}", "solve") for i in range(3)]
    batch_gens = [make_generator(7, f"r{i}", "solve") for i in range(3)]
    with torch.no_grad():
        lone = [get_solver(name)(y, op, prior, nfe=solver["nfe"], generator=g, config=config).x
                for y, g in zip(ys, lone_gens)]
        batched = get_solver(name)(torch.cat(ys), op, prior, nfe=solver["nfe"],
                                   generator=GeneratorBatch(batch_gens), config=config).x
    for a, b in zip(lone_gens, batch_gens):
        assert torch.equal(a.get_state(), b.get_state())
    torch.testing.assert_close(batched, torch.cat(lone), rtol=0, atol=1e-5)


def test_actor_with_the_embedded_unet_matches_lone_rows():
    rows = [_row(f"r{i}", _lq(i)) for i in range(3)]
    alone, batched = _alone_and_batched(LANGEVIN, EMBEDDED, rows)
    for a, b in zip(_restored(alone), _restored(batched), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)


def test_posterior_samples_of_two_rows_batched_match_each_row_alone():
    """S = 2 samples of B = 2 rows: one call over 4 images, rows b S .. b S + S - 1 from generator b."""
    rows = [_row(f"r{i}", _lq(i)) for i in range(2)]
    alone, batched = _alone_and_batched({**DIFFPIR, "samples": 2}, GAUSSIAN, rows)
    for a, b in zip(alone, batched, strict=True):
        assert (int(b["samples"]), b["estimate"]) == (2, "mean")
        np.testing.assert_array_equal(unpack(a["restored"]), unpack(b["restored"]))
        np.testing.assert_array_equal(unpack(a["std"]), unpack(b["std"]))
        assert unpack(b["std"]).min() > 0


def test_rows_group_by_shape_degradation_and_config_and_coupled_solvers_run_alone():
    actor = RestoreActor(DIFFPIR, GAUSSIAN, seed=7, device="cpu", solve_batch=3)
    rows = [_row("a", _lq(0)), _row("b", _lq(1)), _row("tall", _lq(2, 40, 32)),
            _row("c", _lq(3)), _row("noisier", _lq(4), {**DEG, "noise_sigma": 0.2}), _row("d", _lq(5))]
    keys = [actor.prepare(r, {}).key() for r in rows]
    assert solve_groups(keys, 3) == [[0, 1, 3], [2], [4], [5]]  # d: the first group is full
    alone = [actor.restore_row(r) for r in rows]
    for a, b in zip(_restored(alone), _restored(actor.restore_rows(rows)), strict=True):
        np.testing.assert_array_equal(a, b)
    ula = RestoreActor({"name": "pnp_ula", "nfe": 3}, GAUSSIAN, seed=7, device="cpu", solve_batch=3)
    assert ula.prepare(rows[0], {}).key() is None  # one power iteration over the batch: never batched
    assert solve_groups([None, None, "k", "k"], 3) == [[0], [1], [2, 3]]


def test_a_bad_row_becomes_an_error_row_and_the_batch_around_it_succeeds():
    rows = [_row("a", _lq(0)), _row("no_mask", _lq(1), {"name": "inpaint"}), _row("b", _lq(2)),
            {**_row("late", _lq(3)), "error_stage": "decode", "error_message": "truncated"}, _row("c", _lq(4))]
    alone, batched = _alone_and_batched(DIFFPIR, GAUSSIAN, rows)
    assert batched[1]["error_stage"] == "restore" and "mask" in batched[1]["error_message"]
    assert (batched[3]["error_stage"], batched[3]["error_message"]) == ("decode", "truncated")
    good = [0, 2, 4]
    for a, b in zip(_restored([alone[i] for i in good]), _restored([batched[i] for i in good]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_failed_batched_solve_is_rerun_row_by_row():
    """A row that only fails inside the solve (here: non-finite input, refused by the solver)
    shares the others' key; its batch fails, the rows rerun alone, and only it errors."""

    def finite_diffpir(y, *args, **kwargs):
        if not torch.isfinite(y).all():
            raise ValueError("non-finite input")
        return solve_diffpir(y, *args, **kwargs)

    actor = RestoreActor(DIFFPIR, GAUSSIAN, seed=7, device="cpu")
    nan = _lq(1)
    nan[3, 4, 0] = np.nan
    rows = [_row("a", _lq(0)), _row("nan", nan), _row("b", _lq(2))]
    tasks = [dataclasses.replace(actor.prepare(r, {}), solve=finite_diffpir) for r in rows]
    assert len({t.key() for t in tasks}) == 1
    out = solve_rows(tasks, seed=7, max_rows=3)
    assert isinstance(out[1], ValueError) and "non-finite" in str(out[1])
    for i in (0, 2):
        expected = unpack(actor.restore_row(rows[i])["restored"])
        np.testing.assert_array_equal(out[i][0].x[0].permute(1, 2, 0).clamp(0, 1).numpy(), expected)


def test_evaluate_actor_batches_rows_of_one_method_and_task():
    spec = json.dumps({"kind": "solver", "solver": {k: v for k, v in DIFFPIR.items() if k != "nfe"},
                       "nfe": 3, "prior": GAUSSIAN})
    hq = [_lq(10 + i) for i in range(3)]
    rows = [{"id": f"e{i}", "image_id": f"i{i}", "lq": pack(_lq(i)), "hq": pack(hq[i]), "degradation": json.dumps(DEG),
             "method_spec": spec, **no_error()} for i in range(3)]
    alone = [EvaluateActor(seed=7, device="cpu").evaluate_row(r) for r in rows]
    batched = EvaluateActor(seed=7, device="cpu", solve_batch=3).evaluate_rows(rows)
    for a, b in zip(alone, batched, strict=True):
        assert b["error_stage"] == "" and np.isfinite(b["psnr"])
        assert (a["psnr"], a["ssim"], a["nfe"]) == (b["psnr"], b["ssim"], b["nfe"])


def test_posterior_checks_a_generator_batch_drew_noise():
    """posterior_samples' "did the solver draw noise" check reads the batch's state."""
    y = torch.from_numpy(np.stack([_lq(i) for i in range(2)]).transpose(0, 3, 1, 2)).contiguous()
    gens = GeneratorBatch([make_generator(7, f"r{i}", "solve") for i in range(2)])
    op, prior = build_degradation(DEG), build_prior(GAUSSIAN)
    with pytest.raises(ValueError, match="drew no noise"):  # RELD draws no noise
        posterior_samples(get_solver("reld"), y, op, prior, nfe=2, generator=gens,
                          config=row_config("reld", {}, op)[0], samples=2)
    noisy = posterior_samples(get_solver("diffpir"), y, op, prior, nfe=2, generator=gens,
                              config=row_config("diffpir", {"preset": "none", "zeta": 0.3}, op)[0], samples=2)
    assert noisy.x.shape == y.shape and noisy.std.mean() > 0
