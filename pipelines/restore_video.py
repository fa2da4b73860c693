"""Job `restore-video`: clips -> segments (actor pool) -> assembled clips with their audio.

Phase 1 streams one row per segment: decode (seek) [+ degrade] -> restore window by window
(actor pool) -> store the segment and measure its windows; tables ``segments`` and ``windows``.
Phase 2 assembles every clip whose segments are all done: blend the shared frames, encode
with the source's timing and audio, measure, compare; table ``clips``. Failures are rows of
``errors`` (stage named); a re-run skips finished segments and clips (same config hash).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field

from pipelines.config import ConfigError
from pipelines.job import RUN_KEYS, JobConfig, Plan, StreamingJob, run_job
from pipelines.summary import JobSummary
from pipelines.video_rows import (
    check_video_config,
    clip_result,
    plan_clips,
    segment_result,
    windows_rows,
)

HASH_EXCLUDE = RUN_KEYS + ("comparison_seconds",)


@dataclass(frozen=True, kw_only=True)
class RestoreVideoConfig(JobConfig):
    """Restore every clip under ``input``; see configs/restore-video.yaml."""

    job: str = "restore-video"
    input: str
    reference: str | None = None
    synthesize: bool = True
    degradation: dict = field(default_factory=lambda: {"name": "denoise", "noise_sigma": 0.0980392})
    solver: dict = field(default_factory=lambda: {"name": "langevin_video", "nfe": 4, "window": 8, "overlap": 2})
    prior: dict = field(default_factory=lambda: {"name": "embedded"})
    video_prior: dict | None = None
    codec: dict = field(default_factory=lambda: {"name": "h264", "crf": 18})
    segment_frames: int = 48
    segment_overlap: int = 2
    segment_pixels: int = 48 * 1920 * 1080 // 4
    max_frames: int | None = None
    cut_threshold: float = 0.4
    comparisons: int = 2
    comparison_seconds: float = 3.0
    output: str = "./runs/restore-video"
    flush_rows: int = 64

    def validate(self) -> None:
        super().validate()
        check_video_config(self)
        if self.reference and self.synthesize:
            raise ConfigError("config key 'reference' is only used with synthesize: false "
                              "(with synthesize: true the input itself is the reference)")


@dataclass
class VideoSummary(JobSummary):
    """Counts in segments while they run; ``frames`` restored; clips in the ``clips`` table."""

    frames_planned: int = 0
    frames_done: int = 0
    clips: int = 0
    artifact_folders: tuple[str, ...] = ("clips", "windows", "errors", "comparisons")

    def progress(self) -> None:
        pct = 100.0 * self.frames_done / max(1, self.frames_planned)
        bar = "#" * int(pct // 5)
        print(f"[{self.job}] frames {self.frames_done}/{self.frames_planned} [{bar:<20}] {pct:5.1f}% "
              f"({self.errors} errors)", file=sys.stderr, flush=True)

    @property
    def restore_s(self) -> float:
        """Seconds of the restore phase (segments), Ray start-up excluded."""
        return self.seconds - self.ray_startup_s

    def finalize_from_tables(self, storage) -> None:
        from pipelines.summary import mean_columns
        from pipelines.tables import read_table

        clips = read_table(self.output, "clips", storage)
        self.total_results, self.means = mean_columns(clips, self.config_hash,
                                                      ("psnr", "ssim", "lq_psnr", "flicker", "lq_flicker",
                                                       "warp_error", "fps_restored"))
        self.clips = self.total_results
        self.count_errors(storage, ("segments", "clips"))


class RestoreVideoJob(StreamingJob):
    cfg: RestoreVideoConfig
    results_table = "segments"
    hash_exclude = HASH_EXCLUDE
    summary_class = VideoSummary

    def config_hash(self) -> str:
        from pipelines.config import config_hash
        from pipelines.prior_files import prior_digest, solver_digest

        digests = {"prior_weights": prior_digest(self.cfg.prior)}
        solver_weights = solver_digest(self.cfg.solver, self.cfg.prior)  # a UD2M unfolding
        if solver_weights:
            digests["solver_weights"] = solver_weights
        if self.cfg.video_prior:
            digests["video_prior"] = json.dumps(self.cfg.video_prior, sort_keys=True)
        return config_hash(self.cfg, self.hash_exclude, extra=digests)

    def plan(self, chash: str) -> Plan:
        self.clips, rows, skipped, self.probe_errors = plan_clips(self.cfg, chash)
        self.frames_planned = sum(int(r["stop"]) - int(r["start"]) for r in rows)
        self.windows: list[dict] = []
        return Plan(rows, skipped=skipped)

    def summary(self, chash: str, plan: Plan) -> VideoSummary:
        s = VideoSummary(job=self.cfg.job, output=self.cfg.output, config_hash=chash,
                         skipped=plan.skipped, planned=plan.planned, frames_planned=self.frames_planned)
        s.errors += len(self.probe_errors)
        self.summary_ref, self.config_hash_value = s, chash
        return s

    def stages(self, ds, chash: str, plan: Plan):
        from actors.video import VideoRestoreActor
        from pipelines.ray_runtime import actor_pool_args, task_args
        from pipelines.stages.video_finish import SegmentFinishStage
        from pipelines.stages.video_load import SegmentLoadStage

        cfg = self.cfg
        io = task_args(cfg.ray, 1)
        ds = ds.map_batches(SegmentLoadStage(cfg.degradation, cfg.synthesize, cfg.seed, cfg.storage), **io)
        ds = ds.map_batches(VideoRestoreActor, fn_constructor_kwargs={
            "solver": cfg.solver, "prior": cfg.prior, "video_prior": cfg.video_prior, "seed": cfg.seed,
            "device": "cuda" if cfg.ray.num_gpus else "cpu", "torch_threads": cfg.ray.torch_threads,
            "cut_threshold": cfg.cut_threshold}, **{**actor_pool_args(cfg.ray), "batch_size": 1})
        return ds.map_batches(SegmentFinishStage(cfg.output, self.compare_clips(), cfg.storage), **io)

    def compare_clips(self) -> tuple[str, ...]:
        return tuple(c.clip_id for c in self.clips[: self.cfg.comparisons])

    def num_blocks(self, n: int) -> int:
        return max(1, n)  # one segment per block: segments spread over every actor

    def result_row(self, row: dict, chash: str) -> dict:
        return segment_result(row, chash)

    def on_result(self, row: dict) -> None:
        from pipelines.tables import write_shard

        self.windows.extend(windows_rows(row, self.config_hash_value))
        self.summary_ref.frames_done += int(row["stop"]) - int(row["start"])
        if len(self.windows) >= self.cfg.flush_rows:
            write_shard(self.cfg.output, "windows", self.windows, self.cfg.storage)
            self.windows = []

    def finish(self, summary: VideoSummary) -> None:
        from pipelines.tables import write_shard
        from pipelines.video_assembly import assemble_clips

        write_shard(self.cfg.output, "windows", self.windows, self.cfg.storage)
        self.windows = []
        assemble_clips(self, summary)
        summary.finalize_from_tables(self.cfg.storage)
        summary.log_mlflow(self.cfg.mlflow, self.cfg_params(), self.cfg.storage)

    def cfg_params(self) -> dict:
        from pipelines.config import to_dict

        return to_dict(self.cfg)


def run(cfg: RestoreVideoConfig) -> VideoSummary:
    return run_job(RestoreVideoJob(cfg))
