from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from operators.video import VideoError, VideoWriter, output_name, probe, read_frames
from tests.operators.video._clips import packets, pattern, real_clip, write_clip


def _frames(path, info=None) -> np.ndarray:
    info = info or probe(path)
    return np.concatenate([c.frames for c in read_frames(path, info, chunk=32)])


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2)))


def _seconds(info) -> list[Fraction]:
    return [p * info.time_base for p in info.pts]


@pytest.mark.parametrize("name, out_name, as_file", [("chaplin.mp4", "out.mp4", False),
                                                     ("flipping_a_pancake.mkv", "out.mkv", True)])
def test_audio_copied_packet_for_packet(tmp_path, name, out_name, as_file):
    src = real_clip(name)
    info = probe(src)
    out = tmp_path / out_name
    blank = np.zeros((len(info.pts), info.height, info.width, 3), np.float32)  # pixels are not the point here
    with open(src, "rb") as f, VideoWriter(str(out), info, audio_source=f if as_file else str(src),
                                           preset="ultrafast") as w:
        for k in range(0, info.frames, 64):
            w.write(blank[k:k + 64], info.pts[k:k + 64])
    got = probe(out)
    assert (got.frames, got.width, got.height, got.fps) == (info.frames, info.width, info.height, info.fps)
    assert _seconds(got) == _seconds(info) and got.audio == info.audio
    a, b = packets(src), packets(out)
    assert len(a) == len(b) and [x[1] for x in a] == [x[1] for x in b]  # the same bytes, in order
    assert [x[0] for x in a] == pytest.approx([x[0] for x in b], abs=1e-3)  # and the same times


def test_real_clip_round_trip_quality(tmp_path):
    src = real_clip("carphone_pristine.mp4")
    info = replace(probe(src), frames=12, pts=probe(src).pts[:12])
    frames = _frames(src, info)
    out = tmp_path / "carphone.mp4"
    with VideoWriter(str(out), info, crf=12) as w:
        w.write(frames, info.pts)
    back = probe(out)
    assert (back.frames, back.pts, back.width, back.height) == (12, info.pts, 176, 144)
    assert back.pix_fmt == "yuv420p" and back.codec == "h264"
    assert _psnr(_frames(out, back), frames) > 38  # an intact encode (4:2:0 again, CRF 12)


# (range, matrix) tags and the height -> luma of pure red: 16 + 219 Kr (limited) or 255 Kr (full)
@pytest.mark.parametrize("tags, height, luma", [((0, 2), 32, 81),     # untagged SD: BT.601
                                                ((0, 2), 720, 63),    # untagged HD: BT.709
                                                ((1, 1), 32, 63),     # BT.709 limited
                                                ((2, 1), 32, 54),     # BT.709 full
                                                ((1, 9), 32, 73)])    # BT.2020 limited
def test_colour_matrix_and_range(tmp_path, tags, height, luma):
    import av

    red = np.zeros((2, height, 16, 3), np.float32)
    red[..., 0] = 1
    src = write_clip(tmp_path / "src.mkv", np.zeros((2, height, 16, 3), np.uint8), tags=(*tags, 2, 2))
    out = tmp_path / "red.mkv"
    with VideoWriter(str(out), probe(src), crf=0, preset="ultrafast") as w:  # CRF 0: lossless YUV
        w.write(red, [0, 40])
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0))
        y = frame.to_ndarray()[:height]  # yuv420p as stored: the first height rows are luma
    assert (frame.color_range, frame.colorspace) == tags
    assert np.abs(y.astype(int) - luma).max() <= 1
    np.testing.assert_allclose(_frames(out), red, atol=2.5 / 255)


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_odd_size_vfr_tags_and_rotation_kept(tmp_path, codec):
    pts = [0, 40, 55, 200, 240, 1000]
    tags = (2, 1, 1, 1)  # full range, BT.709 matrix, primaries, transfer
    src = write_clip(tmp_path / "src.mkv", pattern(6, 143, 175), pts, pix_fmt="yuv444p", rotation=270, tags=tags)
    info = probe(src)
    frames = _frames(src, info)
    out = tmp_path / "out.mp4"
    with VideoWriter(str(out), info, codec=codec, crf=10, preset="ultrafast") as w:
        w.write(frames[:2], info.pts[:2])
        w.write(frames[2:], info.pts[2:])
    back = probe(out)
    assert (back.width, back.height, back.frames) == (175, 143, 6)
    assert back.pix_fmt in ("yuv444p", "yuvj444p")  # FFmpeg's h264 decoder names full range yuvj
    assert _seconds(back) == [Fraction(p, 1000) for p in pts] and back.variable_fps
    assert (back.color_range, back.color_space, back.color_primaries, back.color_trc) == tags
    assert back.rotation == 270 and back.codec == {"h264": "h264", "h265": "hevc"}[codec]
    assert _psnr(_frames(out, back), frames) > 38


