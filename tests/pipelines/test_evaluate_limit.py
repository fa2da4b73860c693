"""evaluate's per-method ``limit``: an expensive method on the first images of each dataset,
compared in the report with the full-set methods on the same images."""
from __future__ import annotations

import numpy as np
import pytest

from operators.media import encode_png
from pipelines.config import ConfigError
from pipelines.evaluate_grid import DatasetConfig, MethodConfig, TaskConfig, plan_grid
from pipelines.evaluate_report import markdown_table

TASK = TaskConfig("denoise", {"name": "denoise", "noise_sigma": 0.1})
PRIOR = {"name": "gaussian"}


def _images(tmp_path, n: int) -> str:
    d = tmp_path / "img"
    d.mkdir()
    for i in range(n):
        (d / f"{i}.png").write_bytes(encode_png(np.full((8, 8, 3), i / 10, np.float32)))
    return str(d)


def _plan(tmp_path, methods, images: str):
    return plan_grid([DatasetConfig("d", images)], [TASK], methods, 0, 8, str(tmp_path), None)[0]


def test_limit_runs_a_method_on_the_first_images_only_and_keeps_its_ids(tmp_path):
    images = _images(tmp_path, 4)
    cheap = MethodConfig("cheap", "solver", solver={"name": "langevin"}, prior=PRIOR, nfe=2)
    ref = MethodConfig("ref", "solver", solver={"name": "diffpir"}, prior=PRIOR, nfe=100)
    full = _plan(tmp_path, [cheap, ref], images)
    limited = _plan(tmp_path, [cheap, MethodConfig(**{**ref.__dict__, "limit": 2})], images)
    ref_rows = [r for r in limited if r["method"] == "ref"]
    assert [r["relative_path"] for r in ref_rows] == ["0.png", "1.png"]
    assert len([r for r in limited if r["method"] == "cheap"]) == 4
    # the ids do not hash the limit: raising it later runs only the new images
    assert {r["id"] for r in ref_rows} <= {r["id"] for r in full}


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_a_bad_limit_names_its_key(bad):
    m = MethodConfig("ref", "solver", solver={"name": "diffpir"}, prior=PRIOR, nfe=10, limit=bad)
    with pytest.raises(ConfigError, match=r"config key 'methods\[1\]\.limit': expected a positive integer"):
        m.validate("methods[1]", ["denoise"])


def _row(method: str, image: int, psnr: float) -> dict:
    return {"dataset": "d", "task": "denoise", "method": method, "source_uri": f"/x/{image}.png", "psnr": psnr,
            "ssim": 0.5, "lq_psnr": 20.0, "lq_ssim": 0.4, "nfe": 1, "nfe_backward": 0, "seconds": 1.0}


def test_the_report_compares_a_subset_method_on_its_own_images():
    methods = [MethodConfig("fast", "solver", solver={"name": "langevin"}, prior=PRIOR, nfe=8),
               MethodConfig("slow", "solver", solver={"name": "diffpir"}, prior=PRIOR, nfe=100, limit=2),
               MethodConfig("tv", "baseline", baseline={"name": "tv"})]
    # fast: 30 and 31 on the first two images, 20 and 20 on the others (mean 25.25);
    # slow: 32 and 30 on the first two (mean 31, above fast's full mean but not paired)
    results = [_row("fast", i, p) for i, p in enumerate([30.0, 31.0, 20.0, 20.0])]
    results += [_row("slow", 0, 32.0), _row("slow", 1, 30.0)]
    results += [_row("tv", i, 24.0) for i in range(4)]
    md = markdown_table(results, [DatasetConfig("d", "x")], [TASK], methods, [], [])
    # best-vs-baseline: only methods run on every image (fast 25.25 vs tv 24.00)
    assert "| denoise | fast | 25.25 | tv | 24.00 | +1.25 |" in md
    # the subset method against fast on the same two images: 31.00 vs 30.50
    assert "| denoise | slow | 2 | 31.00 | fast | 30.50 | +0.50 |" in md
    assert "(`limit`): slow (2)." in md


def test_the_report_gives_each_prior_its_margin_and_names_solvers_below_their_input():
    other = {"name": "ffdnet"}
    methods = [MethodConfig("a", "solver", solver={"name": "langevin"}, prior=PRIOR, nfe=8),
               MethodConfig("b", "solver", solver={"name": "langevin"}, prior=other, nfe=8),
               MethodConfig("tv", "baseline", baseline={"name": "tv"})]
    results = [_row("a", i, 19.0) for i in range(2)] + [_row("b", i, 26.0) for i in range(2)]
    results += [_row("tv", i, 24.0) for i in range(2)]
    md = markdown_table(results, [DatasetConfig("d", "x")], [TASK], methods, [], [])
    assert "| denoise | b | 26.00 | tv | 24.00 | +2.00 |" in md
    assert "| denoise | gaussian | a | 19.00 | tv | 24.00 | -5.00 |" in md
    assert "| denoise | ffdnet | b | 26.00 | tv | 24.00 | +2.00 |" in md
    assert "Solvers below their input's PSNR on d: a on denoise (19.00 < 20.00)." in md
