"""Job `evaluate`: a grid of dataset images x tasks x methods (diffusion solvers and classical
baselines) on Ray Data, scored against the clean images.

Graph: plan (list images, skip inapplicable (task, method) pairs and rows already recorded)
-> ``from_items`` (one row per image x task x method) -> ``map_batches(EvalLoadStage)``
(decode, centre-crop, degrade, seeded by (image, task) so every method sees the same y) ->
``map_batches(EvaluateActor)`` (actor pool; priors loaded once per actor) -> write stage
(pipelines.stages.write_rows: the workers write ``<output>/results`` and ``<output>/errors``
Parquet shards of ``flush_rows`` rows) -> driver (ids, counts, comparison panels), which
then writes ``<output>/results.md`` (printed), ``<output>/comparisons/<dataset>__<image>__<task>.png``
and one MLflow run. Results + errors + skipped rows = the whole grid, always.

Result columns: id, image_id, dataset, image (relative path), source_uri, crop, width,
height, task, method, kind, method_spec (JSON), degradation (the task's spec, JSON), psnr,
ssim, lq_psnr, lq_ssim, nfe, nfe_backward, seconds, samples, estimate ("single" | "mean" |
"sample", see operators.solvers.posterior), std_mean (mean posterior std, null when none),
seed, config_hash.
"""
from __future__ import annotations

import functools
import json
import logging
import math
from dataclasses import dataclass, replace

from pipelines.config import ConfigError, to_dict
from pipelines.evaluate_grid import DatasetConfig, MethodConfig, TaskConfig
from pipelines.job import RUN_KEYS, JobConfig, Plan, StreamingJob, run_job
from pipelines.redact import redact_uri
from pipelines.registry_check import check_degradation
from pipelines.summary import JobSummary

log = logging.getLogger(__name__)
ERROR_EXTRA = ("dataset", "task", "method")  # error-table columns besides pipelines.tables.ERROR_COLUMNS
# what reaches the driver besides id and status: a comparison panel's columns (PNGs only for
# the comparison images, empty bytes for the others: actors.evaluate)
PANEL_COLUMNS = ("dataset", "image_id", "relative_path", "task", "method", "lq_png", "hq_png", "restored_png",
                 "std_png", "lq_psnr", "lq_ssim", "psnr", "ssim", "samples", "estimate", "std_mean")


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig(JobConfig):
    """Evaluate methods on datasets x tasks; see configs/evaluate.yaml. ``mod``: images are
    cropped to multiples of it (x4 SR and latent codecs need it), the same crop for every
    task. ``comparisons``: grids for the first N images of each dataset, one per task."""

    job: str = "evaluate"
    datasets: list[DatasetConfig]
    tasks: list[TaskConfig]
    methods: list[MethodConfig]
    output: str = "./runs/evaluate"
    mod: int = 8
    comparisons: int = 1
    flush_rows: int = 64

    def validate(self) -> None:
        super().validate()
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

    def inputs(self) -> dict[str, str]:
        return {f"datasets[{i}].input": d.input for i, d in enumerate(self.datasets)}

    def resolved(self) -> EvaluateConfig:
        """Tasks' degradations and methods' solvers and priors written out to their full
        defaults (pipelines.spec_defaults); a method's preset values, which depend on the
        task, are resolved per grid row (pipelines.evaluate_grid.plan_grid)."""
        from pipelines.spec_defaults import resolve_degradation

        tasks = [replace(t, degradation=resolve_degradation(t.degradation)) for t in self.tasks]
        return replace(self, tasks=tasks, methods=[m.resolved() for m in self.methods])


