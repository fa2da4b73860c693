"""Registry-wide: spec round trip for every entry, key errors, sampling determinism."""
from __future__ import annotations

import json

import pytest
import torch

from operators.degradations import (
    DEGRADATIONS,
    Noise,
    build_degradation,
    sample_degradation,
)
from operators.registry import UnknownNameError

G = lambda s: torch.Generator().manual_seed(s)  # noqa: E731

# One example spec per registry name (a new entry must add one here).
EXAMPLES = {
    "denoise": [{"name": "denoise", "noise_sigma": 0.1}, {"name": "denoise", "noise_poisson_peak": 30.0}],
    "blur": [{"name": "blur", "kind": "gaussian", "sigma": 2.0}, {"name": "blur", "sigma": [2.0, 0.7], "angle": 20},
             {"name": "blur", "kind": "motion"}],
    "sr": [{"name": "sr", "scale": 4, "noise_sigma": 0.01}, {"name": "sr", "scale": 2, "mode": "blur_decimate"},
           {"name": "sr", "scale": 2, "mode": "area"}],
    "inpaint": [{"name": "inpaint", "kind": "random", "fraction": 0.7}, {"name": "inpaint", "kind": "box"},
                {"name": "inpaint", "kind": "freeform"}],
    "colorize": [{"name": "colorize", "noise_sigma": 0.02}],
    "jpeg": [{"name": "jpeg", "quality": 40}],
    "video_codec": [{"name": "video_codec", "codec": "h264", "crf": 30}],
    "compose": [{"name": "compose", "ops": [{"name": "blur", "sigma": 1.0}, {"name": "sr", "scale": 2},
                                            {"name": "jpeg", "quality": 60}], "noise_sigma": 0.0}],
    "realesrgan": [{"name": "realesrgan", "scale": 4}],
    "blind": [{"name": "blind", "scale": 4}],
}
CASES = [(name, spec) for name in DEGRADATIONS for spec in EXAMPLES.get(name, [None])]


@pytest.mark.parametrize("name,spec", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_spec_round_trip_same_outputs(name, spec):
    assert spec is not None, f"add an example spec for {name!r} to EXAMPLES"
    op = build_degradation(spec).bind((1, 3, 16, 16), G(0))
    s = op.spec()
    assert json.loads(json.dumps(s)) == s  # JSON-able
    again = build_degradation(json.loads(json.dumps(s)))
    assert again == op and again.spec() == s
    x = torch.rand(1, 3, 16, 16, generator=G(1))
    if name == "video_codec":
        x = x.expand(3, -1, -1, -1)
    if name == "blind":  # no forward map: the error names it and the blind solvers
        with pytest.raises(NotImplementedError, match="no forward map.*indigo, conditional, irsde"):
            op.forward(x)
        assert op.input_shape((1, 3, 4, 4)) == (1, 3, 16, 16) and op.init_estimate(x[..., :4, :4]).shape == x.shape
        return
    torch.testing.assert_close(again.forward(x), op.forward(x), rtol=0, atol=0)


def test_unknown_name_and_keys_are_listed():
    with pytest.raises(UnknownNameError, match="unknown degradation 'sharpen'.*blur.*denoise"):
        build_degradation({"name": "sharpen"})
    with pytest.raises(ValueError, match="unknown key\\(s\\) factor for degradation 'sr'; valid keys: .*mode.*scale"):
        build_degradation({"name": "sr", "factor": 4})
    with pytest.raises(ValueError, match="'name' key"):
        build_degradation({"scale": 4})


def test_noise_keys_build_the_noise_model():
    op = build_degradation({"name": "sr", "scale": 4, "noise_sigma": 0.01, "noise_poisson_peak": 50})
    assert op.noise == Noise(sigma=0.01, peak=50.0)
    assert op.spec()["noise_poisson_peak"] == 50.0


@pytest.mark.parametrize("name,opts", [("blur", {}), ("blur", {"kind": "motion"}), ("inpaint", {"kind": "freeform"}),
                                       ("inpaint", {"kind": "box"}), ("realesrgan", {})])
def test_sampling_is_deterministic_by_seed(name, opts):
    a = sample_degradation(name, G(7), shape=(1, 3, 32, 32), **opts)
    b = sample_degradation(name, G(7), shape=(1, 3, 32, 32), **opts)
    c = sample_degradation(name, G(8), shape=(1, 3, 32, 32), **opts)
    assert a == b and a.spec() == b.spec()
    assert a != c


def test_bind_is_identity_on_concrete_ops_and_needed_for_masks():
    op = build_degradation({"name": "sr", "scale": 2})
    assert op.bind((8, 8), G(0)) is op
    unbound = build_degradation({"name": "inpaint", "kind": "random", "fraction": 0.5})
    with pytest.raises(ValueError, match="bind"):
        unbound.forward(torch.rand(1, 3, 8, 8))
    bound = unbound.bind((1, 3, 40, 50), G(0))
    assert bound.mask.shape == (40, 50) and abs((~bound.mask).mean() - 0.5) < 0.05
