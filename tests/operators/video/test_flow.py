"""Optical flow: a known shift is recovered and undone; warping and the occlusion check are exact
on integer flows; one estimator per thread."""
from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from operators.video.flow import DIS_FINEST_SCALE, _flow_object, consistent, estimate_flow, to_uint8_channel, warp

DX, DY = 3, 2


def texture(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth random texture in [0, 1], (h, w) float32."""
    a = cv2.GaussianBlur(np.random.default_rng(seed).random((h, w)).astype(np.float32), (0, 0), 2)
    return (a - a.min()) / (a.max() - a.min())


def shifted_pair() -> tuple[np.ndarray, np.ndarray]:
    """(ref, moving) with ref[y, x] = moving[y + DY, x + DX]: two crops of one texture."""
    big = texture(110, 140)
    return big[DY : DY + 96, DX : DX + 128], big[:96, :128]


@pytest.mark.parametrize("method", ["dis", "deepflow"])
def test_a_shift_is_recovered_and_warp_aligns(method):
    ref, moving = shifted_pair()
    flow = estimate_flow(ref, moving, method)
    assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
    inner = (slice(12, -12), slice(12, -12))
    np.testing.assert_allclose(flow[inner].mean((0, 1)), [DX, DY], atol=0.02)
    assert np.abs(flow[inner] - [DX, DY]).max() < 0.1
    aligned = warp(moving, flow)
    assert np.abs(aligned - ref)[inner].max() < 0.01 < np.abs(moving - ref)[inner].mean()


def test_colour_frames_use_the_first_channel_rounded_to_8_bits():
    ref, moving = shifted_pair()
    other = texture(seed=1)
    np.testing.assert_array_equal(estimate_flow(np.dstack([ref, other, other]), np.dstack([moving, ref, ref])),
                                  estimate_flow(ref, moving))
    assert to_uint8_channel(np.array([[0.0, 0.5 / 255, 0.49, 1.2]])).tolist() == [[0, 0, 125, 255]]


def test_warp_is_exact_on_integer_flows_and_replicates_the_border():
    frame = np.random.default_rng(1).random((8, 10, 15)).astype(np.float32)  # > 4 channels: remapped in groups
    flow = np.zeros((8, 10, 2), np.float32)
    flow[..., 0] = 2
    out = warp(frame, flow)
    np.testing.assert_array_equal(out[:, :-2], frame[:, 2:])
    np.testing.assert_array_equal(out[:, -2:], np.repeat(frame[:, -1:], 2, axis=1))
    np.testing.assert_array_equal(warp(frame[..., 0], flow), out[..., 0])
    with pytest.raises(ValueError, match="do not match"):
        warp(frame, flow[:4])


def test_occlusion_check_on_exact_flows():
    fw = np.zeros((6, 8, 2), np.float32)
    fw[..., 0], fw[..., 1] = DX, DY
    mask = consistent(fw, -fw)
    assert mask[: 6 - DY, : 8 - DX].all() and not mask[6 - DY :].any() and not mask[:, 8 - DX :].any()
    assert not consistent(fw, fw).any()  # forward and backward disagree everywhere


def test_estimators_are_per_thread_and_agree():
    ref, moving = shifted_pair()
    want = estimate_flow(ref, moving, "dis")
    got, objects = [None, None], [None, None]

    def run(i: int) -> None:
        objects[i] = _flow_object("dis")
        got[i] = estimate_flow(ref, moving, "dis")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert objects[0] is not objects[1] and _flow_object("dis") is _flow_object("dis")
    for g in got:
        np.testing.assert_array_equal(g, want)
    with pytest.raises(ValueError, match="valid: deepflow, dis"):
        estimate_flow(ref, moving, "farneback")


def test_dis_does_not_remember_a_small_frame():
    """OpenCV's DIS lowers its finest scale after a frame smaller than its pyramid; estimate_flow
    restores it, so a flow never depends on what the thread's estimator saw before."""
    ref, moving = shifted_pair()
    fresh = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    assert fresh.getFinestScale() == DIS_FINEST_SCALE
    want = fresh.calc(to_uint8_channel(ref), to_uint8_channel(moving), None)
    estimate_flow(texture(16, 20, seed=2), texture(16, 20, seed=3), "dis")
    assert _flow_object("dis").getFinestScale() == DIS_FINEST_SCALE - 1  # the OpenCV behaviour worked around
    np.testing.assert_array_equal(estimate_flow(ref, moving, "dis"), want)
