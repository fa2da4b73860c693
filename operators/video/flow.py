"""Dense optical flow (OpenCV DeepFlow or DIS), backward warping and the occlusion check.

Convention (DVDnet's motioncompensation.py): ``flow = estimate_flow(ref, moving)`` gives, per
pixel of ``ref``, where its content sits in ``moving``:
ref[y, x] ~ moving[y + flow[y, x, 1], x + flow[y, x, 0]]. ``warp(moving, flow)`` samples
``moving`` there and so aligns it onto ``ref``.

- DeepFlow (Weinzaepfel et al., ICCV 2013; ``cv2.optflow``, opencv-contrib) is the flow the
  DVDnet authors used; seconds per megapixel.
- DIS (Kroeger et al., "Fast Optical Flow using Dense Inverse Search", ECCV 2016), preset
  MEDIUM, is ~10-50x faster and is what the warp-error metric uses.

Flow is estimated on one 8-bit channel, as DVDnet does: a grey (H, W) image as given, a colour
(H, W, C) image by its first channel; floats in [0, 1] are rounded to 8 bits (DVDnet
truncates). OpenCV flow objects are not thread-safe, so each thread builds and caches its own.
"""
from __future__ import annotations

import threading
from typing import Literal

import cv2
import numpy as np

FlowMethod = Literal["deepflow", "dis"]
FLOW_METHODS: tuple[str, ...] = ("deepflow", "dis")

DIS_FINEST_SCALE = 1  # the MEDIUM preset's: flow at half resolution, upsampled
_local = threading.local()


def _flow_object(method: str):
    """The calling thread's OpenCV estimator for ``method`` (built once per thread)."""
    cache = getattr(_local, "estimators", None)
    if cache is None:
        cache = _local.estimators = {}
    if method not in cache:
        if method == "deepflow":
            cache[method] = cv2.optflow.createOptFlow_DeepFlow()
        elif method == "dis":
            cache[method] = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        else:
            raise ValueError(f"unknown flow method {method!r}; valid: {', '.join(FLOW_METHODS)}")
    return cache[method]


def to_uint8_channel(img: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) uint8, or float in [0, 1] -> contiguous (H, W) uint8 (first channel)."""
    a = img if img.ndim == 2 else img[..., 0]
    if a.dtype != np.uint8:
        a = np.clip(np.rint(np.asarray(a, dtype=np.float32) * 255), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def estimate_flow(ref: np.ndarray, moving: np.ndarray, method: FlowMethod = "dis") -> np.ndarray:
    """Flow from ``ref`` to ``moving``: (H, W, 2) float32, (dx, dy) in pixels (see module doc).

    ref, moving: (H, W) or (H, W, C), uint8 or float in [0, 1], the same H and W.
    """
    if ref.shape[:2] != moving.shape[:2]:
        raise ValueError(f"flow needs frames of one size, got {ref.shape[:2]} and {moving.shape[:2]}")
    a, b = to_uint8_channel(ref), to_uint8_channel(moving)
    estimator = _flow_object(method)
    if method == "dis":  # OpenCV's DIS lowers its finest scale for good after a frame too small for
        estimator.setFinestScale(DIS_FINEST_SCALE)  # it; restore it so no call depends on earlier ones
    return estimator.calc(a, b, None).astype(np.float32, copy=False)


def sample_grid(flow: np.ndarray) -> np.ndarray:
    """(H, W, 2) flow -> the absolute sampling positions (x + dx, y + dy), float32."""
    h, w = flow.shape[:2]
    grid = np.empty((h, w, 2), np.float32)
    grid[..., 0] = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
    grid[..., 1] = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
    return grid


def warp(frame: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward-warp ``frame`` (H, W) or (H, W, C) by ``flow`` (H, W, 2): out[y, x] =
    frame[y + dy, x + dx], bilinear, positions outside the frame take the nearest border pixel.

    With ``flow = estimate_flow(ref, frame)`` the result is aligned onto ``ref``. The dtype is
    kept; any number of channels (OpenCV remaps up to 4 at once, so wider inputs go in groups).
    """
    if frame.shape[:2] != flow.shape[:2] or flow.shape[-1] != 2:
        raise ValueError(f"frame {frame.shape} and flow {flow.shape} do not match ((H, W[, C]) and (H, W, 2))")
    grid = sample_grid(flow)

    def remap(a: np.ndarray) -> np.ndarray:
        return cv2.remap(np.ascontiguousarray(a), grid, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    if frame.ndim == 2 or frame.shape[2] <= 4:
        out = remap(frame)
        return out.reshape(frame.shape)
    return np.concatenate([remap(frame[..., i : i + 4]).reshape(*frame.shape[:2], -1)
                           for i in range(0, frame.shape[2], 4)], axis=2)


def consistent(flow_fw: np.ndarray, flow_bw: np.ndarray, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """Forward-backward check (Sundaram, Brox & Keutzer, ECCV 2010, Eq. 5; also the occlusion
    test of Lai et al.'s warping error, ECCV 2018): pixel x of the first frame is visible in the
    second when |w(x) + w_b(x + w(x))|^2 < alpha (|w(x)|^2 + |w_b(x + w(x))|^2) + beta and
    x + w(x) lies inside the frame.

    flow_fw = estimate_flow(a, b), flow_bw = estimate_flow(b, a), both (H, W, 2) -> (H, W) bool.
    """
    bw = warp(flow_bw, flow_fw)
    fx, fy, bx, by = flow_fw[..., 0], flow_fw[..., 1], bw[..., 0], bw[..., 1]  # no (H, W, 2).sum(-1):
    lhs = (fx + bx) ** 2 + (fy + by) ** 2                                       # 10x faster on 2 channels
    rhs = alpha * (fx * fx + fy * fy + bx * bx + by * by) + beta
    grid = sample_grid(flow_fw)
    h, w = flow_fw.shape[:2]
    inside = (grid[..., 0] >= 0) & (grid[..., 0] <= w - 1) & (grid[..., 1] >= 0) & (grid[..., 1] <= h - 1)
    return (lhs < rhs) & inside
