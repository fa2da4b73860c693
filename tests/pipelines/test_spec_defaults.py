"""Specs written out to their full defaults at load (pipelines/spec_defaults.py): every solver
and degradation family runs exactly as before, the resolution is idempotent, and a config
that writes a default out hashes like one that leaves it implicit. No Ray."""
from __future__ import annotations

import pytest

from operators.degradations import build_degradation, sample_degradation
from operators.seeding import make_generator
from operators.solvers import CONFIGS, row_config
from operators.solvers.presets import preset_values
from pipelines.config import from_dict
from pipelines.spec_defaults import resolve_degradation, resolve_prior, resolve_solver

DEGRADATIONS = [
    {"name": "denoise", "noise_sigma": 0.1}, {"name": "blur"}, {"name": "blur", "sigma": 1.5, "noise_sigma": 0.01},
    {"name": "blur", "kind": "motion", "size": 9}, {"name": "sr", "scale": 4, "noise_sigma": 0.01},
    {"name": "inpaint"}, {"name": "inpaint", "kind": "box", "fraction": 0.3}, {"name": "colorize"},
    {"name": "jpeg", "quality": 20}, {"name": "realesrgan", "scale": 2},
    {"name": "compose", "ops": [{"name": "blur"}, {"name": "sr", "scale": 2}], "noise_sigma": 0.02},
]
POSTERIOR = ("name", "nfe", "samples", "estimate")
SR_LAM = preset_values("diffpir", "sr")["lam"]


def _keys(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in POSTERIOR}


@pytest.mark.parametrize("spec", DEGRADATIONS, ids=lambda s: s["name"])
def test_a_resolved_degradation_builds_and_samples_the_same_operator(spec):
    full = resolve_degradation(spec)
    assert resolve_degradation(full) == full and build_degradation(full).spec() == build_degradation(spec).spec()
    sampled = resolve_degradation(spec, sampled=True)
    assert resolve_degradation(sampled, sampled=True) == sampled
    shape = (1, 3, 32, 32)
    draw = lambda s: sample_degradation(  # noqa: E731
        s["name"], make_generator(0, "x", "bind"), shape, **{k: v for k, v in s.items() if k != "name"}).spec()
    assert draw(sampled) == draw(spec)  # synth-pairs draws what the spec leaves out, as before


def test_a_blur_without_sigma_keeps_its_drawn_keys_out_for_sampling():
    assert resolve_degradation({"name": "blur"})["sigma"] == 2.0  # restore/evaluate: build_degradation's default
    sampled = resolve_degradation({"name": "blur"}, sampled=True)
    assert "sigma" not in sampled and "angle" not in sampled and sampled["kind"] == "gaussian"
    assert resolve_degradation({"name": "blur", "angle": 30.0}, sampled=True)["angle"] == 30.0


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("preset", [None, "none", "sr"])
def test_a_resolved_solver_runs_every_row_with_the_same_config(name, preset):
    spec = {"name": name, **({} if preset is None else {"preset": preset})}
    for deg in DEGRADATIONS:
        op = build_degradation(deg)
        before = row_config(name, _keys(spec), op)
        for full in (resolve_solver(spec, deg), resolve_solver(spec, None, with_nfe=False)):  # restore / evaluate
            assert row_config(name, _keys(full), op) == before, (deg, full)
            assert resolve_solver(full, deg if "nfe" in full else None, with_nfe="nfe" in full) == full
    full = resolve_solver(spec, DEGRADATIONS[0])
    assert set(CONFIGS[name]().to_dict()) <= set(full) and full["preset"] == (preset or "auto")
    run = {"nfe": 20, "samples": 1, **CONFIGS[name].RUN_DEFAULTS}
    assert (full["nfe"], full["samples"], full["estimate"]) == (run["nfe"], run["samples"], None)


def test_blind_samplers_default_to_their_measured_best_nfe_and_samples():
    """A spec without nfe / samples runs the solver's RUN_DEFAULTS (fewer steps for the blind
    samplers, whose PSNR falls with more); given values win; evaluate's methods bring their nfe."""
    got = {n: resolve_solver({"name": n}) for n in ("langevin", "conditional", "indigo", "irsde")}
    assert {n: (f["nfe"], f["samples"]) for n, f in got.items()} == {
        "langevin": (20, 1), "conditional": (1, 1), "indigo": (2, 1), "irsde": (5, 4)}
    assert got["irsde"]["sampler"] == "posterior" and got["indigo"]["denoiser"] == "conditional"
    mine = resolve_solver({"name": "irsde", "nfe": 20, "samples": 1, "sampler": "euler"})
    assert (mine["nfe"], mine["samples"], mine["sampler"]) == (20, 1, "euler")
    open_ = resolve_solver({"name": "irsde"}, None, with_nfe=False)
    assert "nfe" not in open_ and open_["samples"] == 4


