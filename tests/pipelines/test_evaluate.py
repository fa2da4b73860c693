"""evaluate job on a real local Ray: the grid (images x applicable (task, method)), the same y
for every method, the markdown table, comparison grids, MLflow, resume, config errors."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipelines.cli import load_job_config, main
from pipelines.config import ConfigError, from_dict
from pipelines.evaluate import PANEL_COLUMNS, EvaluateConfig, EvaluateJob, run
from pipelines.job import run_job
from pipelines.tables import read_table
from tests.conftest import mlflow_store

REPO = Path(__file__).resolve().parents[2]
GAUSSIAN = {"name": "gaussian", "s2": 0.05, "mean": 0.5}
TASKS = [
    {"name": "denoise", "degradation": {"name": "denoise", "noise_sigma": 0.1}},
    {"name": "sr_x2", "degradation": {"name": "sr", "scale": 2, "noise_sigma": 0.01}},
    {"name": "inpaint", "degradation": {"name": "inpaint", "kind": "random", "fraction": 0.5, "noise_sigma": 0.01}},
    {"name": "jpeg", "degradation": {"name": "jpeg", "quality": 20}},
]
METHODS = [
    {"name": "diffpir", "kind": "solver", "solver": {"name": "diffpir"}, "prior": GAUSSIAN, "nfe": 3},
    {"name": "ddnm", "kind": "solver", "solver": {"name": "ddnm"}, "prior": GAUSSIAN, "nfe": 3},
    {"name": "pinv", "kind": "baseline", "baseline": {"name": "pinv"}},
    {"name": "tv", "kind": "baseline", "baseline": {"name": "tv", "iters": 20}},
    {"name": "wiener", "kind": "baseline", "baseline": {"name": "wiener"}},
]
# applicable (task, method) pairs: diffpir needs an exact prox (noiseless JPEG has one: the
# projection onto its quantization constraint set), ddnm a pinv or that projection, pinv no
# JPEG, tv everything, wiener denoise (and blur) only
APPLICABLE = {("denoise", m) for m in ("diffpir", "ddnm", "pinv", "tv", "wiener")} | {
    (t, m) for t in ("sr_x2", "inpaint") for m in ("diffpir", "ddnm", "pinv", "tv")} | {("jpeg", "tv"), ("jpeg", "diffpir"), ("jpeg", "ddnm")}


def _images(root: Path, n: int = 2) -> list[str]:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        h, w = 44 + 4 * i, 50
        yy, xx = np.mgrid[0:h, 0:w]
        img = 0.5 + 0.3 * np.sin(xx / (3 + i))[..., None] * np.cos(yy / 5)[..., None] + rng.normal(0, 0.03, (h, w, 3))
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(root / f"img{i}.png")
        names.append(f"img{i}.png")
    return names


def _config(tmp_path, **kw) -> EvaluateConfig:
    data = {"datasets": [{"name": "tiny", "input": str(tmp_path / "in"), "crop": 40, "limit": None}],
            "tasks": TASKS, "methods": METHODS, "output": str(tmp_path / "out"), "seed": 5, "comparisons": 1,
            "ray": {"actors": 1, "batch_size": 1},
            "mlflow": {"tracking_uri": mlflow_store(tmp_path), "experiment": "test"}}
    data.update(kw)
    cfg = from_dict(EvaluateConfig, data)
    cfg.validate()
    return cfg


def _rows(path: Path) -> list[dict]:
    return pq.read_table(str(path)).to_pylist()


def test_grid_same_inputs_table_and_mlflow(ray_local, tmp_path):
    images = _images(tmp_path / "in")
    cfg = _config(tmp_path)
    summary = run(cfg)
    rows = _rows(tmp_path / "out" / "results")
    assert not (tmp_path / "out" / "errors").exists()
    assert sorted((r["image"], r["task"], r["method"]) for r in rows) == sorted(
        (i, t, m) for i in images for t, m in APPLICABLE)
    assert summary.grid == summary.total_results == len(images) * len(APPLICABLE)
    for r in rows:
        assert (r["width"], r["height"]) == (40, 40) and r["dataset"] == "tiny" and r["seed"] == 5
        assert np.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1 and r["seconds"] >= 0
        assert r["nfe"] == (3 if r["kind"] == "solver" else 0) and r["nfe_backward"] == 0
    # every method of an (image, task) restored the same y: the input's scores agree ...
    by_pair = defaultdict(set)
    for r in rows:
        by_pair[(r["image"], r["task"])].add(round(r["lq_psnr"], 9))
    assert all(len(v) == 1 for v in by_pair.values())
    # ... and pinv, deterministic, returns clamp(y) itself on denoising
    for r in rows:
        if r["method"] == "pinv" and r["task"] == "denoise":
            assert r["psnr"] == pytest.approx(r["lq_psnr"], abs=1e-4)
    # different tasks of one image get different draws; the inputs differ across images
    assert len({next(iter(v)) for v in by_pair.values()}) == len(by_pair)

    md = (tmp_path / "out" / "results.md").read_text()
    assert md == summary.markdown and "### tiny (2 images, centre crop 40)" in md
    assert "| denoise | wiener | 2 |" in md and "| jpeg | tv | 2 |" in md
    assert "wiener on jpeg" in md and "pinv on jpeg" in md  # skipped pairs listed
    assert md in summary.table()
    grids = sorted(p.name for p in (tmp_path / "out" / "comparisons").glob("*.png"))
    assert grids == [f"tiny__img0__{t['name']}.png" for t in sorted(TASKS, key=lambda t: t["name"])]
    with Image.open(tmp_path / "out" / "comparisons" / "tiny__img0__denoise.png") as g:
        assert g.width > 6 * g.height // 2  # LQ | 5 methods | reference
        first_grid = np.asarray(g.convert("RGB"))

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=summary.tracking_uri)
    logged = client.get_run(summary.run_id)
    tv_denoise = np.mean([r["psnr"] for r in rows if (r["task"], r["method"]) == ("denoise", "tv")])
    assert logged.data.metrics["tiny/denoise/tv/psnr"] == pytest.approx(tv_denoise)
    assert logged.data.metrics["results"] == len(rows)
    arts = {a.path for a in client.list_artifacts(summary.run_id)}
    assert {"results.md", "results", "comparisons", "config.yaml", "psnr_vs_seconds__tiny.png"} <= arts
    with Image.open(tmp_path / "out" / "psnr_vs_seconds__tiny.png") as plot:  # one panel per task
        assert plot.width > plot.height and len(set(np.asarray(plot.convert("L")).ravel().tolist())) > 10

    # resume: nothing left; a changed method re-runs only its own rows, with the same y
    again = run(_config(tmp_path, mlflow={"enabled": False}))
    assert again.done == 0 and again.skipped == again.grid == len(rows)
    methods = METHODS[:3] + [{**METHODS[3], "baseline": {"name": "tv", "iters": 10}}] + METHODS[4:]
    third = run(_config(tmp_path, methods=methods, mlflow={"enabled": False}))
    assert third.done == 2 * 4 and third.total_results == len(rows)
    new_tv = [r for r in _rows(tmp_path / "out" / "results") if '"iters": 10' in r["method_spec"]]
    old = {(r["image"], r["task"]): r["lq_psnr"] for r in rows}
    assert all(r["lq_psnr"] == old[(r["image"], r["task"])] for r in new_tv)
    # the resumed run's grids still show every method: the rows it did not re-run come from the
    # pieces the first run kept (comparisons/parts); only tv's panel was recomputed, and on
    # denoising its iteration count does not enter (Chambolle's TV denoiser): the same grid
    with Image.open(tmp_path / "out" / "comparisons" / "tiny__img0__denoise.png") as g:
        regrid = np.asarray(g.convert("RGB"))
    assert regrid.shape == first_grid.shape and (regrid == first_grid).all()


class DriverWritten(EvaluateJob):
    """The tables as they were written before issue 10: full rows to the driver, which writes."""

    def row_function(self, chash):
        return None


class Watched(EvaluateJob):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.seen: list[dict] = []

    def on_result(self, row):
        self.seen.append(row)
        super().on_result(row)


def test_workers_write_the_tables_the_driver_wrote_and_send_back_panels_only(ray_local, tmp_path):
    _images(tmp_path / "in")
    broken = {"name": "broken", "kind": "solver", "solver": {"name": "diffpir"}, "nfe": 2,
              "prior": {"name": "ffdnet", "weights": str(tmp_path / "missing.mat")}}  # its rows fail
    cfg = lambda out: _config(tmp_path, tasks=TASKS[:1], methods=[METHODS[0], METHODS[2], broken],  # noqa: E731
                              output=str(tmp_path / out), mlflow={"enabled": False}, flush_rows=2)
    watched = Watched(cfg("workers"))
    s = run_job(watched)
    run_job(DriverWritten(cfg("driver")))
    assert (s.done, s.errors) == (4, 2)
    assert {k for r in watched.seen for k in r} == {"id", "status", "error_kind", *PANEL_COLUMNS}
    pngs = {(str(r["relative_path"]), str(r["method"])) for r in watched.seen if len(r["restored_png"])}
    assert pngs == {("img0.png", "diffpir"), ("img0.png", "pinv")}  # the comparison image only
    assert set(watched.panels[("tiny", "img0.png", "denoise")]["methods"]) == {"diffpir", "pinv"}
    for name, timing in (("results", "seconds"), ("errors", "recorded_at")):
        w, d = (read_table(str(tmp_path / out), name) for out in ("workers", "driver"))
        assert w.schema == d.schema, name  # column order and types too
        norm = lambda t: sorted(({**r, timing: None} for r in t.to_pylist()), key=lambda r: r["id"])  # noqa: E731
        assert norm(w) == norm(d), name
        assert all(pq.read_table(f).num_rows <= 2 for f in (tmp_path / "workers" / name).glob("*.parquet"))


def test_smoke_config_runs_from_the_cli(ray_local, tmp_path, capsys):
    out = tmp_path / "smoke"
    code = main(["run", str(REPO / "configs/evaluate-smoke.yaml"), "--set", f"output={out}",
                 "--set", f"mlflow.tracking_uri={mlflow_store(tmp_path, 'm.db')}", "--set", "datasets.0.input="
                 + str(REPO.parent / "shared" / "data" / "eval" / "CBSD68")])
    if not (REPO.parent / "shared" / "data").is_dir():
        pytest.skip("../shared/data not found")
    assert code == 0
    rows = _rows(out / "results")
    assert len(rows) == 2 * 2 * 3 and {r["width"] for r in rows} == {64}
    printed = capsys.readouterr().out
    assert "| sr_x4 | diffpir | 2 |" in printed and "mlflow:   run" in printed


@pytest.mark.parametrize("change, needle", [
    ({"methods": [{"name": "x", "kind": "baseline", "baseline": {"name": "nlm"}}]},
     "valid choices: bicubic, bm3d, imdn, pinv, tv, wiener"),
    ({"methods": [{"name": "x", "kind": "baseline", "baseline": {"name": "tv", "lam": 1}}]}, "valid keys"),
    ({"methods": [{"name": "x", "kind": "solver", "solver": {"name": "diffpir", "nfe": 3}, "prior": GAUSSIAN}]},
     "methods[0].nfe"),
    ({"methods": [{**METHODS[0], "tasks": ["deblur"]}]}, "unknown task 'deblur'"),
    ({"methods": [METHODS[0], METHODS[0]]}, "duplicate name 'diffpir'"),
    ({"methods": [{**METHODS[0], "prior": {"name": "diffusers", "model": "m"}}]}, "methods[0].space"),
    ({"tasks": [{"name": "t", "degradation": {"name": "blurr"}}]}, "tasks[0].degradation.name"),
])
def test_config_errors_name_the_key(tmp_path, change, needle):
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        _config(tmp_path, **change)


def test_benchmark_config_loads_and_plans():
    cfg, _ = load_job_config(str(REPO / "configs/evaluate.yaml"), ["datasets.1.limit=2"])
    assert [t.name for t in cfg.tasks] == ["denoise", "deblur_motion", "deblur_gauss", "sr_x4", "inpaint_random",
                                           "inpaint_box", "jpeg_q10"]
    assert cfg.datasets[1].limit == 2 and cfg.datasets[0].crop == 256
    methods = {m.name: m for m in cfg.methods}
    assert methods["ud2m"].solver["name"] == "ud2m" and methods["ud2m"].tasks is None  # issue 11: every task


def test_stage_and_actor_turn_failures_into_error_rows(tmp_path):
    """Called on numpy batches without Ray: an unreadable file fails in `read`, a missing prior
    in `restore`; a baseline row on the same image goes through with its metrics."""
    from actors.columns import batch_to_rows, rows_to_batch
    from actors.evaluate import EvaluateActor
    from pipelines.stages.eval_load import EvalLoadStage

    _images(tmp_path / "in", 1)
    base = {"id": "r", "image_id": "i", "dataset": "d", "relative_path": "img0.png", "crop": 32, "task": "denoise",
            "task_spec": '{"name": "denoise", "noise_sigma": 0.1}'}
    rows = [{**base, "source_uri": str(tmp_path / "in" / "img0.png"), "method": "pinv",
             "method_spec": '{"kind": "baseline", "baseline": {"name": "pinv"}}'},
            {**base, "source_uri": str(tmp_path / "in" / "img0.png"), "method": "diffpir",
             "method_spec": '{"kind": "solver", "solver": {"name": "diffpir"}, "nfe": 2, '
                            '"prior": {"name": "embedded", "weights": "/nonexistent/w.safetensors"}}'},
            {**base, "source_uri": str(tmp_path / "in" / "missing.png"), "method": "pinv",
             "method_spec": '{"kind": "baseline", "baseline": {"name": "pinv"}}'}]
    loaded = EvalLoadStage(seed=0)(rows_to_batch(rows))
    out = batch_to_rows(EvaluateActor(seed=0, device="cpu", comparison_images=("i",))(loaded))
    ok, no_prior, missing = out
    assert ok["error_stage"] == "" and ok["psnr"] == pytest.approx(ok["lq_psnr"], abs=1e-4) and len(ok["restored_png"])
    assert (no_prior["error_stage"], no_prior["error_type"]) == ("restore", "FileNotFoundError")
    assert missing["error_stage"] == "read" and "lq" not in missing and "hq" not in missing


def test_posterior_samples_columns_and_std_panel(ray_local, tmp_path):
    from operators.comparison import HEADER_PX

    _images(tmp_path / "in", 1)
    # zeta > 0: diffpir's denoise preset adds no fresh noise, so its samples would coincide
    methods = [{**METHODS[0], "solver": {"name": "diffpir", "samples": 2, "zeta": 0.5}}, METHODS[2]]
    run(_config(tmp_path, tasks=TASKS[:1], methods=methods, mlflow={"enabled": False}))
    rows = {r["method"]: r for r in _rows(tmp_path / "out" / "results")}
    assert (rows["diffpir"]["samples"], rows["diffpir"]["estimate"]) == (2, "mean") and rows["diffpir"]["std_mean"] > 0
    assert (rows["pinv"]["samples"], rows["pinv"]["estimate"], rows["pinv"]["std_mean"]) == (1, "single", None)
    with Image.open(tmp_path / "out" / "comparisons" / "tiny__img0__denoise.png") as g:
        grid = np.asarray(g.convert("RGB"))
    # input | diffpir (mean of 2) | diffpir std | pinv | reference: 40 px crops shown 160 px high
    assert grid.shape == (HEADER_PX + 160, 5 * 160 + 4 * 4, 3)
    assert all((grid[:HEADER_PX, k * 164:k * 164 + 160] < 128).any() for k in range(5))
