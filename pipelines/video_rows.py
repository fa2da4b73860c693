"""restore-video's config checks, its plan (clips -> segment rows, resume) and its row schemas
(``segments``, ``windows``, ``clips``)."""
from __future__ import annotations

import json
import math

from pipelines.config import ConfigError
from pipelines.video_plan import (
    VIDEO_EXTENSIONS,
    ClipPlan,
    clip_rows,
    plan_segments,
    probe_uri,
)

CODECS = ("h264", "h265", "ffv1", "png")
FRAME_METHODS = ("dvdnet",)  # video methods that are not image solvers or baselines


def check_video_config(cfg) -> None:
    """ConfigError naming the key for anything restore-video cannot run."""
    from operators.baselines import BASELINES
    from pipelines.prior_files import check_dvdnet_files, check_prior_files
    from pipelines.registry_check import check_concrete, check_degradation, check_prior, check_solver

    check_degradation(cfg.degradation, "degradation")
    if not cfg.synthesize:
        check_concrete(cfg.degradation, "degradation")
    name = cfg.solver.get("name")
    solver = {k: v for k, v in cfg.solver.items() if name == "langevin_video" or k not in ("window", "overlap")}
    if name in FRAME_METHODS:
        if not cfg.video_prior:
            raise ConfigError(f"config key 'solver.name': {name!r} needs video_prior: {{name: dvdnet, weights: FOLDER}}")
    elif name in BASELINES.names():
        pass
    else:
        check_solver(solver, "solver")
        check_prior(cfg.prior, "prior")
        check_prior_files(cfg.prior, "prior")
    if cfg.video_prior is not None:
        if cfg.video_prior.get("name") != "dvdnet" or not cfg.video_prior.get("weights"):
            raise ConfigError("config key 'video_prior': expected {name: dvdnet, weights: FOLDER}")
        check_dvdnet_files(str(cfg.video_prior["weights"]), "video_prior.weights")
    window, overlap = int(cfg.solver.get("window", 8)), int(cfg.solver.get("overlap", 0))
    if window < 1 or not 0 <= overlap < window:
        raise ConfigError(f"config keys 'solver.window'/'solver.overlap': need window >= 1 and "
                          f"0 <= overlap < window, got {window}, {overlap}")
    if cfg.codec.get("name") not in CODECS:
        raise ConfigError(f"config key 'codec.name': {cfg.codec.get('name')!r}; valid: {', '.join(CODECS)}")
    crf = cfg.codec.get("crf", 18)
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise ConfigError(f"config key 'codec.crf': expected an integer in [0, 51], got {crf!r}")
    for key in ("segment_frames", "segment_pixels"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"config key '{key}': must be >= 1, got {getattr(cfg, key)}")
    if cfg.segment_overlap < 0 or (cfg.max_frames is not None and cfg.max_frames < 1):
        raise ConfigError("config keys 'segment_overlap' (>= 0) / 'max_frames' (>= 1 or null) out of range")
    if not cfg.comparison_seconds >= 0:
        raise ConfigError(f"config key 'comparison_seconds': must be >= 0, got {cfg.comparison_seconds}")
    if not cfg.cut_threshold > 0 or not math.isfinite(cfg.cut_threshold):
        raise ConfigError(f"config key 'cut_threshold': must be a finite number > 0, got {cfg.cut_threshold}")


