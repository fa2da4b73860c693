"""Phase 2 of restore-video: assemble every clip whose segments are all accounted for.

A clip is ready when each of its segments is in ``segments`` or failed permanently (this
config hash); a segment that failed transiently holds its clip back until a re-run retries it.
The segments that succeeded from the first one on are joined; when the clip stopped decoding
part-way (a short segment, or segments after it failed) the restored clip holds the frames
before that point and an ``errors`` row says from which frame the clip did not decode.
"""
from __future__ import annotations

import json
import math

from pipelines.summary import JobSummary
from pipelines.video_plan import segment_id
from pipelines.video_rows import clip_result


def ready_clips(job, chash: str) -> tuple[list[dict], list[dict]]:
    """(assembly rows, truncation error rows) for clips not yet in ``clips``."""
    from actors.error_kind import PERMANENT
    from pipelines.tables import error_record, finished_ids, read_table

    cfg = job.cfg
    seg_table = read_table(cfg.output, "segments", cfg.storage)
    segs = {} if seg_table is None else {r["id"]: r for r in seg_table.to_pylist() if r["config_hash"] == chash}
    failed = finished_ids(cfg.output, chash, cfg.storage, tables=("errors",))  # permanent: transient ones wait
    done = finished_ids(cfg.output, chash, cfg.storage, tables=("clips",))
    rows, errors = [], []
    for clip in job.clips:
        ids = [segment_id(clip.clip_id, c) for c, _, _ in clip.segments]
        if clip.clip_id in done or not all(i in segs or i in failed for i in ids):
            continue
        good = []
        for i in ids:
            if i not in segs:
                break
            good.append(segs[i])
            if segs[i]["truncated_at"] >= 0 or segs[i]["owned"] < segs[i]["stop"] - segs[i]["start"]:
                break
        if not good:
            continue  # nothing decoded: the segment error rows say why
        last = good[-1]
        end = last["truncated_at"] if last["truncated_at"] >= 0 else last["start"] + last["owned"]
        if end < clip.frames:
            # id apart from the clip's own: a note beside its ``clips`` row, not superseded by it
            errors.append(error_record(f"{clip.clip_id}-truncated", clip.source_uri, clip.relative_path, "decode",
                                       "VideoError", f"the clip does not decode from frame {end} of {clip.frames}: "
                                       f"restored frames [0, {end})", PERMANENT, chash))
        rows.append(_assembly_row(clip, good))
    return rows, errors


def _assembly_row(clip, good: list[dict]) -> dict:
    owned = sum(s["owned"] for s in good)
    seconds = sum(s["seconds"] or 0.0 for s in good)
    has_ref = all(s["ref_change_sum"] is not None for s in good) and bool(clip.reference_uri)
    pairs, triples = sum(s["pairs"] for s in good), sum(s["triples"] for s in good)
    if has_ref:
        lq_flicker = (sum(s["lq_change_sum"] for s in good) - sum(s["ref_change_sum"] for s in good)) / max(1, pairs)
        lq_psnr = sum(s["lq_psnr_sum"] or 0.0 for s in good) / max(1, owned)
        if any(s["lq_psnr_sum"] is None for s in good):
            lq_psnr = math.nan  # LQ of another size (SR): no pixel-wise comparison
    else:
        lq_flicker = sum(s["lq_change2_sum"] for s in good) / triples if triples else math.nan
        lq_psnr = math.nan
    return {"id": clip.clip_id, "clip_id": clip.clip_id, "source_uri": clip.source_uri,
            "relative_path": clip.relative_path, "reference_uri": clip.reference_uri, "fps": clip.fps,
            "width": clip.width, "height": clip.height, "nfe": sum(s["nfe"] for s in good) / max(1, owned), "seconds": seconds,
            "fps_restored": owned / seconds if seconds > 0 else math.nan, "lq_psnr": lq_psnr, "lq_flicker": lq_flicker,
            "segments": json.dumps([{k: s[k] for k in ("context", "start", "stop", "segment_uri")} for s in good])}


def assemble_clips(job, summary: JobSummary) -> None:
    """Run the assembly stage on every ready clip; rows to ``clips`` / ``errors``."""
    from pipelines.stages.video_assemble import AssembleStage
    from pipelines.streaming import stream_to_tables
    from pipelines.tables import write_shard

    cfg, chash = job.cfg, summary.config_hash
    rows, errors = ready_clips(job, chash)
    write_shard(cfg.output, "errors", errors, cfg.storage)
    summary.errors += len(errors)
    if not rows:
        return
    import ray

    from pipelines.ray_runtime import init_ray

    init_ray(cfg.ray)
    stage = AssembleStage(cfg.output, cfg.codec, job.compare_clips(), cfg.comparison_seconds, cfg.storage)
    ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(stage, batch_size=1)
    phase = JobSummary(job=f"{cfg.job} assemble", output=cfg.output, config_hash=chash, planned=len(rows))
    stream_to_tables(ds, cfg.output, cfg.storage, cfg.flush_rows, phase, chash,
                     lambda row: clip_result(row, cfg, chash), results_table="clips")
    summary.errors += phase.errors
