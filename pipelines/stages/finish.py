"""Stage `finish`: metrics against the reference, restored PNG and comparison grids written
to ``<output>/restored/<name>`` and ``<output>/comparisons/<name>``, ``<name>`` =
``output_name(relative_path)`` (through pipelines.output_paths: nothing lands outside those
folders); a posterior std (``samples`` > 1, or PnP-ULA) goes to ``<output>/std/<name>``,
shown grey as clip(STD_SCALE * std, 0, 1) (operators.comparison), its mean in ``std_mean``.

Stateless (``map_batches``). Drops the pixel columns so only table columns reach the driver.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from actors.columns import batch_to_rows, error_fields, rows_to_batch, unpack
from operators.comparison import estimate_title, labelled_grid, restoration_panels, std_display
from operators.media import encode_png
from operators.metrics.quality import quality
from pipelines.sections import StorageConfig
from pipelines.output_paths import normalise_relative, output_uri
from pipelines.storage import write_bytes_atomic

PIXEL_COLUMNS = ("lq", "hq", "restored", "std")


def output_name(relative_path: str) -> str:
    """``<relative_path>.png`` (``a.jpg`` -> ``a.jpg.png``, so a.jpg and a.png never collide);
    a path already ending in .png is kept as is. Normalised (pipelines.output_paths): a path
    that escapes raises OutputPathError."""
    rel = normalise_relative(str(relative_path))
    return rel if rel.lower().endswith(".png") else rel + ".png"


@dataclass
class FinishStage:
    output: str
    config_hash: str
    comparison_ids: tuple[str, ...] = ()
    storage: StorageConfig = field(default_factory=StorageConfig)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return rows_to_batch([self.finish_row(r) for r in batch_to_rows(batch)])

    def finish_row(self, row: dict) -> dict:
        out = {k: v for k, v in row.items() if k not in PIXEL_COLUMNS}
        out.update({"psnr": math.nan, "ssim": math.nan, "lq_psnr": math.nan, "lq_ssim": math.nan,
                    "restored_uri": "", "std_mean": math.nan, "std_uri": "", "config_hash": self.config_hash})
        if row.get("error_stage"):
            return out
        stage = "metrics"
        try:
            restored, lq, hq = unpack(row["restored"]), unpack(row["lq"]), unpack(row["hq"])
            std = unpack(row.get("std"))
            if hq is not None:
                out["psnr"], out["ssim"] = quality(restored, hq, resize=False)
                out["lq_psnr"], out["lq_ssim"] = quality(lq, hq)
            stage = "write"
            rel = output_name(str(row["relative_path"]))
            uri = output_uri(self.output, "restored", rel)
            out["restored_uri"] = write_bytes_atomic(uri, encode_png(restored, bool(row.get("grey"))), self.storage)
            if std is not None:
                out["std_mean"] = float(std.mean())
                std_png = encode_png(std_display(std), grey=True)
                out["std_uri"] = write_bytes_atomic(output_uri(self.output, "std", rel), std_png, self.storage)
            if str(row["id"]) in self.comparison_ids:
                title = estimate_title("restored", int(row.get("samples", 1)), str(row.get("estimate", "single")))
                panels = restoration_panels(np.clip(lq, 0, 1), restored, hq, (out["lq_psnr"], out["lq_ssim"]),
                                            (out["psnr"], out["ssim"]), std, title)
                write_bytes_atomic(output_uri(self.output, "comparisons", rel), encode_png(labelled_grid(panels)),
                                   self.storage)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
            out.update(error_fields(stage, exc))
        return out
