"""RestoreActor on numpy batches (no Ray): a normal row, a row arriving with an error, a failure."""
from __future__ import annotations

import json

import numpy as np
import torch

from actors.columns import batch_to_rows, no_error, pack, rows_to_batch, unpack
from actors.restore import RestoreActor
from actors.runtime import hwc_to_nchw, timed_solve
from operators.degradations import build_degradation
from operators.priors import build_prior
from operators.solvers import get_solver, row_config

DEG = {"name": "denoise", "noise_sigma": 0.1}


def _row(rid: str, lq: np.ndarray, **kw) -> dict:
    return {"id": rid, "source_uri": f"/in/{rid}.png", "relative_path": f"{rid}.png", "lq": pack(lq),
            "degradation": json.dumps(DEG), **no_error(), **kw}


def _actor() -> RestoreActor:
    return RestoreActor({"name": "diffpir", "nfe": 3}, {"name": "gaussian", "s2": 0.05, "mean": 0.5}, seed=7,
                        device="cpu", torch_threads=1)


def test_rows_restore_pass_errors_through_and_fail_into_error_rows():
    lq = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    bad = _row("bad", lq)
    bad["degradation"] = json.dumps({"name": "inpaint"})  # no mask: the solve cannot bind it
    batch = rows_to_batch([_row("ok", lq), _row("late", lq, error_stage="decode", error_type="MediaError",
                                                error_message="truncated"), bad])
    ok, late, failed = batch_to_rows(_actor()(batch))
    assert ok["error_stage"] == "" and ok["solver"] == "diffpir" and ok["prior"] == "gaussian"
    restored = unpack(ok["restored"])
    assert restored.shape == (16, 16, 3) and 0 <= restored.min() and restored.max() <= 1
    assert int(ok["nfe"]) == 3 and float(ok["seconds"]) > 0
    assert (late["error_stage"], late["error_message"], len(late["restored"])) == ("decode", "truncated", 0)
    assert failed["error_stage"] == "restore" and "mask" in failed["error_message"]


def test_restore_is_seeded_by_row_with_a_cpu_generator():
    lq = np.random.default_rng(1).random((16, 16, 3)).astype(np.float32)
    actor = _actor()
    a = unpack(actor.restore_row(_row("same", lq))["restored"])
    np.testing.assert_array_equal(a, unpack(actor.restore_row(_row("same", lq))["restored"]))
    assert not np.array_equal(a, unpack(actor.restore_row(_row("other", lq))["restored"]))
    prior = build_prior({"name": "gaussian", "s2": 0.05, "mean": 0.5})
    op = build_degradation(DEG)  # the actor runs the preset of the row's task family
    result, _ = timed_solve(get_solver("diffpir"), hwc_to_nchw(lq), op, prior, 3,
                            row_config("diffpir", {}, op)[0], 7, "same")
    np.testing.assert_allclose(result.x[0].clamp(0, 1).permute(1, 2, 0).numpy(), a, atol=1e-6)
    torch.manual_seed(0)  # the global RNG plays no part
    np.testing.assert_array_equal(a, unpack(actor.restore_row(_row("same", lq))["restored"]))


def test_samples_give_the_mean_the_std_and_say_which_estimate():
    lq = np.random.default_rng(2).random((16, 16, 3)).astype(np.float32)
    prior = {"name": "gaussian", "s2": 0.05, "mean": 0.5}
    one = RestoreActor({"name": "diffpir", "nfe": 3}, prior, seed=7, device="cpu").restore_row(_row("r", lq))
    assert (int(one["samples"]), one["estimate"], len(one["std"])) == (1, "single", 0)
    # preset none: the denoise preset runs diffpir without fresh noise, so its samples coincide
    rows = {e: RestoreActor({"name": "diffpir", "nfe": 3, "samples": 3, "preset": "none",
                             **({"estimate": e} if e else {})}, prior,
                            seed=7, device="cpu").restore_row(_row("r", lq)) for e in (None, "sample")}
    mean, sample = rows[None], rows["sample"]
    assert (int(mean["samples"]), mean["estimate"], sample["estimate"]) == (3, "mean", "sample")
    assert int(mean["nfe"]) == 3  # per batched call: the 3 samples cost 3x that compute
    std = unpack(mean["std"])
    assert std.shape == (16, 16, 3) and std.min() > 0
    np.testing.assert_array_equal(std, unpack(sample["std"]))  # the same 3 draws, summarised twice
    assert not np.array_equal(unpack(mean["restored"]), unpack(sample["restored"]))


def test_init_starts_sr_rows_from_the_estimator_and_refuses_other_operators():
    """solver.init: an x4 SR row runs the refine preset from IMDN's estimate; a denoising row
    (not the operator IMDN learnt) becomes an error row naming the key."""
    from tests.conftest import shared_data

    weights = str(shared_data() / "weights" / "IMDN_x4.pth")
    actor = RestoreActor({"name": "diffpir", "nfe": 2, "init": {"name": "imdn", "weights": weights}},
                         {"name": "gaussian", "s2": 0.05, "mean": 0.5}, seed=7, device="cpu", torch_threads=1)
    lq = np.random.default_rng(3).random((8, 8, 3)).astype(np.float32)
    sr = _row("sr", lq, degradation=json.dumps({"name": "sr", "scale": 4, "noise_sigma": 0.01}))
    ok, bad = actor.restore_rows([sr, _row("noisy", lq)])
    assert ok["error_stage"] == "" and ok["preset"] == "refine" and unpack(ok["restored"]).shape == (32, 32, 3)
    assert bad["error_stage"] == "restore" and "init: imdn estimates x from 4x MATLAB-bicubic" in bad["error_message"]
