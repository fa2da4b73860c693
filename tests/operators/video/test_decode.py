from __future__ import annotations

import io

import av
import numpy as np
import pytest

from operators.video import FrameChunk, VideoError, probe, read_frames
from tests.operators.video._clips import pattern, real_clip, write_clip


def _all(source, info, **kw) -> np.ndarray:
    chunks = list(read_frames(source, info, **kw))
    return np.concatenate([c.frames for c in chunks]) if chunks else np.zeros((0, info.height, info.width, 3))


class CountingFile(io.BytesIO):
    """Bytes in memory that count how many of them were read: shows whether a decode seeked."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, n=-1):
        out = super().read(n)
        self.bytes_read += len(out)
        return out

    def readinto(self, b):
        n = super().readinto(b)
        self.bytes_read += n
        return n


@pytest.mark.parametrize("gop", ["closed", "open"])
def test_seek_equals_sequential_decode_keyint_5(tmp_path, gop):
    # B-frames, so decode order differs from display order; an open GOP's leading B-frames
    # are dropped after a seek to their keyframe (read_frames then seeks further back)
    params = "keyint=5:min-keyint=5:bframes=2:b-pyramid=none:scenecut=0" + (":open-gop=1" if gop == "open" else "")
    path = write_clip(tmp_path / "g5.mp4", pattern(30, 48, 64), options={"preset": "medium", "x264-params": params})
    with av.open(str(path)) as c:
        assert any(p.pts != p.dts for p in c.demux(video=0) if p.size)
    info = probe(path)
    full = _all(path, info)
    assert full.shape == (30, 48, 64, 3) and full.dtype == np.float32 and 0 <= full.min() and full.max() <= 1
    assert not np.array_equal(full[3], full[4])
    for k in range(30):
        stop = min(k + 7, 30)
        chunks = list(read_frames(path, info, start=k, stop=stop, chunk=3))
        assert [c.index for c in chunks] == list(range(k, stop, 3))
        assert all(isinstance(c, FrameChunk) and c.pts == info.pts[c.index:c.index + len(c.frames)] for c in chunks)
        np.testing.assert_array_equal(np.concatenate([c.frames for c in chunks]), full[k:stop])


def test_a_late_segment_reads_a_fraction_of_the_file(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (100, 48, 64, 3), dtype=np.uint8)  # ~1 MB
    path = write_clip(tmp_path / "long.mkv", noise, options={"g": "5"})
    info = probe(path)
    whole, late = CountingFile(path.read_bytes()), CountingFile(path.read_bytes())
    np.testing.assert_array_equal(_all(late, info, start=95), _all(whole, info)[95:])
    assert whole.bytes_read >= path.stat().st_size
    assert late.bytes_read < 0.25 * whole.bytes_read  # seeked to the keyframe at 95, not decoded from 0


def test_real_clip_segments_equal_sequential_decode():
    path = real_clip("bikes.mp4")  # hard cuts: several keyframes at irregular places
    info = probe(path)
    with av.open(str(path)) as c:
        keys = [i for i, p in enumerate(sorted((p for p in c.demux(video=0) if p.size), key=lambda p: p.pts))
                if p.is_keyframe]
    key = next(k for k in keys if 10 < k < 150)  # a keyframe inside the clip
    starts = [1, key - 1, key, key + 1]
    need = max(starts) + 4
    full = _all(path, info, stop=need, chunk=16)
    for k in starts:
        np.testing.assert_array_equal(_all(path, info, start=k, stop=k + 4), full[k:k + 4])
    with open(path, "rb") as f:  # a file object (as fsspec gives) reads the same
        np.testing.assert_array_equal(_all(f, info, start=key, stop=key + 2), full[key:key + 2])


def test_stream_without_pts_decodes_by_counting(tmp_path):
    raw = tmp_path / "raw.h264"
    with av.open(str(raw), "w", format="h264") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.options = 64, 48, {"g": "4", "preset": "ultrafast"}
        for k, f in enumerate(pattern(12, 48, 64)):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts = k
            out.mux(s.encode(frame))
        out.mux(s.encode())
    info = probe(raw)
    full = _all(raw, info)
    assert len(full) == 12
    for k in (1, 4, 9):
        np.testing.assert_array_equal(_all(raw, info, start=k, stop=k + 3), full[k:k + 3])


def test_truncated_clip_yields_then_raises(tmp_path):
    src = real_clip("flipping_a_pancake.mkv")
    half = tmp_path / "half.mkv"
    half.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    info = probe(half)
    cut = info.truncated_at
    reference = _all(src, probe(src), start=cut - 10, stop=cut)
    got = []
    with pytest.raises(VideoError) as e:
        for c in read_frames(half, info, start=cut - 10, chunk=4):
            got.append(c)
    assert e.value.frame == cut and "ends after" in str(e.value)
    assert [c.index for c in got] == [cut - 10, cut - 6, cut - 2]
    np.testing.assert_array_equal(np.concatenate([c.frames for c in got]), reference)
    with pytest.raises(VideoError, match="missing") as e:  # wholly past the end: no decoding at all
        next(read_frames(half, info, start=cut + 5))
    assert e.value.frame == cut + 5
    assert len(_all(half, info, start=cut - 3, stop=cut)) == 3  # a range before the cut is fine


def test_corrupt_packet_yields_the_frames_before_it_then_raises(tmp_path):
    path = write_clip(tmp_path / "ok.mkv", pattern(10, 48, 64), options={"g": "100"})
    info = probe(path)
    bad = tmp_path / "bad.mkv"  # packet 4 cut to a third of its bytes (an incomplete frame)
    with av.open(str(path)) as inp, av.open(str(bad), "w") as out:
        s = out.add_stream_from_template(inp.streams.video[0])
        for k, p in enumerate(p for p in inp.demux(video=0) if p.size):
            if k == 4:
                q = av.Packet(bytes(p)[: p.size // 3])
                q.pts, q.dts, q.time_base, q.is_keyframe = p.pts, p.dts, p.time_base, p.is_keyframe
                p = q
            p.stream = s
            out.mux(p)
    got = []
    with pytest.raises(VideoError, match="failed to decode") as e:
        for c in read_frames(bad, probe(bad), chunk=3):
            got.append(c.frames)
    # frame-threaded decoders report an error a few frames late, so those in flight are lost
    assert e.value.frame is not None and e.value.frame <= 4
    yielded = np.concatenate(got) if got else np.zeros((0, 48, 64, 3), np.float32)
    np.testing.assert_array_equal(yielded, _all(path, info, stop=e.value.frame))


def test_argument_checks(tmp_path):
    path = write_clip(tmp_path / "a.mkv", pattern(4, 32, 32))
    info = probe(path)
    assert list(read_frames(path, info, start=2, stop=2)) == []
    for kw in ({"start": 3, "stop": 2}, {"stop": 5}, {"start": -1}, {"chunk": 0}):
        with pytest.raises(ValueError):
            next(read_frames(path, info, **kw))