@dataclass
class EvaluateSummary(JobSummary):
    """Counts in grid rows; ``markdown`` is the results table of this grid."""

    grid: int = 0
    skipped_pairs: int = 0
    markdown: str = ""

    def table(self) -> str:
        lines = [f"restoray {self.job}: {self.total_results} results, {self.errors_text()} of {self.grid} grid "
                 f"rows ({self.done} new, {self.skipped} already done; {self.skipped_pairs} (task, method) pairs "
                 f"not applicable), {self.seconds:.1f} s", "", self.markdown,
                 f"  outputs:  {redact_uri(self.output)} (results.md, results/, errors/, comparisons/)"]
        if self.run_id:
            lines.append(f"  mlflow:   run {self.run_id} at {redact_uri(self.tracking_uri)}")
        return "\n".join(lines)


class EvaluateJob(StreamingJob):
    """Rows: the grid's (image, task, method) rows not yet in the tables (ids hash everything
    that changes a result, so any recorded id is done); stages: load and degrade -> evaluate
    (actor pool). Keeps comparison panels as rows stream in; ``finish`` writes the report."""

    cfg: EvaluateConfig
    error_extra = ERROR_EXTRA
    keep = PANEL_COLUMNS
    hash_exclude = RUN_KEYS + ("max_pixels",)  # rows are recorded by id (the id hashes the inputs)

    def __init__(self, cfg: EvaluateConfig) -> None:
        super().__init__(cfg)
        self.grid: list[dict] = []
        self.skipped_pairs: list[dict] = []  # (task, method) pairs that do not apply, with reasons
        self.panels: dict[tuple, dict] = {}  # (dataset, image, task) -> LQ, HQ and each method's PNG

    def plan(self, chash: str) -> Plan:
        from pipelines.evaluate_grid import plan_grid
        from pipelines.tables import finished_ids

        cfg = self.cfg
        self.grid, self.skipped_pairs = plan_grid(cfg.datasets, cfg.tasks, cfg.methods, cfg.seed, cfg.mod,
                                                  cfg.output, cfg.storage)
        done = finished_ids(cfg.output, None, cfg.storage, retry_errors=cfg.retry_errors)
        rows = [r for r in self.grid if r["id"] not in done]
        return Plan(rows, skipped=len(self.grid) - len(rows))

    def summary(self, chash: str, plan: Plan) -> EvaluateSummary:
        return EvaluateSummary(job=self.cfg.job, output=self.cfg.output, config_hash=chash, planned=plan.planned,
                               skipped=plan.skipped, grid=len(self.grid), skipped_pairs=len(self.skipped_pairs))

    def num_blocks(self, n: int) -> int:
        return max(1, min(n, 200))

    def stages(self, ds, chash: str, plan: Plan):
        from actors.evaluate import EvaluateActor
        from pipelines.ray_runtime import actor_pool_args, task_args
        from pipelines.stages.eval_load import EvalLoadStage

        cfg = self.cfg
        compare = comparison_images(self.grid, cfg.comparisons)
        ds = ds.map_batches(EvalLoadStage(cfg.seed, cfg.mod, cfg.storage, cfg.max_pixels), **task_args(cfg.ray, 1))
        return ds.map_batches(EvaluateActor, fn_constructor_kwargs={
            "seed": cfg.seed, "device": "cuda" if cfg.ray.num_gpus else "cpu",
            "torch_threads": cfg.ray.torch_threads, "comparison_images": tuple(sorted(compare)),
            "solve_batch": cfg.ray.solve_batch},
            **actor_pool_args(cfg.ray))

    def result_row(self, row: dict, chash: str) -> dict:
        return result_row(row, self.cfg.seed, chash)

    def row_function(self, chash: str):
        """The workers write the tables (pipelines.stages.write_rows)."""
        return functools.partial(result_row, seed=self.cfg.seed, chash=chash)

    def on_result(self, row: dict) -> None:
        if len(row["restored_png"]):
            from pipelines.evaluate_panels import save_parts

            key = (str(row["dataset"]), str(row["relative_path"]), str(row["task"]))
            save_parts(self.cfg.output, self.cfg.storage, row, new_scene=key not in self.panels)
            p = self.panels.setdefault(key,
                                       {"lq": bytes(row["lq_png"]), "hq": bytes(row["hq_png"]),
                                        "lq_scores": (float(row["lq_psnr"]), float(row["lq_ssim"])),
                                        "methods": {}})
            p["methods"][str(row["method"])] = {
                "png": bytes(row["restored_png"]), "scores": (float(row["psnr"]), float(row["ssim"])),
                "samples": int(row["samples"]), "estimate": str(row["estimate"]),
                "std_png": bytes(row["std_png"]), "std_mean": float(row["std_mean"])}

    def finish(self, summary: EvaluateSummary) -> None:
        compare = comparison_images(self.grid, self.cfg.comparisons)
        write_report(self.cfg, summary, {r["id"] for r in self.grid}, self.skipped_pairs, self.panels, compare)


