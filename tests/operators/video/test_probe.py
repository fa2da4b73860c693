from __future__ import annotations

import io
import pickle
from fractions import Fraction

import av
import numpy as np
import pytest

from operators.media import MediaError
from operators.video import AudioInfo, VideoError, probe
from tests.operators.video._clips import audio_only, decoded_count, pattern, real_clip, write_clip

# name: (width, height, fps, audio (codec, sample rate, channels) or None)
REAL = {
    "carphone_pristine.mp4": (176, 144, 30000 / 1001, None),
    "carphone_distorted.mp4": (176, 144, 30000 / 1001, None),
    "bikes.mp4": (640, 272, 25.0, None),
    "chaplin.mp4": (640, 360, 25.0, ("mp3", 44100, 2)),
    "flipping_a_pancake.mkv": (426, 240, 30.0, ("opus", 48000, 1)),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_clip_fields(name):
    path = real_clip(name)
    w, h, fps, audio = REAL[name]
    info = probe(path)
    assert (info.width, info.height, info.codec, info.pix_fmt) == (w, h, "h264", "yuv420p")
    assert info.frames == len(info.pts) == decoded_count(path)
    assert all(b > a for a, b in zip(info.pts, info.pts[1:]))
    assert info.fps == pytest.approx(fps, rel=1e-3)
    assert info.duration_s == pytest.approx(info.frames / fps, rel=2e-3)
    assert not info.variable_fps and info.rotation == 0 and info.truncated_at is None
    assert [(a.codec, a.sample_rate, a.channels) for a in info.audio] == ([audio] if audio else [])
    if audio:
        assert info.audio[0] == AudioInfo(1, *audio)


def test_file_object_equals_path():
    path = real_clip("flipping_a_pancake.mkv")
    with open(path, "rb") as f:
        f.read(100)  # probe rewinds
        assert probe(f) == probe(path)


def test_bad_inputs_raise_video_error(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("these are not the frames you are looking for\n" * 50)
    cases = {
        empty: "empty file",
        text: "not a readable media file",
        audio_only(tmp_path / "tone.m4a"): "no video stream (streams found: audio aac)",
        tmp_path / "missing.mp4": "no such file",
    }
    for path, why in cases.items():
        with pytest.raises(VideoError, match=None) as e:
            probe(path)
        assert why in str(e.value) and isinstance(e.value, MediaError) and e.value.frame is None
    with pytest.raises(VideoError, match="empty file"):
        probe(io.BytesIO(b""))


def test_unknown_and_undecodable_codecs(tmp_path):
    clip = write_clip(tmp_path / "c.mkv", pattern(3, 32, 48))
    data = clip.read_bytes()
    assert data.count(b"V_MPEG4/ISO/AVC") == 1
    unknown = tmp_path / "unknown.mkv"  # same-length CodecID the demuxer maps to no codec
    unknown.write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_UNKNOWN/XXXXX"))
    with pytest.raises(VideoError, match="unknown codec"):
        probe(unknown)

    garbage = tmp_path / "garbage.mkv"  # an h264 track whose packets are noise
    with av.open(str(garbage), "w") as out:
        s = out.add_stream_from_template(av.open(str(clip)).streams.video[0])
        rng = np.random.default_rng(0)
        for k in range(4):
            p = av.Packet(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
            p.stream, p.pts, p.dts, p.time_base = s, k * 40, k * 40, Fraction(1, 1000)
            out.mux(p)
    with pytest.raises(VideoError, match="cannot decode h264"):
        probe(garbage)


def test_synthetic_vfr_rotation_and_tags(tmp_path):
    pts = [0, 40, 55, 200, 240, 1000, 1033]
    tags = (2, 1, 1, 1)  # full range, BT.709 matrix, primaries and transfer
    path = write_clip(tmp_path / "v.mkv", pattern(len(pts), 48, 64), pts, rotation=90, tags=tags)
    info = probe(path)
    assert info.pts == tuple(pts) and info.frames == 7 and info.variable_fps
    assert info.time_base == Fraction(1, 1000) and info.fps == pytest.approx(6 / 1.033)
    assert info.rotation == 90 and info.audio == ()
    assert (info.color_range, info.color_space, info.color_primaries, info.color_trc) == tags
    cfr = probe(write_clip(tmp_path / "c.mp4", pattern(4, 48, 64), [0, 3000, 6000, 9000], Fraction(1, 90000)))
    assert not cfr.variable_fps and cfr.fps == 30.0 and cfr.pts == (0, 3000, 6000, 9000)


def test_packets_without_pts_get_ordered_stamps(tmp_path):
    raw = tmp_path / "raw.h264"  # an elementary stream: no pts or dts at all
    with av.open(str(raw), "w", format="h264") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.options = 64, 48, {"g": "5", "preset": "ultrafast"}
        for k, f in enumerate(pattern(9, 48, 64)):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts = k
            out.mux(s.encode(frame))
        out.mux(s.encode())
    info = probe(raw)
    step = info.pts[1]
    assert info.frames == 9 == decoded_count(raw)
    assert step > 0 and info.pts == tuple(k * step for k in range(9))
    assert info.fps == pytest.approx(25.0)


def test_truncated_files(tmp_path):
    src = real_clip("flipping_a_pancake.mkv")
    full = probe(src)
    half = tmp_path / "half.mkv"
    half.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    info = probe(half)  # Matroska: the track's DURATION tag says how many frames are missing
    assert info.truncated_at == decoded_count(half) and 0 < info.truncated_at < full.frames
    assert info.frames == full.frames and info.pts[: info.truncated_at] == full.pts[: info.truncated_at]

    mp4 = real_clip("chaplin.mp4")  # its index (moov) is at the end: half a file has none
    cut = tmp_path / "half.mp4"
    cut.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    with pytest.raises(VideoError, match="not a readable media file"):
        probe(cut)

    fast = tmp_path / "fast.mp4"  # index first (faststart): the sample count is exact
    with av.open(str(mp4)) as inp, av.open(str(fast), "w", options={"movflags": "+faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for p in inp.demux():
            if p.size:
                p.stream = streams[p.stream_index]
                out.mux(p)
    data = fast.read_bytes()
    fast.write_bytes(data[: len(data) // 2])
    info = probe(fast)
    assert info.frames == 241 and 0 < info.truncated_at < 241
    assert info.truncated_at in (decoded_count(fast), decoded_count(fast) - 1)


def test_video_error_pickles_with_its_frame():
    e = pickle.loads(pickle.dumps(VideoError("frame 7 failed", frame=7)))
    assert isinstance(e, VideoError) and e.frame == 7 and str(e) == "frame 7 failed"
