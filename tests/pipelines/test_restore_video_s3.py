"""configs/restore-video.yaml on the development clips, from a bucket to a bucket on a real S3
API (moto's server on loopback): every clip keeps its frame count, timing and audio.

The solver is per-frame langevin with the exact Gaussian test prior and 1 NFE, and the mkv/Opus
clip is its first 3 seconds, remuxed without re-encoding (same codecs, timestamps and packets), so
the test runs 210 frames in CI time (the windowed solver's couplings, which add an optical flow
per frame pair, are tested on synthetic clips in test_restore_video.py)."""
from __future__ import annotations

import io
import tempfile
from pathlib import Path

import av
import pyarrow.parquet as pq
import s3fs

from operators.video import probe
from pipelines.cli import load_job_config
from tests.conftest import REPO, mlflow_store, shared_data

CLIPS = ("carphone_pristine.mp4", "flipping_a_pancake.mkv")  # mp4 + mkv/Opus; chaplin's mp3 and bikes'
# cuts are covered by tests/operators/video and benchmarks/video_bench.py (CI time)


def audio_packets(path: str) -> list[bytes]:
    with av.open(path) as c:
        return [bytes(p) for s in c.streams.audio for p in c.demux(s) if p.size]


def head_of_clip(src: Path, dst: Path, seconds: float) -> Path:
    """The first ``seconds`` of a clip, packets copied as they are (cut in decode order, so every
    kept frame has its references)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=inp.format.name.split(",")[0]) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        for packet in inp.demux(*inp.streams):
            if packet.stream.index not in streams or packet.dts is None:
                continue
            if packet.dts * packet.time_base < seconds:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return dst


def test_development_clips_from_bucket_to_bucket(ray_local, s3_server, tmp_path):
    video = tmp_path / "clips"
    video.mkdir()
    (video / CLIPS[0]).write_bytes((shared_data() / "video" / CLIPS[0]).read_bytes())
    head_of_clip(shared_data() / "video" / CLIPS[1], video / CLIPS[1], 3.0)
    fs = s3fs.S3FileSystem(endpoint_url=s3_server, key="testing", secret="testing")
    fs.mkdir("archive")
    for name in CLIPS:
        fs.put(str(video / name), f"archive/in/{name}")
    fs.pipe("archive/in/broken.mp4", b"\x00\x00\x00\x18ftypmp42 truncated")
    cfg, run = load_job_config(str(REPO / "configs" / "restore-video.yaml"), [
        "input=s3://archive/in", "output=s3://archive/out", f"storage.endpoint_url={s3_server}",
        "max_frames=null", "segment_frames=80", "prior.name=gaussian", "solver.name=langevin", "solver.nfe=1",
        f"mlflow.tracking_uri={mlflow_store(tmp_path)}"])
    summary = run(cfg)
    assert summary.clips == len(CLIPS) and summary.total_errors == 1
    fs.invalidate_cache()
    rows = [r for s in fs.glob("archive/out/clips/*.parquet") for r in pq.read_table(io.BytesIO(fs.cat(s))).to_pylist()]
    assert sorted(r["relative_path"] for r in rows) == sorted(CLIPS)
    with tempfile.TemporaryDirectory() as tmp:
        for r in rows:
            assert r["restored_uri"].startswith("s3://archive/out/restored/")
            local = str(Path(tmp) / Path(r["restored_uri"]).name)
            fs.get(r["restored_uri"], local)
            src, out = probe(str(video / r["relative_path"])), probe(local)
            assert out.frames == src.frames == r["frames"], r["relative_path"]
            assert [p * out.time_base for p in out.pts] == [p * src.time_base for p in src.pts]
            assert (out.width, out.height) == (src.width, src.height)
            assert audio_packets(local) == audio_packets(str(video / r["relative_path"]))
            assert r["psnr"] == r["psnr"] and r["flicker"] is not None and r["warp_error"] is not None
    (err,) = [r for s in fs.glob("archive/out/errors/*.parquet") for r in pq.read_table(io.BytesIO(fs.cat(s))).to_pylist()]
    assert err["relative_path"] == "broken.mp4" and err["stage"] == "probe"
    text = " ".join(str(v) for r in rows for v in r.values())
    assert "testing" not in text  # no credentials in the table