def plan_clips(cfg, chash: str) -> tuple[list[ClipPlan], list[dict], int, list[dict]]:
    """(clips, segment rows still to do, segments already done, error rows written): inputs
    refused before probing (pipelines.output_paths.screen_inputs: a path that escapes, a FIFO
    or device, clips whose restored files would share a name) and clips that do not probe."""
    from actors.error_kind import PERMANENT, error_kind
    from operators.video.encode import output_name
    from pipelines.inputs import resolve_input
    from pipelines.output_paths import screen_inputs
    from pipelines.restore_images import match_references
    from pipelines.storage import list_inputs
    from pipelines.streaming import error_row
    from pipelines.tables import error_record, finished_ids, image_id, write_shard

    listed = list_inputs(resolve_input(cfg.input, cfg.output), cfg.storage, VIDEO_EXTENSIONS)
    files, refused = screen_inputs(listed, lambda rel: [output_name(rel, cfg.codec.get("name", "h264"))[0]])
    refs = match_references(files, screen_inputs(list_inputs(cfg.reference, cfg.storage, VIDEO_EXTENSIONS),
                                                 lambda rel: ())[0] if cfg.reference else [])
    done = finished_ids(cfg.output, chash, cfg.storage, tables=("segments", "clips", "errors"),
                        retry_errors=cfg.retry_errors)
    clips, rows, skipped = [], [], 0
    errors = [error_row(p, chash) for p in refused if p["id"] not in done]  # never probed, never read
    for f in files:
        cid = image_id(f.uri)
        try:
            info = probe_uri(f.uri, cfg.storage)
            if info.width * info.height > cfg.max_pixels:
                raise ValueError(f"frames too large: {info.width}x{info.height} > max_pixels {cfg.max_pixels}")
        except Exception as exc:  # noqa: BLE001 - a clip that cannot be probed is an error row
            if cid not in done:
                errors.append(error_record(cid, f.uri, f.relative_path, "probe", type(exc).__name__, str(exc),
                                           error_kind(exc), chash))
            continue
        n = info.frames if cfg.max_frames is None else min(info.frames, cfg.max_frames)
        if info.truncated_at is not None and info.truncated_at < n:
            if f"{cid}-truncated" not in done:
                errors.append(error_record(f"{cid}-truncated", f.uri, f.relative_path, "decode", "VideoError",
                                           f"truncated clip: it decodes up to frame {info.truncated_at} of "
                                           f"{info.frames}; restoring frames [0, {info.truncated_at})", PERMANENT,
                                           chash))
            n = info.truncated_at
        if n < 1:
            continue
        plan = ClipPlan(cid, f.uri, f.relative_path, refs.get(f.relative_path, "") or (f.uri if cfg.synthesize else ""),
                        n, info.fps, info.width, info.height, tuple(plan_segments(n, info.width, info.height, cfg)))
        clips.append(plan)
        if cid in done:
            skipped += len(plan.segments)
            continue
        for row in clip_rows(plan):
            if row["id"] in done:
                skipped += 1
            else:
                rows.append(row)
    write_shard(cfg.output, "errors", errors, cfg.storage)
    return clips, rows, skipped, errors


def segment_result(row: dict, chash: str) -> dict:
    """A ``segments`` row: where it is stored and the sums the clip's LQ metrics come from."""
    out = {k: str(row[k]) for k in ("id", "clip_id", "source_uri", "relative_path", "solver", "prior",
                                    "segment_uri", "cuts", "solver_config")}
    out.update({k: int(row[k]) for k in ("context", "start", "stop", "nfe", "owned", "pairs", "triples",
                                          "truncated_at")})
    out.update({k: _nullable(row[k]) for k in ("seconds", "lq_psnr_sum", "lq_change_sum", "lq_change2_sum",
                                               "ref_change_sum")})
    out["config_hash"] = chash
    return out


def windows_rows(row: dict, chash: str) -> list[dict]:
    """``windows`` rows of a segment: frames [start, stop), anchored frames, shot, NFE, seconds, PSNR."""
    return [{"clip_id": str(row["clip_id"]), "segment": str(row["id"]), "start": int(w["start"]),
             "stop": int(w["stop"]), "anchored": int(w["anchored"]), "shot": int(w["shot"]), "nfe": int(w["nfe"]),
             "seconds": float(w["seconds"]), "psnr": _nullable(w.get("psnr")), "config_hash": chash}
            for w in json.loads(str(row["windows"]))]


def clip_result(row: dict, cfg, chash: str) -> dict:
    """A ``clips`` row (one per clip). ``nfe``: network passes per restored frame (windows'
    overlaps recomputed included); flicker / lq_flicker: reference-relative when there is a
    reference, the no-reference flicker otherwise; nulls where a value has no meaning."""
    return {"id": str(row["clip_id"]), "source_uri": str(row["source_uri"]), "relative_path": str(row["relative_path"]),
            "frames": int(row["frames_written"]), "fps": float(row["fps"]), "width": int(row["width"]),
            "height": int(row["height"]), "solver": str(cfg.solver.get("name")), "nfe": float(row["nfe"]),
            "seconds": float(row["seconds"]), "fps_restored": _nullable(row["fps_restored"]),
            **{k: _nullable(row[k]) for k in ("psnr", "ssim", "lq_psnr", "flicker", "lq_flicker", "warp_error",
                                              "ref_warp_error")},
            "restored_uri": str(row["restored_uri"]), "restored_note": str(row["restored_note"]),
            "comparison_uri": str(row["comparison_uri"]), "strip_uri": str(row["strip_uri"]),
            "seed": cfg.seed, "config_hash": chash}


def _nullable(v) -> float | None:
    return None if v is None or v != v else float(v)