def test_preset_values_stay_symbolic_and_unknown_families_leave_them_to_the_row():
    full = resolve_solver({"name": "diffpir"}, {"name": "denoise", "noise_sigma": 0.1})
    assert full["sigma_max"] == "measurement" and full == {**full, **preset_values("diffpir", "denoise")}
    open_ = resolve_solver({"name": "diffpir"}, None, with_nfe=False)
    assert "nfe" not in open_ and "lam" not in open_ and "sigma_max" not in open_ and open_["rho"] == 7.0


def test_a_resolved_prior_has_its_builders_defaults():
    assert resolve_prior({"name": "gaussian", "mean": 0.5}) == {
        "name": "gaussian", "s2": 0.05, "mean": 0.5, "sigma_min": 1e-3, "sigma_max": 10.0}
    assert resolve_prior({"name": "embedded"}) == {"name": "embedded", "weights": None, "grey": False, "dtype": "float32"}
    assert resolve_prior({"name": "diffusers", "model": "org/x"})["model"] == "org/x"


def test_defaults_written_out_hash_like_defaults_left_out(tmp_path):
    from pipelines.evaluate import EvaluateConfig, EvaluateJob
    from pipelines.restore_images import RestoreImagesConfig, RestoreImagesJob
    from pipelines.synth_pairs import SynthPairsConfig, SynthPairsJob

    base = {"input": str(tmp_path / "in"), "output": str(tmp_path / "out"),
            "degradation": {"name": "sr", "scale": 2, "noise_sigma": 0.02},
            "solver": {"name": "diffpir"}, "prior": {"name": "gaussian", "mean": 0.5}}
    written = {**base, "degradation": {**base["degradation"], "mode": "bicubic", "kernel": None, "index": 0},
               "solver": {"name": "diffpir", "nfe": 20, "samples": 1, "preset": "auto", "tile_size": 256,
                          "lam": SR_LAM},  # the sr preset's value
               "prior": {"name": "gaussian", "mean": 0.5, "s2": 0.05}}
    h = lambda d: RestoreImagesJob(from_dict(RestoreImagesConfig, d)).config_hash()  # noqa: E731
    assert h(base) == h(written)
    assert h({**written, "solver": {**written["solver"], "tile_size": 128}}) != h(base)
    assert h({**written, "solver": {**written["solver"], "lam": 1.0}}) != h(base)  # the dataclass's, not the preset's
    assert h({**written, "prior": {**written["prior"], "s2": 0.1}}) != h(base)

    pairs = {"input": base["input"], "output": base["output"],
             "degradation": [{"name": "realesrgan"}, {"name": "blur"}]}
    out = {**pairs, "degradation": [{"name": "realesrgan", "scale": 4, "chain": None, "noise_sigma": 0.0},
                                    {"name": "blur", "kind": "gaussian", "size": None}]}
    hp = lambda d: SynthPairsJob(from_dict(SynthPairsConfig, d)).config_hash()  # noqa: E731
    assert hp(pairs) == hp(out)
    assert hp({**out, "degradation": [out["degradation"][0], {"name": "blur", "sigma": 2.0}]}) != hp(pairs)  # not drawn

    grid = {"datasets": [{"name": "d", "input": base["input"]}], "output": base["output"],
            "tasks": [{"name": "sr", "degradation": base["degradation"]}],
            "methods": [{"name": "m", "kind": "solver", "solver": {"name": "diffpir"}, "prior": base["prior"],
                         "nfe": 3}]}
    spelled = {**grid, "tasks": [{"name": "sr", "degradation": written["degradation"]}],
               "methods": [{**grid["methods"][0], "solver": {"name": "diffpir", "rho": 7.0, "preset": "auto"},
                            "prior": written["prior"]}]}
    jobs = [EvaluateJob(from_dict(EvaluateConfig, d)) for d in (grid, spelled)]
    assert jobs[0].config_hash() == jobs[1].config_hash()
    row_spec = [j.cfg.methods[0].effective("sr", j.cfg.tasks[0].degradation) for j in jobs]  # hashed into row ids
    assert row_spec[0] == row_spec[1] and row_spec[0]["solver"]["lam"] == SR_LAM


def test_jobs_and_the_cli_see_resolved_configs(tmp_path):
    from pipelines.restore_images import RestoreImagesConfig, RestoreImagesJob

    cfg = from_dict(RestoreImagesConfig, {"input": str(tmp_path), "output": str(tmp_path / "o")})
    job = RestoreImagesJob(cfg)
    assert job.cfg == cfg.resolved() and job.cfg.solver["tile_overlap"] == 64 and job.cfg.prior["grey"] is False
