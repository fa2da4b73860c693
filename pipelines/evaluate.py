"""Job `evaluate`: a grid of dataset images x tasks x methods (diffusion solvers and classical
baselines) on Ray Data, scored against the clean images.

Graph: plan (list images, skip inapplicable (task, method) pairs and rows already recorded)
-> ``from_items`` (one row per image x task x method) -> ``map_batches(EvalLoadStage)``
(decode, centre-crop, degrade, seeded by (image, task) so every method sees the same y) ->
``map_batches(EvaluateActor)`` (actor pool; priors loaded once per actor) -> driver, which
writes ``<output>/results`` and ``<output>/errors`` Parquet shards as rows stream in, then
``<output>/results.md`` (printed), ``<output>/comparisons/<dataset>__<image>__<task>.png``
and one MLflow run. Results + errors + skipped rows = the whole grid, always.

Result columns: id, image_id, dataset, image (relative path), source_uri, crop, width,
height, task, method, kind, method_spec (JSON), degradation (the task's spec, JSON), psnr,
ssim, lq_psnr, lq_ssim, nfe, nfe_backward, seconds, samples, estimate ("single" | "mean" |
"sample", see operators.solvers.posterior), std_mean (mean posterior std, null when none),
seed, config_hash.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

from operators.media import DEFAULT_MAX_PIXELS
from pipelines.config import ConfigError, config_hash, to_dict
from pipelines.evaluate_grid import DatasetConfig, MethodConfig, TaskConfig
from pipelines.redact import redact_uri
from pipelines.registry_check import check_degradation
from pipelines.sections import MlflowConfig, RayConfig, StorageConfig
from pipelines.summary import JobSummary

ERROR_EXTRA = ("dataset", "task", "method")  # error-table columns besides pipelines.tables.ERROR_COLUMNS
HASH_EXCLUDE = ("output", "ray", "storage", "mlflow", "flush_rows", "comparisons", "max_pixels")


@dataclass(frozen=True)
class EvaluateConfig:
    """Evaluate methods on datasets x tasks; see configs/evaluate.yaml. ``mod``: images are
    cropped to multiples of it (x4 SR and latent codecs need it), the same crop for every
    task. ``comparisons``: grids for the first N images of each dataset, one per task."""

    datasets: list[DatasetConfig]
    tasks: list[TaskConfig]
    methods: list[MethodConfig]
    job: str = "evaluate"
    output: str = "./runs/evaluate"
    seed: int = 0
    mod: int = 8
    comparisons: int = 1
    flush_rows: int = 64
    max_pixels: int = DEFAULT_MAX_PIXELS
    ray: RayConfig = field(default_factory=RayConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)

    def validate(self) -> None:
        for key, items in (("datasets", self.datasets), ("tasks", self.tasks), ("methods", self.methods)):
            names = [i.name for i in items]
            if not names:
                raise ConfigError(f"config key '{key}': give at least one")
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ConfigError(f"config key '{key}': duplicate name {dup[0]!r}")
        for i, d in enumerate(self.datasets):
            if d.crop is not None and d.crop < self.mod:
                raise ConfigError(f"config key 'datasets[{i}].crop': must be >= mod ({self.mod}), got {d.crop}")
            if d.limit is not None and d.limit < 1:
                raise ConfigError(f"config key 'datasets[{i}].limit': must be >= 1 or null, got {d.limit}")
        if self.mod < 1:
            raise ConfigError(f"config key 'mod': must be >= 1, got {self.mod}")
        for i, t in enumerate(self.tasks):
            check_degradation(t.degradation, f"tasks[{i}].degradation")
        task_names = [t.name for t in self.tasks]
        for i, m in enumerate(self.methods):
            m.validate(f"methods[{i}]", task_names)


@dataclass
class EvaluateSummary(JobSummary):
    """Counts in grid rows; ``markdown`` is the results table of this grid."""

    grid: int = 0
    skipped_pairs: int = 0
    markdown: str = ""

    def table(self) -> str:
        lines = [f"restoray {self.job}: {self.total_results} results, {self.total_errors} errors of {self.grid} grid "
                 f"rows ({self.done} new, {self.skipped} already done; {self.skipped_pairs} (task, method) pairs "
                 f"not applicable), {self.seconds:.1f} s", "", self.markdown,
                 f"  outputs:  {redact_uri(self.output)} (results.md, results/, errors/, comparisons/)"]
        if self.run_id:
            lines.append(f"  mlflow:   run {self.run_id} at {redact_uri(self.tracking_uri)}")
        return "\n".join(lines)


def run(cfg: EvaluateConfig) -> EvaluateSummary:
    import ray

    from actors.evaluate import EvaluateActor
    from pipelines.evaluate_grid import plan_grid
    from pipelines.ray_runtime import actor_pool_args, init_ray
    from pipelines.stages.eval_load import EvalLoadStage
    from pipelines.tables import read_table

    chash = config_hash(cfg, HASH_EXCLUDE)
    grid, skipped = plan_grid(cfg.datasets, cfg.tasks, cfg.methods, cfg.seed, cfg.mod, cfg.output, cfg.storage)
    done = set()
    for name in ("results", "errors"):
        t = read_table(cfg.output, name, cfg.storage, columns=["id"])
        done |= set() if t is None else set(t.column("id").to_pylist())
    rows = [r for r in grid if r["id"] not in done]
    summary = EvaluateSummary(job=cfg.job, output=cfg.output, config_hash=chash, planned=len(rows),
                              skipped=len(grid) - len(rows), grid=len(grid), skipped_pairs=len(skipped))
    compare = comparison_images(grid, cfg.comparisons)
    panels: dict[tuple, dict] = {}
    t0 = time.perf_counter()
    if rows:
        init_ray(cfg.ray)
        summary.ray_startup_s = time.perf_counter() - t0
        ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 200)))
        ds = ds.map_batches(EvalLoadStage(cfg.seed, cfg.mod, cfg.storage, cfg.max_pixels), batch_size=1)
        ds = ds.map_batches(EvaluateActor, fn_constructor_kwargs={
            "seed": cfg.seed, "device": "cuda" if cfg.ray.num_gpus else "cpu",
            "torch_threads": cfg.ray.torch_threads, "comparison_images": tuple(sorted(compare))},
            **actor_pool_args(cfg.ray))
        stream_rows(ds, cfg, chash, summary, panels)
    summary.seconds = time.perf_counter() - t0
    finish(cfg, summary, {r["id"] for r in grid}, skipped, panels)
    return summary


def comparison_images(grid: list[dict], n: int) -> set[str]:
    """Image ids of the first ``n`` images of each dataset."""
    firsts: dict[str, list[str]] = {}
    for r in grid:
        ids = firsts.setdefault(r["dataset"], [])
        if r["image_id"] not in ids and len(ids) < n:
            ids.append(r["image_id"])
    return {i for ids in firsts.values() for i in ids}


def stream_rows(ds, cfg: EvaluateConfig, chash: str, summary: EvaluateSummary, panels: dict) -> None:
    """Iterate on the driver; flush result and error shards; keep comparison PNGs."""
    from pipelines.streaming import stream_to_tables

    def keep_panel(row: dict) -> None:
        if len(row["restored_png"]):
            p = panels.setdefault((str(row["dataset"]), str(row["relative_path"]), str(row["task"])),
                                  {"lq": bytes(row["lq_png"]), "hq": bytes(row["hq_png"]),
                                   "lq_scores": (float(row["lq_psnr"]), float(row["lq_ssim"])), "methods": {}})
            p["methods"][str(row["method"])] = {
                "png": bytes(row["restored_png"]), "scores": (float(row["psnr"]), float(row["ssim"])),
                "samples": int(row["samples"]), "estimate": str(row["estimate"]),
                "std_png": bytes(row["std_png"]), "std_mean": float(row["std_mean"])}

    stream_to_tables(ds, cfg.output, cfg.storage, cfg.flush_rows, summary, chash,
                     lambda row: result_row(row, cfg.seed, chash), error_extra=ERROR_EXTRA, on_result=keep_panel)


def result_row(row: dict, seed: int, chash: str) -> dict:
    spec = json.loads(str(row["method_spec"]))
    num = lambda k: None if math.isnan(float(row[k])) else float(row[k])  # noqa: E731
    return {"id": str(row["id"]), "image_id": str(row["image_id"]), "dataset": str(row["dataset"]),
            "image": str(row["relative_path"]), "source_uri": str(row["source_uri"]), "crop": int(row["crop"]),
            "width": int(row["width"]), "height": int(row["height"]), "task": str(row["task"]),
            "method": str(row["method"]), "kind": spec["kind"], "method_spec": str(row["method_spec"]),
            "degradation": str(row["task_spec"]), **{k: num(k) for k in ("psnr", "ssim", "lq_psnr", "lq_ssim")},
            "nfe": int(row["nfe"]), "nfe_backward": int(row["nfe_backward"]), "seconds": num("seconds"),
            "samples": int(row["samples"]), "estimate": str(row["estimate"]), "std_mean": num("std_mean"),
            "seed": int(seed), "config_hash": chash}


def finish(cfg: EvaluateConfig, summary: EvaluateSummary, grid_ids: set[str], skipped: list[dict],
           panels: dict) -> None:
    """Read this grid's rows back (resumed runs included), write results.md and the grids,
    log the MLflow run."""
    from pipelines.evaluate_report import comparison_grid, markdown_table
    from pipelines.storage import join, write_bytes_atomic
    from pipelines.tables import read_table

    tables = {}
    for name in ("results", "errors"):
        t = read_table(cfg.output, name, cfg.storage)
        tables[name] = [] if t is None else [r for r in t.to_pylist() if r["id"] in grid_ids]
    results, errors = tables["results"], tables["errors"]
    summary.total_results, summary.total_errors = len(results), len(errors)
    summary.markdown = markdown_table(results, cfg.datasets, cfg.tasks, cfg.methods, skipped, errors)
    artifacts = {"results.md": summary.markdown.encode()}
    write_bytes_atomic(join(cfg.output, "results.md"), artifacts["results.md"], cfg.storage)
    if results:
        from pipelines.evaluate_plot import psnr_vs_seconds

        kinds = {m.name: m.kind for m in cfg.methods}
        for d in cfg.datasets:
            if any(r["dataset"] == d.name for r in results):
                png = psnr_vs_seconds(results, cfg.tasks, kinds, d.name)
                write_bytes_atomic(join(cfg.output, f"psnr_vs_seconds__{d.name}.png"), png, cfg.storage)
                artifacts[f"psnr_vs_seconds__{d.name}.png"] = png
    order = [m.name for m in cfg.methods]
    for (dataset, image, task), p in sorted(panels.items()):
        name = f"{dataset}__{image.rsplit('.', 1)[0].replace('/', '__')}__{task}.png"
        png = comparison_grid(p, order)
        write_bytes_atomic(join(cfg.output, "comparisons", name), png, cfg.storage)
        artifacts[f"comparisons/{name}"] = png
    log_evaluate_run(cfg, summary, results, artifacts)


def log_evaluate_run(cfg: EvaluateConfig, summary: EvaluateSummary, results: list[dict],
                     artifacts: dict[str, bytes]) -> None:
    """One MLflow run: the config as params, per (dataset, task, method) means as metrics,
    the tables, results.md and the grids as artifacts."""
    from pipelines.run_artifacts import collect_artifacts
    from pipelines.tracking import log_job_run

    sums: dict[str, list[float]] = {}
    for r in results:
        for col in ("psnr", "ssim", "seconds", "nfe"):
            if r[col] is not None:
                sums.setdefault(f"{r['dataset']}/{r['task']}/{r['method']}/{col}", []).append(float(r[col]))
    metrics = {k: sum(v) / len(v) for k, v in sums.items()}
    metrics.update(results=summary.total_results, errors=summary.total_errors, grid=summary.grid,
                   seconds=summary.seconds, ray_startup_s=summary.ray_startup_s)
    artifacts = {**collect_artifacts(cfg.output, cfg.storage, folders=("results", "errors")), **artifacts}
    log_job_run(summary, cfg.mlflow, to_dict(cfg), metrics, artifacts, upload_config=True)