def run(cfg: EvaluateConfig) -> EvaluateSummary:
    return run_job(EvaluateJob(cfg))


def comparison_images(grid: list[dict], n: int) -> set[str]:
    """Image ids of the first ``n`` images of each dataset."""
    firsts: dict[str, list[str]] = {}
    for r in grid:
        ids = firsts.setdefault(r["dataset"], [])
        if r["image_id"] not in ids and len(ids) < n:
            ids.append(r["image_id"])
    return {i for ids in firsts.values() for i in ids}


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


def write_report(cfg: EvaluateConfig, summary: EvaluateSummary, grid_ids: set[str], skipped: list[dict],
                 panels: dict, compare: set[str] = frozenset()) -> None:
    """Read this grid's rows back (resumed runs included), write results.md and the grids (the
    rows of earlier runs from their saved pieces: pipelines.evaluate_panels), log the MLflow run."""
    from pipelines.evaluate_panels import complete_panels
    from pipelines.evaluate_report import comparison_grid, markdown_table
    from pipelines.output_paths import output_uri
    from pipelines.storage import join, write_bytes_atomic
    from pipelines.tables import error_counts, latest_errors, read_table

    t = read_table(cfg.output, "results", cfg.storage)
    results = [] if t is None else list({r["id"]: r for r in t.to_pylist() if r["id"] in grid_ids}.values())
    errors = [r for i, r in latest_errors(cfg.output, None, cfg.storage).items() if i in grid_ids]
    summary.errors_by_kind = error_counts(errors)
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
    panels = complete_panels(cfg.output, cfg.storage, results, compare, panels)
    for name, p in comparison_names(panels).items():
        png = comparison_grid(p, order)
        write_bytes_atomic(output_uri(cfg.output, "comparisons", name), png, cfg.storage)
        artifacts[f"comparisons/{name}"] = png
    log_evaluate_run(cfg, summary, results, artifacts)


def comparison_names(panels: dict) -> dict[str, dict]:
    """{``<dataset>__<image path without extension, / -> __>__<task>.png``: panel}; a name two
    panels would share (``a/b.png`` and ``a__b.jpg``) is left out, never overwritten."""
    from pipelines.output_paths import OutputPathError, normalise_relative

    names: dict[str, list[dict]] = {}
    for (dataset, image, task), p in sorted(panels.items()):
        try:
            stem = normalise_relative(image).rsplit(".", 1)[0].replace("/", "__")
            name = normalise_relative(f"{dataset}__{stem}__{task}.png".replace("/", "__"))
        except OutputPathError as e:
            log.warning("evaluate: no comparison grid for %s: %s", image, e)
            continue
        names.setdefault(name, []).append(p)
    for name, ps in names.items():
        if len(ps) > 1:
            log.warning("evaluate: %d images would share the comparison grid %s: none is written", len(ps), name)
    return {name: ps[0] for name, ps in names.items() if len(ps) == 1}


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
                   **{f"errors_{k}": n for k, n in summary.errors_by_kind.items()},
                   seconds=summary.seconds, ray_startup_s=summary.ray_startup_s)
    artifacts = {**collect_artifacts(cfg.output, cfg.storage, folders=("results", "errors")), **artifacts}
    log_job_run(summary, cfg.mlflow, to_dict(cfg), metrics, artifacts, upload_config=True)
