"""restore-video at scale: peak RSS of the whole job (driver + Ray workers) on a short and a
long clip, and pipeline throughput against a bare loop of the same solver on the same frames.

  python benchmarks/video_scale.py memory --frames 100,1000 --size 256x192
  python benchmarks/video_scale.py throughput --frames 48 --solver langevin_video --nfe 4

Memory: the job (solver ``pinv``, i.e. decode -> restore -> encode with no model cost, so the
clip's length is what varies) runs in a subprocess while this script samples the summed PSS
(resident memory, shared pages split among their users) of that process tree every 0.2 s. Throughput: restored frames / s of the job's restore phase
(segments; Ray start-up and the assembly excluded) vs the actor's code called in a plain loop
over the same segments in one process (torch threads = the machine's cores).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def make_clip(path: str, frames: int, width: int, height: int) -> str:
    """A moving-gradient H.264 clip of ``frames`` frames (made here, nothing downloaded)."""
    import av
    import numpy as np

    with av.open(path, mode="w") as out:
        v = out.add_stream("h264", rate=25)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"preset": "ultrafast", "crf": "20"}
        yy, xx = np.mgrid[0:height, 0:width]
        for t in range(frames):
            img = np.stack([(xx + 3 * t) % 256, (yy + t) % 256, (xx + yy) % 256], -1).astype(np.uint8)
            out.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(v.encode(None))
    return path


def tree_pss(pid: int) -> dict[str, int]:
    """PSS in bytes of ``pid`` and all its descendants, summed per process kind (Linux /proc;
    Ray's raylet, object store and workers are the job process's descendants; the kind is the
    process title: ``ray::RestoreVideoActor``, ``ray::IDLE``, ``raylet``, the driver...). PSS
    splits each shared page (the object store's shared memory, mapped by every worker) among
    the processes mapping it, so the sum counts it once, where summed RSS would count it once
    per process."""
    out: dict[str, int] = {}
    todo, seen = [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                pss = next((int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:")), 0)
            with open(f"/proc/{p}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            kind = "driver" if p == pid else os.path.basename(argv[0].decode(errors="replace")).split()[0]
            out[kind] = out.get(kind, 0) + pss
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue
    return out


def tree_rss(pid: int) -> int:
    """Summed PSS in bytes of ``pid`` and all its descendants (see :func:`tree_pss`)."""
    return sum(tree_pss(pid).values())


def run_job_measured(config: dict, workdir: str) -> tuple[float, float]:
    """(peak tree RSS in MB, wall seconds) of `restoray run` on ``config``."""
    import yaml

    path = os.path.join(workdir, "job.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(config, f)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak, at_peak = 0, {}
    while proc.poll() is None:
        kinds = tree_pss(proc.pid)
        if sum(kinds.values()) > peak:
            peak, at_peak = sum(kinds.values()), kinds
        time.sleep(0.2)
    if proc.returncode:
        raise RuntimeError(f"job failed ({proc.returncode}): {config}")
    print("  PSS at the peak by process kind (MB): " + ", ".join(
        f"{k} {v / 2**20:.0f}" for k, v in sorted(at_peak.items(), key=lambda kv: -kv[1])), flush=True)
    return peak / 2**20, time.perf_counter() - t0


def memory(frames: list[int], width: int, height: int) -> None:
    print("| frames | size | peak PSS of the job (MB) | wall (s) |\n|---|---|---|---|")
    for n in frames:
        with tempfile.TemporaryDirectory() as tmp:
            os.makedirs(os.path.join(tmp, "in"))
            make_clip(os.path.join(tmp, "in", "clip.mp4"), n, width, height)
            cfg = {"job": "restore-video", "input": os.path.join(tmp, "in"), "output": os.path.join(tmp, "out"),
                   "solver": {"name": "pinv", "window": 8}, "degradation": {"name": "denoise", "noise_sigma": 0.05},
                   "max_frames": None, "comparisons": 0, "ray": {"actors": 2, "batch_size": 1},
                   "mlflow": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db"}}
            peak, wall = run_job_measured(cfg, tmp)
            print(f"| {n} | {width}x{height} | {peak:.0f} | {wall:.1f} |", flush=True)


def throughput(frames: int, solver: dict, clip: str | None) -> None:
    import numpy as np
    import torch

    from actors.video import VideoRestoreActor
    from pipelines.config import from_dict
    from pipelines.restore_video import RestoreVideoConfig, run
    from pipelines.stages.video_load import SegmentLoadStage
    from pipelines.video_plan import plan_segments

    with tempfile.TemporaryDirectory() as tmp:
        if clip is None:
            os.makedirs(os.path.join(tmp, "in"))
            clip = make_clip(os.path.join(tmp, "in", "clip.mp4"), frames, 256, 192)
        base = {"input": clip, "output": os.path.join(tmp, "out"), "solver": solver, "max_frames": frames,
                "comparisons": 0, "ray": {"actors": 2, "batch_size": 1},
                "mlflow": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db"}}
        cfg = from_dict(RestoreVideoConfig, base)
        summary = run(cfg)
        job_fps = summary.frames_done / max(summary.restore_s, 1e-9)
        torch.set_num_threads(os.cpu_count() or 1)
        load = SegmentLoadStage(cfg.degradation, True, cfg.seed, cfg.storage)
        actor = VideoRestoreActor(cfg.solver, cfg.prior, None, cfg.seed)
        t0 = time.perf_counter()
        for c, s, e in plan_segments(frames, 256, 192, cfg):  # the job's own segments
            row = load.load_row({"id": "x", "clip_id": "x", "source_uri": clip, "context": c, "start": s, "stop": e})
            actor.restore_row(row)
        loop_fps = frames / (time.perf_counter() - t0)
        print(json.dumps({"solver": solver, "frames": frames, "job_frames_per_s": round(job_fps, 3),
                          "bare_loop_frames_per_s": round(loop_fps, 3), "ratio": round(job_fps / loop_fps, 3)}))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("memory", "throughput"))
    ap.add_argument("--frames", default="100,1000")
    ap.add_argument("--size", default="256x192")
    ap.add_argument("--solver", default="langevin_video")
    ap.add_argument("--nfe", type=int, default=4)
    ap.add_argument("--clip", default=None)
    args = ap.parse_args(argv)
    if args.what == "memory":
        w, h = (int(v) for v in args.size.split("x"))
        memory([int(n) for n in args.frames.split(",")], w, h)
    else:
        throughput(int(args.frames.split(",")[0]), {"name": args.solver, "nfe": args.nfe}, args.clip)


if __name__ == "__main__":
    main()
