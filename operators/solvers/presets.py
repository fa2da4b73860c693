"""Per-task solver presets: the settings a solver runs with when a config gives only {name, nfe}.

The presets live in ``configs/presets.yaml`` (chosen on BSDS400 training crops by
``benchmarks/tune_presets.py`` on Ray Tune; the file records how). A solver spec picks one with
``preset:``: ``auto`` (the default) uses the preset of the degradation's task family, a family
name forces that family's preset, ``none`` runs the dataclass defaults. Keys the spec gives
always win over the preset's.

Symbolic values, resolved against the row's degradation:
- ``sigma_max: measurement`` -> ``start_scale`` x the noise level the initial estimate carries
  (``degradation.init_sigma``: sigma_n for denoising, whose estimate is y; the estimated
  coding error for JPEG), or sigma_n where that is larger, floored at ``MIN_START``: the
  schedule starts from the measurement, not at the prior's sigma_max.
- ``sigma_min: measurement`` -> ``end_scale`` x that same level: the schedule also ends near the
  measurement. For Gaussian denoising the MMSE estimate is one denoiser call at sigma_y
  (Tweedie), and steps far below it move a deterministic trajectory away from it (-0.3 to
  -0.4 dB at 20 NFE with FFDNet on BSDS400 crops); ending at 0.8 sigma_y keeps the solver at or
  above the denoiser alone.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from operators.degradations.base import Degradation

PRESETS_FILE = Path(__file__).resolve().parents[2] / "configs" / "presets.yaml"
FAMILIES = ("denoise", "deblur", "deblur_motion", "sr", "inpaint_random", "inpaint_holes", "colorize", "jpeg",
            "refine", "default")
# A family a solver has no preset for takes its parent's before the solver's ``default``: motion
# and given kernels (sharp, far better conditioned than a Gaussian of sigma 2 px) were run with
# the Gaussian-deblur preset until they had their own.
PARENT = {"deblur_motion": "deblur"}
MEASUREMENT = "measurement"
MIN_START = 1.0 / 255
ORCHESTRATION_KEYS = ("preset", "start_scale", "end_scale")
SCALES = {"sigma_max": "start_scale", "sigma_min": "end_scale"}


def task_family(degradation: Degradation | None) -> str:
    """The preset family of an operator: denoise, deblur (Gaussian kernels), deblur_motion
    (motion and given kernels), sr, inpaint_random, inpaint_holes
    (box and free-form masks: generation is needed), colorize, jpeg, refine, or default (chains).
    Video codec artifacts run as denoising at the estimated coding-error level
    (``VideoCodec.prox``), so they take the denoise preset. An operator whose initial estimate
    comes from a learned estimator (a solver's ``init:``) takes ``refine``: the schedule starts
    at the estimate's error level instead of regenerating from a coarse start."""
    if degradation is None:
        return "default"
    if getattr(degradation, "estimator", None) is not None:
        return "refine"
    name = getattr(degradation, "name", "")
    if name == "blur":
        return "deblur" if getattr(degradation, "kind", "gaussian") == "gaussian" else "deblur_motion"
    if name == "video_codec":
        return "denoise"
    if name == "inpaint":
        return "inpaint_random" if getattr(degradation, "kind", "random") == "random" else "inpaint_holes"
    return name if name in FAMILIES else "default"


@functools.lru_cache(maxsize=4)
def _load(path: str) -> dict[str, dict[str, dict[str, Any]]]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"solver presets file not found: {p} (it ships with the repo in configs/)")
    data = yaml.safe_load(p.read_text()) or {}
    for solver, table in data.items():
        bad = sorted(set(table) - set(FAMILIES))
        if bad:
            raise ValueError(f"{p}: solver {solver!r} has unknown task families {bad}; valid: {', '.join(FAMILIES)}")
    return data


def presets(path: str | Path | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """{solver: {family: {key: value}}} as shipped in configs/presets.yaml."""
    return _load(str(path or PRESETS_FILE))


def check_preset(solver: str, preset: str | None) -> None:
    """Raise naming the valid choices when ``preset`` is not auto / none / a family."""
    if preset in (None, "auto", "none") or preset in FAMILIES:
        return
    raise ValueError(f"unknown preset {preset!r} for solver {solver!r}; valid: auto, none, {', '.join(FAMILIES)}")


# A solver that runs another's steps starts from that solver's presets (its own keys win).
INHERITS = {"langevin_video": "langevin"}


def preset_values(solver: str, family: str, path: str | Path | None = None) -> dict[str, Any]:
    """The preset of ``solver`` for ``family`` (falling back to the family's :data:`PARENT`, then
    to its ``default``), or {}; over the preset of the solver it inherits from (:data:`INHERITS`)."""
    base = preset_values(INHERITS[solver], family, path) if solver in INHERITS else {}
    table = presets(path).get(solver, {})
    while family not in table and family in PARENT:
        family = PARENT[family]
    return {**base, **table.get(family, table.get("default", {}))}


def resolve_spec(solver: str, spec: dict[str, Any], degradation: Degradation | None,
                 path: str | Path | None = None) -> tuple[dict[str, Any], str]:
    """(solver config keys, preset used) for one row: preset values overlaid by ``spec``'s own
    keys, symbolic values made concrete for ``degradation``. ``spec`` has no name/nfe."""
    spec = dict(spec)
    preset = spec.pop("preset", "auto")
    check_preset(solver, preset)
    family = task_family(degradation) if preset in (None, "auto") else preset
    values = {} if preset == "none" else preset_values(solver, family, path)
    merged = {**values, **spec}
    level = max(degradation.init_sigma, degradation.sigma_n) if degradation is not None else 0.0
    for key, scale_key in SCALES.items():
        scale = float(merged.pop(scale_key, 1.0))
        if merged.get(key) == MEASUREMENT:
            merged[key] = max(scale * level, MIN_START)
    return merged, "none" if preset == "none" else family
