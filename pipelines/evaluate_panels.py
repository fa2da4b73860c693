"""Comparison panels that survive a resumed evaluate run.

A comparison grid shows, for one (dataset, image, task), the LQ input, every method's output and
the reference. The outputs reach the driver only for the rows a run computes, so a resumed run
(the done rows are skipped by id) would draw grids with only the re-run methods. The driver
therefore keeps each panel piece as it arrives, under ``<output>/comparisons/parts/`` (names
are hashes: the row id for a method's output, the image id and task for LQ and reference), and
the report rebuilds every panel from those pieces and the results table's scores.
"""
from __future__ import annotations

import hashlib
import logging

from pipelines.output_paths import output_uri

log = logging.getLogger(__name__)

FOLDER = "comparisons"


def _scene(image_id: str, task: str) -> str:
    return hashlib.sha256(f"{image_id}\x00{task}".encode()).hexdigest()[:24]


def _uri(output: str, name: str) -> str:
    return output_uri(output, FOLDER, f"parts/{name}.png")


def save_parts(output: str, storage, row: dict, new_scene: bool) -> None:
    """Write one streamed row's panel pieces: its output and its std map when it has one, and,
    for the first row of a scene (``new_scene``), the scene's LQ input and reference."""
    from pipelines.storage import write_bytes_atomic

    scene = _scene(str(row["image_id"]), str(row["task"]))
    pieces = {str(row["id"]): row["restored_png"], f"{row['id']}__std": row["std_png"]}
    if new_scene:
        pieces |= {f"{scene}__lq": row["lq_png"], f"{scene}__hq": row["hq_png"]}
    for name, data in pieces.items():
        if len(data):
            write_bytes_atomic(_uri(output, name), bytes(data), storage)


def _read(output: str, storage, name: str) -> bytes | None:
    from pipelines.storage import read_bytes

    try:
        return read_bytes(_uri(output, name), storage)
    except FileNotFoundError:
        return None


def complete_panels(output: str, storage, results: list[dict], compare: set[str], panels: dict) -> dict:
    """``panels`` ({(dataset, image, task): panel}, as :class:`pipelines.evaluate.EvaluateJob`
    collects them) completed with the recorded rows of the comparison images that this run did
    not compute: their outputs from the saved pieces, their scores from ``results``. A row
    whose pieces are missing (a run from before the pieces were kept) is left out, logged."""
    for r in results:
        if r["image_id"] not in compare or r["psnr"] is None:
            continue
        key = (str(r["dataset"]), str(r["image"]), str(r["task"]))
        if r["method"] in panels.get(key, {}).get("methods", {}):
            continue
        scene = _scene(str(r["image_id"]), str(r["task"]))
        png = _read(output, storage, str(r["id"]))
        if key not in panels:
            lq, hq = _read(output, storage, f"{scene}__lq"), _read(output, storage, f"{scene}__hq")
            if png is None or lq is None or hq is None:
                log.warning("evaluate: no saved panel for %s / %s / %s", *key)
                continue
            panels[key] = {"lq": lq, "hq": hq, "lq_scores": (float(r["lq_psnr"]), float(r["lq_ssim"])), "methods": {}}
        if png is None:
            log.warning("evaluate: no saved output of %s for the %s / %s / %s grid", r["method"], *key)
            continue
        panels[key]["methods"][str(r["method"])] = {
            "png": png, "scores": (float(r["psnr"]), float(r["ssim"])), "samples": int(r["samples"]),
            "estimate": str(r["estimate"]), "std_png": _read(output, storage, f"{r['id']}__std") or b"",
            "std_mean": float(r["std_mean"]) if r["std_mean"] is not None else float("nan")}
    return panels
