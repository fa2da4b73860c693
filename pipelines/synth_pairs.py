"""Job `synth-pairs`: clean images -> random crops -> a degradation per crop -> Parquet shards.

Graph: plan (list inputs, skip finished crop ids) -> ``from_items`` (one row per file) ->
``map_batches(CropDegradeStage)`` (one row per crop) -> write stage (pipelines.stages.
write_rows: the workers write ``<output>/pairs/part-*.parquet`` shards of ``shard_rows``
rows atomically, and ``<output>/errors/``) -> driver, which gets ids and counts, and the
HQ/LQ bytes of the first ``comparisons`` planned crops only (the MLflow pictures). Every
planned crop ends as a pair or an error row.

Pair columns: id, source_uri, relative_path, crop_index, top, left, height, width, seed,
hq (PNG bytes, uint8), lq (PNG bytes: the measurement clipped to [0, 1] and quantized to
8 bits), params (JSON of the bound degradation spec; ``build_degradation`` rebuilds it),
hq_shape and lq_shape ([C, H, W]), config_hash. Same config -> byte-identical hq/lq for
every id; a re-run skips ids already written for the same config hash.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
from dataclasses import dataclass, field

from pipelines.config import ConfigError, to_dict
from pipelines.job import RUN_KEYS, JobConfig, Plan, StreamingJob, run_job
from pipelines.redact import redact_uri
from pipelines.registry_check import check_degradation
from pipelines.sections import MlflowConfig, StorageConfig
from pipelines.summary import JobSummary

log = logging.getLogger(__name__)
# keys that do not change any row's bytes (limit_images only changes which files are planned;
# a pair is the same whatever max_pixels: keeping it out keeps every pair done when it changes)
HASH_EXCLUDE = RUN_KEYS + ("shard_rows", "limit_images", "max_pixels")
TABLES = ("pairs", "errors")


@dataclass(frozen=True, kw_only=True)
class SynthPairsConfig(JobConfig):
    """Synthesize (HQ, LQ, params) training pairs; see configs/synth-pairs.yaml.

    ``degradation``: one spec dict (``{name: realesrgan, scale: 4}``, ``{name: blur}`` ...) or a
    list of specs, one picked uniformly per crop. Images smaller than ``crop_size`` give error
    rows (stage ``crop``). ``limit_images``: only the first N inputs (by relative path)."""

    job: str = "synth-pairs"
    input: str
    output: str = "./runs/synth-pairs"
    crop_size: int = 128
    crops_per_image: int = 4
    degradation: dict | list[dict] = field(default_factory=lambda: {"name": "realesrgan", "scale": 4})
    shard_rows: int = 256
    limit_images: int | None = None

    @property
    def specs(self) -> list[dict]:
        return [dict(s) for s in self.degradation] if isinstance(self.degradation, list) else [dict(self.degradation)]

    def resolved(self) -> SynthPairsConfig:
        """Each degradation spec written out to its full defaults, the keys its sampler draws
        per crop left out (pipelines.spec_defaults)."""
        from pipelines.spec_defaults import resolve_degradation

        specs = [resolve_degradation(s, sampled=True) for s in self.specs]
        return dataclasses.replace(self, degradation=specs if isinstance(self.degradation, list) else specs[0])

    def validate(self) -> None:
        from operators.degradations import build_degradation
        from pipelines.validation import check_at_least

        super().validate()
        check_at_least("limit_images", self.limit_images, 1, optional=True)
        for key, value, low in (("crop_size", self.crop_size, 8), ("crops_per_image", self.crops_per_image, 1),
                                ("shard_rows", self.shard_rows, 1)):
            if value < low:
                raise ConfigError(f"config key '{key}': must be >= {low}, got {value}")
        if not self.specs:
            raise ConfigError("config key 'degradation': an empty list; give a spec or a list of specs")
        for i, spec in enumerate(self.specs):
            key = f"degradation[{i}]" if isinstance(self.degradation, list) else "degradation"
            check_degradation(spec, key)
            try:
                build_degradation(spec).output_shape((1, 3, self.crop_size, self.crop_size))
            except ValueError as e:
                raise ConfigError(f"config key '{key}' with crop_size {self.crop_size}: {e}") from None


@dataclass
class PairsSummary(JobSummary):
    """Counts in crops: planned = crops still to do; done = new pairs; errors = new error rows."""

    pairs_per_s: float = 0.0

    def finalize_from_tables(self, storage: StorageConfig) -> None:
        from pipelines.tables import read_table

        t = read_table(self.output, "pairs", storage, columns=["id", "config_hash"])
        self.total_results = 0 if t is None else len(
            {i for i, h in zip(t.column("id").to_pylist(), t.column("config_hash").to_pylist()) if h == self.config_hash})
        self.count_errors(storage, ("pairs",))
        work_s = self.seconds - self.ray_startup_s
        self.pairs_per_s = self.done / work_s if self.done and work_s > 0 else 0.0

    def log_pairs_run(self, cfg: MlflowConfig, params: dict, storage: StorageConfig, grids: dict[str, bytes]) -> None:
        from pipelines.run_artifacts import collect_artifacts
        from pipelines.tracking import log_job_run

        metrics = {"pairs": self.total_results, "errors": self.total_errors, "new_pairs": self.done,
                   **{f"errors_{k}": n for k, n in self.errors_by_kind.items()},
                   "new_errors": self.errors, "skipped": self.skipped, "seconds": self.seconds,
                   "ray_startup_s": self.ray_startup_s, "pairs_per_s": self.pairs_per_s}
        artifacts = {**collect_artifacts(self.output, storage, folders=("errors",)), **grids}
        log_job_run(self, cfg, params, metrics, artifacts)

    def table(self) -> str:
        lines = [f"restoray {self.job}: {self.total_results} pairs, {self.errors_text()} "
                 f"({self.done} new pairs, {self.errors} new errors, {self.skipped} already done), "
                 f"{self.seconds:.1f} s, {self.pairs_per_s:.2f} pairs/s (Ray startup {self.ray_startup_s:.1f} s apart)",
                 f"  outputs:  {redact_uri(self.output)}"]
        if self.run_id:
            lines.append(f"  mlflow:   run {self.run_id} at {redact_uri(self.tracking_uri)}")
        return "\n".join(lines)


def plan_files(cfg: SynthPairsConfig, chash: str) -> tuple[list[dict], int]:
    """One row per input file with the crop indices still to do; and how many crops are done."""
    from pipelines.inputs import resolve_input
    from pipelines.stages.crop_degrade import crop_id
    from pipelines.storage import list_inputs
    from pipelines.tables import finished_ids

    files = list_inputs(resolve_input(cfg.input, cfg.output), cfg.storage)[: cfg.limit_images]
    done = finished_ids(cfg.output, chash, cfg.storage, tables=TABLES, retry_errors=cfg.retry_errors)
    rows, skipped = [], 0
    for f in files:
        todo = [i for i in range(cfg.crops_per_image) if crop_id(f.uri, i) not in done]
        skipped += cfg.crops_per_image - len(todo)
        if todo:
            rows.append({"source_uri": f.uri, "relative_path": f.relative_path, "crops": ",".join(map(str, todo))})
    return rows, skipped


class SynthPairsJob(StreamingJob):
    """Rows: one per input file with its crops still to do (``plan_files``); stage: crop and
    degrade (one row per crop); results table ``pairs`` in shards of ``shard_rows``."""

    cfg: SynthPairsConfig
    hash_exclude = HASH_EXCLUDE
    results_table = "pairs"
    summary_class = PairsSummary
    keep = ("hq", "lq")  # of the comparison crops only (keep_ids)

    def __init__(self, cfg: SynthPairsConfig) -> None:
        super().__init__(cfg)
        self.grids: dict[str, bytes] = {}  # comparisons/<id>.png -> HQ | LQ, for the MLflow run
        self.compare_ids: tuple[str, ...] = ()  # the first ``comparisons`` planned crops

    @property
    def flush_rows(self) -> int:
        return self.cfg.shard_rows

    def plan(self, chash: str) -> Plan:
        from pipelines.stages.crop_degrade import crop_id

        rows, skipped = plan_files(self.cfg, chash)
        crops = [crop_id(r["source_uri"], int(i)) for r in rows for i in r["crops"].split(",")]
        self.compare_ids = tuple(crops[: self.cfg.comparisons])
        return Plan(rows, skipped, planned=len(crops))

    def num_blocks(self, n: int) -> int:
        """One block per ``map_batches`` call of ``ray.batch_size`` files."""
        return max(1, min(n, math.ceil(n / max(1, self.cfg.ray.batch_size))))

    def stages(self, ds, chash: str, plan: Plan):
        from pipelines.stages.crop_degrade import CropDegradeStage

        cfg = self.cfg
        return ds.map_batches(CropDegradeStage(cfg.specs, cfg.crop_size, cfg.seed, cfg.storage, cfg.max_pixels,
                                               cfg.ray.torch_threads), batch_size=max(1, cfg.ray.batch_size))

    def result_row(self, row: dict, chash: str) -> dict:
        return pair_row(row, self.cfg.seed, chash)

    def row_function(self, chash: str):
        """The workers write the tables (pipelines.stages.write_rows)."""
        return functools.partial(pair_row, seed=self.cfg.seed, chash=chash)

    def keep_ids(self) -> frozenset[str]:
        return frozenset(self.compare_ids)

    def on_result(self, row: dict) -> None:
        if len(row["hq"]) and len(self.grids) < self.cfg.comparisons:
            try:  # a picture for MLflow only: never worth failing the job over
                self.grids[f"comparisons/{row['id']}.png"] = comparison_png(row["hq"], row["lq"])
            except Exception as exc:  # noqa: BLE001
                log.warning("synth-pairs: no comparison image for %s: %s", row["id"], exc)

    def finish(self, summary: PairsSummary) -> None:
        summary.finalize_from_tables(self.cfg.storage)
        summary.log_pairs_run(self.cfg.mlflow, to_dict(self.cfg), self.cfg.storage, self.grids)


def run(cfg: SynthPairsConfig) -> PairsSummary:
    return run_job(SynthPairsJob(cfg))


def pair_row(row: dict, seed: int, chash: str) -> dict:
    """A ``pairs`` row (the columns in the module docstring)."""
    return {"id": str(row["id"]), "source_uri": str(row["source_uri"]),
            "relative_path": str(row["relative_path"]), "crop_index": int(row["crop_index"]),
            "top": int(row["top"]), "left": int(row["left"]), "height": int(row["height"]),
            "width": int(row["width"]), "seed": int(seed), "hq": bytes(row["hq"]),
            "lq": bytes(row["lq"]), "params": str(row["params"]),
            "hq_shape": json.loads(str(row["hq_shape"])), "lq_shape": json.loads(str(row["lq_shape"])),
            "config_hash": chash}


def comparison_png(hq: bytes, lq: bytes) -> bytes:
    """HQ | LQ side by side (LQ resized to HQ's height) for the MLflow run."""
    from operators.media import decode_image, encode_png, side_by_side

    return encode_png(side_by_side([decode_image(bytes(hq)).pixels, decode_image(bytes(lq)).pixels], height=128))
