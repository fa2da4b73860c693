"""The evaluate grid's blind pieces, without Ray: which (task, method) pairs apply when the
operator is unknown, methods told a wrong operator on purpose (``assume``), and that specs
without ``assume`` (so every existing row id) are unchanged."""
from __future__ import annotations

import pytest

from pipelines.config import ConfigError
from pipelines.evaluate_grid import MethodConfig, TaskConfig, skip_reason

REAL = TaskConfig("realesrgan_x4", {"name": "realesrgan", "scale": 4})
DENOISE = TaskConfig("denoise", {"name": "denoise", "noise_sigma": 0.1})
PRIOR = {"name": "gaussian"}


def test_blind_solvers_run_only_on_unknown_degradations():
    indigo = MethodConfig("indigo", "solver", solver={"name": "indigo"}, prior=PRIOR, nfe=4)
    assert skip_reason(indigo, REAL) is None
    assert "blind solver 'indigo'" in skip_reason(indigo, DENOISE)
    bicubic = MethodConfig("bicubic", "baseline", baseline={"name": "bicubic"})
    assert skip_reason(bicubic, REAL) is None and skip_reason(bicubic, DENOISE)


def test_a_solver_told_a_wrong_operator_applies_and_records_it():
    told = {"name": "sr", "scale": 4, "noise_sigma": 0.02}
    plain = MethodConfig("langevin", "solver", solver={"name": "langevin"}, prior=PRIOR, nfe=4)
    wrong = MethodConfig("langevin_told", "solver", solver={"name": "langevin"}, prior=PRIOR, nfe=4, assume=told)
    assert skip_reason(wrong, REAL) is None
    ula = MethodConfig("ula", "solver", solver={"name": "pnp_ula"}, prior=PRIOR, nfe=4)
    assert "adjoint" in skip_reason(ula, REAL)  # the chain has none; the told operator has one
    assert skip_reason(MethodConfig("ula", "solver", solver={"name": "pnp_ula"}, prior=PRIOR, nfe=4, assume=told),
                       REAL) is None
    spec = wrong.effective(REAL.name, REAL.degradation)
    assert spec["assume"] == told and spec["solver"]["preset"] == "auto"
    assert "assume" not in plain.effective(REAL.name, REAL.degradation)  # row ids of other methods unchanged
    wrong.validate("methods[1]", [REAL.name])
    bad = MethodConfig("x", "solver", solver={"name": "langevin"}, prior=PRIOR, nfe=4, assume={"name": "nope"})
    with pytest.raises(ConfigError, match=r"methods\[2\]\.assume"):
        bad.validate("methods[2]", [REAL.name])
