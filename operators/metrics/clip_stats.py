"""Clip metrics accumulated frame by frame, so a clip of any length is measured in O(1) frames.

Per frame: PSNR and SSIM against the reference (skimage-equal, operators.metrics). In time:
``flicker`` = mean |v_t - v_{t-1}| minus the reference's (operators.metrics.flicker, the
reference-relative metric) or, with no reference, the no-reference mean |v_t - 2 v_{t-1} +
v_{t-2}|; ``warp_error`` = the flow-compensated temporal error with flows from the reference
(operators.metrics.warp_error), and ``ref_warp_error`` the reference's own (its floor). The
values equal the whole-clip functions on the same frames (tested).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from operators.metrics.psnr import psnr
from operators.metrics.ssim import ssim
from operators.metrics.warp_error import warp_error_pair


def _nchw(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1), dtype=np.float32))[None]


class ClipMetrics:
    """``update(frame, ref=None)`` per frame in order ((H, W, 3) in [0, 1]); ``result()``."""

    def __init__(self, warp: bool = True):
        self.warp = warp
        self.n = 0
        self.sums = {k: 0.0 for k in ("psnr", "ssim", "change", "ref_change", "change2", "warp", "ref_warp")}
        self.counts = {k: 0 for k in ("ref", "pairs", "triples", "warp")}
        self.prev: list[np.ndarray] = []
        self.prev_ref: np.ndarray | None = None

    def update(self, frame: np.ndarray, ref: np.ndarray | None = None) -> None:
        frame = np.asarray(frame, dtype=np.float32)
        if ref is not None:
            ref = np.asarray(ref, dtype=np.float32)
            x, r = _nchw(frame), _nchw(ref)
            self.sums["psnr"] += float(psnr(x, r)[0])
            self.sums["ssim"] += float(ssim(x, r)[0])
            self.counts["ref"] += 1
        if self.prev:
            self.sums["change"] += float(np.abs(frame - self.prev[-1]).mean())
            self.counts["pairs"] += 1
            if ref is not None and self.prev_ref is not None:
                self.sums["ref_change"] += float(np.abs(ref - self.prev_ref).mean())
                if self.warp:
                    e = warp_error_pair(np.stack([self.prev[-1], frame]).transpose(0, 3, 1, 2),
                                        np.stack([self.prev_ref, ref]).transpose(0, 3, 1, 2))
                    if not math.isnan(e.video):
                        self.sums["warp"] += e.video
                        self.sums["ref_warp"] += e.reference
                        self.counts["warp"] += 1
        if len(self.prev) == 2:
            self.sums["change2"] += float(np.abs(frame - 2 * self.prev[-1] + self.prev[-2]).mean())
            self.counts["triples"] += 1
        self.prev = (self.prev + [frame])[-2:]
        self.prev_ref = ref
        self.n += 1

    def result(self) -> dict[str, float | None]:
        """psnr, ssim (means over frames; None without a reference), flicker (reference-relative
        when every frame had a reference, else no-reference), warp_error, ref_warp_error."""
        s, c = self.sums, self.counts
        has_ref = c["ref"] == self.n and self.n > 0

        def mean(key: str, count: str) -> float | None:
            return s[key] / c[count] if c[count] else None

        if has_ref:
            change = mean("change", "pairs")
            flick = None if change is None else change - s["ref_change"] / c["pairs"]
        else:
            flick = mean("change2", "triples")
        return {"psnr": mean("psnr", "ref") if has_ref else None, "ssim": mean("ssim", "ref") if has_ref else None,
                "flicker": flick, "flicker_reference_relative": has_ref,
                "warp_error": mean("warp", "warp"), "ref_warp_error": mean("ref_warp", "warp")}
