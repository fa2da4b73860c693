"""restore-video end to end on real local Ray and real PyAV clips: frames, timing and audio kept,
segments spread and blended, bad clips become error rows, resume skips finished work."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines.config import ConfigError, from_dict
from pipelines.restore_video import RestoreVideoConfig, RestoreVideoJob, run
from pipelines.job import run_job
from operators.video import probe, read_frames
from tests.conftest import mlflow_store

FAST = {"solver": {"name": "langevin_video", "nfe": 2, "window": 4, "overlap": 1},
        "prior": {"name": "gaussian", "s2": 0.05, "mean": 0.5},
        "degradation": {"name": "denoise", "noise_sigma": 0.05}, "ray": {"actors": 2, "batch_size": 1}}


def make_clip(path: Path, frames: int = 12, size: tuple[int, int] = (48, 64), audio: bool = True,
              fmt: str = "h264") -> Path:
    """A small moving-gradient clip at 25 fps (pts in 1/1000 s), with a sine AAC track."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    with av.open(str(path), mode="w") as out:
        v = out.add_stream(fmt, rate=25)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.time_base = Fraction(1, 1000)
        a = out.add_stream("aac", rate=16000) if audio else None
        yy, xx = np.mgrid[0:h, 0:w]
        for t in range(frames):
            img = np.stack([(xx * 4 + t * 6) % 256, (yy * 5) % 256, (xx + yy + t * 3) % 256], -1).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = t * 40, Fraction(1, 1000)
            out.mux(v.encode(f))
        out.mux(v.encode(None))
        if a is not None:
            for i in range(frames * 640 // 1024):
                s = np.sin(2 * np.pi * 440 * (np.arange(1024) + i * 1024) / 16000).astype(np.float32)[None]
                af = av.AudioFrame.from_ndarray(s, format="fltp", layout="mono")
                af.sample_rate, af.pts = 16000, i * 1024
                out.mux(a.encode(af))
            out.mux(a.encode(None))
    return path


def audio_packets(path: str) -> list[bytes]:
    with av.open(path) as c:
        return [bytes(p) for p in c.demux(audio=0) if p.size]


def table(root: Path, name: str) -> list[dict]:
    files = sorted((root / name).glob("*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def cfg_for(tmp_path: Path, **keys):
    base = {"input": str(tmp_path / "in"), "output": str(tmp_path / "out"),
            "mlflow": {"tracking_uri": mlflow_store(tmp_path)}, **FAST}
    return from_dict(RestoreVideoConfig, {**base, **keys})


def test_clips_keep_frames_timing_and_audio_and_bad_clips_are_error_rows(ray_local, tmp_path):
    src = tmp_path / "in"
    make_clip(src / "a.mp4", frames=12)
    make_clip(src / "sub" / "b.mkv", frames=7, size=(36, 50), audio=False)
    (src / "empty.mp4").write_bytes(b"")
    (src / "notes.mkv").write_text("not a video\n")
    with av.open(str(src / "sound.mp4"), "w") as out:  # audio only: no video stream
        a = out.add_stream("aac", rate=16000)
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        af.sample_rate = 16000
        out.mux(a.encode(af))
        out.mux(a.encode(None))
    summary = run(cfg_for(tmp_path, segment_frames=5, segment_overlap=2))
    out = tmp_path / "out"
    clips = {r["relative_path"]: r for r in table(out, "clips")}
    assert sorted(clips) == ["a.mp4", "sub/b.mkv"] and summary.clips == 2
    errors = {r["relative_path"]: r for r in table(out, "errors")}
    assert sorted(errors) == ["empty.mp4", "notes.mkv", "sound.mp4"]
    assert all(e["stage"] == "probe" for e in errors.values())
    assert "no video stream" in errors["sound.mp4"]["message"].lower()
    for rel, n in [("a.mp4", 12), ("sub/b.mkv", 7)]:
        row, restored = clips[rel], str(out / "restored" / rel)
        assert row["restored_uri"] == restored and row["frames"] == n
        info, source = probe(restored), probe(str(src / rel))
        assert info.frames == n and (info.width, info.height) == (source.width, source.height)
        assert [p * info.time_base for p in info.pts] == [p * source.time_base for p in source.pts]
        assert row["psnr"] > row["lq_psnr"] and row["ssim"] is not None and row["flicker"] is not None
    assert audio_packets(str(out / "restored" / "a.mp4")) == audio_packets(str(src / "a.mp4"))
    segments = [r for r in table(out, "segments") if r["clip_id"] == clips["a.mp4"]["id"]]
    assert sorted((r["context"], r["start"], r["stop"]) for r in segments) == [(0, 0, 5), (3, 5, 10), (8, 10, 12)]
    windows = table(out, "windows")
    assert windows and all(w["stop"] - w["start"] <= 4 for w in windows)
    assert (out / "comparisons" / "a.mp4.mp4").is_file() and (out / "comparisons" / "a.mp4.png").is_file()
    assert not list((out / "_segments").rglob("*.npz"))  # segment files go once assembled
    again = run(cfg_for(tmp_path, segment_frames=5, segment_overlap=2))
    assert again.planned == 0 and again.done == 0 and len(table(out, "clips")) == 2


def test_segments_blend_without_a_seam(ray_local, tmp_path):
    """Restoring in 3 segments gives the frames of one segment except near the shared frames."""
    make_clip(tmp_path / "in" / "a.mkv", frames=12, audio=False)
    keys = {"codec": {"name": "ffv1"}, "solver": {"name": "langevin_video", "nfe": 2, "window": 12, "overlap": 1}}
    run(cfg_for(tmp_path, segment_frames=12, output=str(tmp_path / "one"), **keys))
    run(cfg_for(tmp_path, segment_frames=4, segment_overlap=2, output=str(tmp_path / "three"), **keys))
    one, three = ([c.frames for c in read_frames(p, probe(p))] for p in
                  (str(tmp_path / k / "restored" / "a.mkv") for k in ("one", "three")))
    one, three = np.concatenate(list(one)), np.concatenate(list(three))
    assert one.shape == three.shape == (12, 48, 64, 3)
    step = np.abs(np.diff(three, axis=0)).mean(axis=(1, 2, 3))
    ref_step = np.abs(np.diff(one, axis=0)).mean(axis=(1, 2, 3))
    assert step.max() < 2 * ref_step.max()  # no jump at frames 4 and 8


def test_truncated_clip_restores_what_decodes_and_says_from_which_frame(ray_local, tmp_path):
    clip = make_clip(tmp_path / "full" / "t.mkv", frames=30, audio=False)
    data = clip.read_bytes()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "t.mkv").write_bytes(data[: int(len(data) * 0.6)])
    run(cfg_for(tmp_path, segment_frames=8))
    (row,) = table(tmp_path / "out", "clips")
    (err,) = table(tmp_path / "out", "errors")
    assert 5 < row["frames"] < 30 and err["stage"] == "decode"
    assert f"frame {row['frames']}" in err["message"]


def test_a_crash_after_segments_does_not_redo_them(ray_local, tmp_path):
    make_clip(tmp_path / "in" / "a.mp4", frames=8, audio=False)

    class Crash(RestoreVideoJob):
        def finish(self, summary):
            raise RuntimeError("driver lost before assembly")

    with pytest.raises(RuntimeError, match="assembly"):
        run_job(Crash(cfg_for(tmp_path, segment_frames=4)))
    assert len(table(tmp_path / "out", "segments")) == 2 and not (tmp_path / "out" / "clips").exists()
    summary = run(cfg_for(tmp_path, segment_frames=4))
    assert summary.planned == 0 and summary.clips == 1
    assert table(tmp_path / "out", "clips")[0]["frames"] == 8


@pytest.mark.parametrize("keys, match", [
    ({"codec": {"name": "mpeg1"}}, "codec.name"),
    ({"codec": {"name": "h264", "crf": 60}}, "codec.crf"),
    ({"segment_frames": 0}, "segment_frames"),
    ({"solver": {"name": "langevin_video", "nfe": 2, "window": 4, "overlap": 4}}, "overlap"),
    ({"solver": {"name": "dvdnet"}}, "video_prior"),
    ({"cut_threshold": float("nan")}, "cut_threshold"),
])
def test_bad_configs_name_the_key(tmp_path, keys, match):
    with pytest.raises(ConfigError, match=match):
        cfg_for(tmp_path, **keys).validate()