def test_ffv1_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (5, 31, 45, 3), dtype=np.uint8)
    src = write_clip(tmp_path / "src.mkv", u8, pix_fmt="yuv444p")  # odd size: 4:4:4
    info = probe(src)
    out, _ = output_name(str(tmp_path / "lossless.mp4"), "ffv1")
    with VideoWriter(out, info, codec="ffv1") as w:
        w.write(u8 / 255.0, info.pts)
    back = probe(out)
    assert out.endswith(".mkv") and back.codec == "ffv1" and back.pix_fmt == "bgr0"
    assert back.pts == info.pts
    np.testing.assert_array_equal(np.round(_frames(out, back) * 255).astype(np.uint8), u8)


def test_png_directory(tmp_path):
    src = write_clip(tmp_path / "src.mkv", pattern(4, 21, 33), pix_fmt="yuv444p", audio="aac")
    info = probe(src)
    frames = _frames(src, info)
    out = tmp_path / "frames"
    with VideoWriter(str(out), info, codec="png", audio_source=str(src)) as w:  # audio ignored
        w.write(frames[1:3], info.pts[1:3])  # named by source index, not by order written
    assert sorted(p.name for p in out.iterdir()) == ["frame_000001.png", "frame_000002.png"]
    png = np.asarray(Image.open(out / "frame_000002.png"))
    np.testing.assert_array_equal(png, np.round(frames[2] * 255).astype(np.uint8))


def test_write_checks(tmp_path):
    src = write_clip(tmp_path / "src.mkv", pattern(3, 32, 48))
    info = probe(src)
    with VideoWriter(str(tmp_path / "o.mkv"), info) as w:
        with pytest.raises(ValueError, match="frames must be"):
            w.write(np.zeros((1, 32, 47, 3)), [0])
        with pytest.raises(ValueError, match="2 frames but 1 pts"):
            w.write(np.zeros((2, 32, 48, 3)), [0])
        w.write(np.zeros((1, 32, 48, 3)), [40])
        with pytest.raises(ValueError, match="pts must increase"):
            w.write(np.zeros((1, 32, 48, 3)), [40])
    for kw in ({"codec": "vp9"}, {"crf": 60}, {"codec": "h265"}):  # h265 needs >= 64 px
        with pytest.raises(ValueError):
            VideoWriter(str(tmp_path / "x.mkv"), info, **kw)
    opus = write_clip(tmp_path / "opus.mkv", pattern(2, 32, 48), audio="libopus")
    with pytest.raises(VideoError, match="cannot write h264 with audio opus into .mov"):
        VideoWriter(str(tmp_path / "x.mov"), info, audio_source=str(opus))


def test_output_name():
    assert output_name("a/clip.mp4", "h264") == ("a/clip.mp4", "")
    assert output_name("a/clip.MOV", "h265") == ("a/clip.MOV", "")
    assert output_name("a/clip.mkv", "h265") == ("a/clip.mkv", "")
    for src, codec, why in [("a/clip.webm", "h264", "WebM holds only VP8/VP9/AV1"),
                            ("a/clip.avi", "h265", "H.265 output keeps only .mp4 .mov .mkv containers, not .avi"),
                            ("a/clip.mp4", "ffv1", "FFV1 output is always Matroska"),
                            ("a/clip.y4m", "h264", "not .y4m")]:
        rel, note = output_name(src, codec)
        assert rel == src.rsplit(".", 1)[0] + ".mkv" and why in note and src in note
    assert output_name("a/clip.mp4", "png") == ("a/clip.mp4.frames", output_name("b.avi", "png")[1])
    with pytest.raises(ValueError):
        output_name("a.mp4", "vp9")
